//! One stage of a recomputed run against its entry in the committed lock: identical (same
//! fingerprint and output hashes), equal within tolerance, or which outputs differ and how.

use super::files;
use super::measure::is_measurement_kind;
use super::tolerance::{compare_json, Closeness, Tolerance};
use crate::cache::lockfile::LockEntry;
use std::collections::BTreeSet;

/// What was found for one stage.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Same fingerprint, same output hashes.
    Identical,
    /// Same output hashes under another fingerprint (inputs, parameters or kind version moved).
    SameOutputs,
    /// Every difference within tolerance; one note per output.
    Within(Vec<String>),
    /// Some output differs beyond tolerance or could not be compared; one note per output.
    Different(Vec<String>),
    /// In the committed lock, not produced by the recomputed run.
    NotRecomputed,
    /// Produced by the recomputed run, absent from the committed lock.
    NotCommitted,
}

/// The verdict on one stage, with what is needed to print and judge it.
#[derive(Debug, Clone)]
pub struct StageReport {
    pub id: String,
    pub kind: String,
    pub verdict: Verdict,
}

impl StageReport {
    /// A measurement kind: reported, never a failure.
    pub fn measurement(&self) -> bool {
        is_measurement_kind(&self.kind)
    }

    /// Whether this stage makes `reproduce` fail.
    pub fn fails(&self) -> bool {
        !self.measurement()
            && matches!(
                self.verdict,
                Verdict::Different(_) | Verdict::NotRecomputed | Verdict::NotCommitted
            )
    }

    /// `id  verdict`, the id padded to `width`.
    pub fn line(&self, width: usize) -> String {
        let text = match &self.verdict {
            Verdict::Identical => "identical".to_string(),
            Verdict::SameOutputs => {
                "identical outputs (the fingerprint differs from the committed lock)".to_string()
            }
            Verdict::Within(n) if n.iter().all(|x| x.ends_with(ONLY_MEASUREMENTS)) => {
                let files: Vec<&str> = n
                    .iter()
                    .map(|x| x.trim_end_matches(ONLY_MEASUREMENTS))
                    .collect();
                format!(
                    "identical apart from measurements (speeds, times) in {}",
                    files.join(", ")
                )
            }
            Verdict::Within(n) => format!("equal within tolerance: {}", n.join("; ")),
            Verdict::Different(n) => format!("DIFFERENT: {}", n.join("; ")),
            Verdict::NotRecomputed => "DIFFERENT: in the committed lock but not recomputed".into(),
            Verdict::NotCommitted => "DIFFERENT: recomputed but not in the committed lock".into(),
        };
        let text = if self.measurement() && !matches!(self.verdict, Verdict::Identical) {
            let t = text.strip_prefix("DIFFERENT: ").unwrap_or(&text);
            format!("measurement ({}), not a failure: {t}", self.kind)
        } else {
            text
        };
        format!("{:width$}  {text}", self.id)
    }
}

/// The note of a file whose only differences are measurement fields.
const ONLY_MEASUREMENTS: &str = ": only measurements differ";

/// Looks up an output's content: (output path, blake3) → bytes, `None` when not available.
pub type Objects<'a> = &'a dyn Fn(&str, &crate::digest::Blake3) -> Option<Vec<u8>>;

/// Compares a stage's committed entry (`old`) with its recomputed one (`new`).
pub fn judge(
    id: &str,
    old: Option<&LockEntry>,
    new: Option<&LockEntry>,
    old_objects: Objects,
    new_objects: Objects,
) -> StageReport {
    let kind = new.or(old).map(|e| e.kind.clone()).unwrap_or_default();
    let report = |verdict| StageReport {
        id: id.to_string(),
        kind: kind.clone(),
        verdict,
    };
    let (o, n) = match (old, new) {
        (Some(o), Some(n)) => (o, n),
        (Some(_), None) => return report(Verdict::NotRecomputed),
        (None, Some(_)) => return report(Verdict::NotCommitted),
        (None, None) => return report(Verdict::Identical),
    };
    if o.outputs == n.outputs {
        return report(if o.fingerprint == n.fingerprint {
            Verdict::Identical
        } else {
            Verdict::SameOutputs
        });
    }
    let paths: BTreeSet<&String> = o.outputs.keys().chain(n.outputs.keys()).collect();
    let (mut within, mut different) = (Vec::new(), Vec::new());
    let mut uncompared = false;
    for p in paths {
        match (o.outputs.get(p), n.outputs.get(p)) {
            (Some(a), Some(b)) if a == b => {}
            (Some(_), None) => different.push(format!("{p} missing from the recomputed run")),
            (None, Some(_)) => different.push(format!("{p} not in the committed lock")),
            (Some(a), Some(b)) => match (old_objects(p, a), new_objects(p, b)) {
                (Some(x), Some(y)) => match files::compare(p, &x, &y) {
                    Closeness::Identical => {}
                    Closeness::Within(m) => within.push(format!("{p}: {m}")),
                    Closeness::Different(m) => different.push(format!("{p}: {m}")),
                },
                (None, _) => {
                    uncompared = true;
                    different.push(format!(
                        "{p} differs; the committed object is not in the local store, so its contents could not be compared"
                    ));
                }
                (_, None) => {
                    uncompared = true;
                    different.push(format!("{p} differs; the recomputed file is missing"));
                }
            },
            (None, None) => {}
        }
    }
    if uncompared {
        let obj =
            |e: &LockEntry| serde_json::Value::Object(e.metrics.clone().into_iter().collect());
        different.push(match compare_json(&obj(o), &obj(n), Tolerance::METRICS) {
            Closeness::Identical => "the lock's metrics are identical".to_string(),
            Closeness::Within(m) => format!("the lock's metrics are equal within tolerance: {m}"),
            Closeness::Different(m) => format!("the lock's metrics differ: {m}"),
        });
    }
    report(if !different.is_empty() {
        different.extend(within);
        if o.fingerprint != n.fingerprint {
            different.push(
                "the fingerprint differs too (parameters, inputs or upstream outputs differ from the committed run)"
                    .into(),
            );
        }
        Verdict::Different(different)
    } else {
        Verdict::Within(within)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A hash of 64 copies of one hex digit.
    fn hx(c: &str) -> String {
        c.repeat(64)
    }

    fn entry(fp: &str, outs: &[(&str, &str)], loss: f64) -> LockEntry {
        serde_json::from_value(json!({
            "kind": "command", "fingerprint": hx(fp),
            "outputs": outs.iter().map(|(p, h)| (p.to_string(), json!(hx(h)))).collect::<serde_json::Map<_, _>>(),
            "metrics": {"loss": loss},
        }))
        .unwrap()
    }

    #[test]
    fn verdicts() {
        let none = |_: &str, _: &crate::digest::Blake3| None;
        let a = entry("f", &[("results/p/s/x.txt", "1")], 1.0);
        assert_eq!(
            judge("s", Some(&a), Some(&a), &none, &none).verdict,
            Verdict::Identical
        );
        let b = entry("a", &[("results/p/s/x.txt", "1")], 1.0);
        assert_eq!(
            judge("s", Some(&a), Some(&b), &none, &none).verdict,
            Verdict::SameOutputs
        );
        let c = entry("f", &[("results/p/s/x.txt", "2")], 1.0);
        let r = judge("s", Some(&a), Some(&c), &none, &none);
        assert!(r.fails());
        assert!(r.line(1).contains("could not be compared"), "{}", r.line(1));
        assert!(r.line(1).contains("metrics are identical"), "{}", r.line(1));
        let objs = |_: &str, h: &crate::digest::Blake3| {
            Some(
                format!(
                    "{{\"loss\": {}}}",
                    if *h == hx("1") { "1.0" } else { "1.0000000001" }
                )
                .into_bytes(),
            )
        };
        let d = entry("f", &[("results/p/s/m.json", "1")], 1.0);
        let e = entry("f", &[("results/p/s/m.json", "2")], 1.0);
        let r = judge("s", Some(&d), Some(&e), &objs, &objs);
        assert!(matches!(r.verdict, Verdict::Within(_)), "{:?}", r.verdict);
        assert!(!r.fails());
        assert!(judge("s", Some(&a), None, &none, &none).fails());
    }
}
