//! The machine's peak arithmetic rate for a precision, for benchmark reports: what the units the
//! products run on can do at the nominal clock (`cpu MHz` of `/proc/cpuinfo`), per thread, times
//! the threads. f32: two FMA units of 16 lanes (AVX-512) or 8 (AVX2); bf16: the kernel's
//! multiply-adds per cycle ([`super::bf16::peak_macs_per_cycle`]).

use super::bf16::{self, Kernel};
use super::Precision;

/// A peak rate and what it is made of.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Peak {
    /// GFLOP/s of all threads together (a multiply-add counts 2).
    pub gflops: f64,
    /// The units: `"avx-512 fma"`, `"avx2 fma"`, `"amx-bf16"`, `"avx512-bf16"`, …
    pub unit: &'static str,
    /// The nominal clock.
    pub ghz: f64,
    pub threads: usize,
}

/// The nominal clock in GHz (`cpu MHz` of the first CPU in `/proc/cpuinfo`).
pub fn nominal_ghz() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    parse_mhz(&text).map(|mhz| mhz / 1000.0)
}

fn parse_mhz(cpuinfo: &str) -> Option<f64> {
    let line = cpuinfo.lines().find(|l| l.starts_with("cpu MHz"))?;
    let mhz: f64 = line.split(':').nth(1)?.trim().parse().ok()?;
    (mhz > 0.0).then_some(mhz)
}

/// The peak for products in `precision` on `threads` threads, or `None` when the clock is
/// unknown.
pub fn peak(precision: Precision, threads: usize) -> Option<Peak> {
    let ghz = nominal_ghz()?;
    let (unit, macs) = match precision {
        Precision::F32 if super::has_avx512() => ("avx-512 fma", 32.0),
        Precision::F32 if super::has_avx2_fma() => ("avx2 fma", 16.0),
        Precision::F32 => ("sse", 8.0),
        Precision::Bf16 => {
            let k = bf16::kernel();
            let unit = match k {
                Kernel::Portable => "f32 fma (bf16 rounded)",
                _ => k.name(),
            };
            (unit, bf16::peak_macs_per_cycle(k))
        }
    };
    Some(Peak {
        gflops: 2.0 * macs * ghz * threads as f64,
        unit,
        ghz,
        threads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_is_read_from_cpuinfo() {
        let text = "processor\t: 0\nmodel name\t: X\ncpu MHz\t\t: 2599.998\ncache size\t: 1 KB\n";
        assert_eq!(parse_mhz(text), Some(2599.998));
        assert_eq!(parse_mhz("processor: 0\n"), None);
        if let Some(p) = peak(Precision::F32, 2) {
            assert!(p.gflops > 0.0 && p.threads == 2);
            let b = peak(Precision::Bf16, 2).unwrap();
            assert!(b.gflops >= p.gflops || b.unit.starts_with("f32"));
        }
    }
}
