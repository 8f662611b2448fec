//! Byte counts: estimates computed in 128 bits and saturated to 64 (an absurd batch or context
//! never wraps around to a small number), and sizes as text for people (`1.2 MiB`).

/// A byte count computed in 128 bits, saturated to `u64::MAX`.
pub fn saturate(x: u128) -> u64 {
    u64::try_from(x).unwrap_or(u64::MAX)
}

/// `1.2 EiB`, … `1.2 GiB`, `3.4 MiB`, `5.6 KiB` or `78 B`.
pub fn human(n: u64) -> String {
    match n {
        n if n >= 1 << 60 => format!("{:.1} EiB", n as f64 / (1u64 << 60) as f64),
        n if n >= 1 << 50 => format!("{:.1} PiB", n as f64 / (1u64 << 50) as f64),
        n if n >= 1 << 40 => format!("{:.1} TiB", n as f64 / (1u64 << 40) as f64),
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them_and_estimates_saturate() {
        assert_eq!(human(78), "78 B");
        assert_eq!(human(5 * 1024 + 512), "5.5 KiB");
        assert_eq!(human(3 << 20), "3.0 MiB");
        assert_eq!(human(3 << 30), "3.0 GiB");
        assert_eq!(human(4 << 40), "4.0 TiB");
        assert_eq!(human(u64::MAX), "16.0 EiB");
        assert_eq!(saturate(7), 7);
        assert_eq!(saturate(u128::MAX), u64::MAX);
    }
}
