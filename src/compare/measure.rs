//! Which metrics measure the machine rather than the model: speeds and times (shown, never a
//! failure), and the stage kinds whose whole purpose is measuring.

/// Substrings of a key that name a measurement.
const KEY_PARTS: &[&str] = &[
    "tokens_per_s",
    "speedup",
    "speed_vs",
    "wall",
    "duration",
    "seconds",
];

/// Kinds whose outputs are measurements (timings) or pages built from them.
const KINDS: &[&str] = &["kv-eval", "beam-report", "report"];

/// A metric key (possibly dotted, `sweep.0.wall_s`) that is a measurement.
pub fn is_measurement_key(key: &str) -> bool {
    key.split('.').any(|seg| {
        let s = seg.to_ascii_lowercase();
        s.ends_with("_s") || KEY_PARTS.iter().any(|p| s.contains(p))
    })
}

/// A stage kind whose outputs are measurements.
pub fn is_measurement_kind(kind: &str) -> bool {
    KINDS.contains(&kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        for k in [
            "tokens_per_s",
            "train_tokens_per_s",
            "wall_s",
            "speedup",
            "sweep.1.wall_s",
            "duration",
            "epoch_seconds",
        ] {
            assert!(is_measurement_key(k), "{k}");
        }
        for k in [
            "val_loss",
            "val_perplexity",
            "bleu",
            "tokens",
            "n_params",
            "alpha",
        ] {
            assert!(!is_measurement_key(k), "{k}");
        }
    }
}
