//! How close two values are: identical, equal within a stated tolerance, or different, for
//! numbers and whole JSON documents (measurement keys left out).

use super::measure::is_measurement_key;
use super::number::fmt_f64;
use serde_json::Value;

/// `|a − b| ≤ abs + rel·max(|a|, |b|)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    pub abs: f64,
    pub rel: f64,
}

impl Tolerance {
    /// For tensors: abs 1e-5 + rel 1e-4.
    pub const TENSORS: Tolerance = Tolerance {
        abs: 1e-5,
        rel: 1e-4,
    };
    /// For metrics (JSON, CSV): relative 1e-6.
    pub const METRICS: Tolerance = Tolerance {
        abs: 1e-12,
        rel: 1e-6,
    };

    pub fn close(&self, a: f64, b: f64) -> bool {
        if a == b || (a.is_nan() && b.is_nan()) {
            return true;
        }
        (a - b).abs() <= self.abs + self.rel * a.abs().max(b.abs())
    }
}

impl std::fmt::Display for Tolerance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.abs > 1e-9 {
            write!(f, "abs {:e} + rel {:e}", self.abs, self.rel)
        } else {
            write!(f, "rel {:e}", self.rel)
        }
    }
}

/// The verdict on two values or files.
#[derive(Debug, Clone, PartialEq)]
pub enum Closeness {
    Identical,
    /// Not identical, but every difference is within tolerance (or only measurements differ);
    /// the text says how far apart they are.
    Within(String),
    /// The first difference beyond tolerance.
    Different(String),
}

impl Closeness {
    /// Combines two verdicts: the worse wins.
    pub fn and(self, other: Closeness) -> Closeness {
        match (self, other) {
            (d @ Closeness::Different(_), _) | (_, d @ Closeness::Different(_)) => d,
            (w @ Closeness::Within(_), _) | (_, w @ Closeness::Within(_)) => w,
            _ => Closeness::Identical,
        }
    }
}

/// Walks two JSON documents together.
struct JsonWalk {
    tol: Tolerance,
    max_rel: f64,
    worst: String,
    measurements: bool,
    first_diff: Option<String>,
}

impl JsonWalk {
    fn differ(&mut self, path: &str, msg: String) {
        if self.first_diff.is_none() {
            let at = if path.is_empty() { "(root)" } else { path };
            self.first_diff = Some(format!("`{at}`: {msg}"));
        }
    }

    fn walk(&mut self, path: &str, a: &Value, b: &Value) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    if is_measurement_key(k) {
                        if x.get(k) != y.get(k) {
                            self.measurements = true;
                        }
                        continue;
                    }
                    match (x.get(k), y.get(k)) {
                        (Some(u), Some(v)) => self.walk(&p, u, v),
                        (Some(_), None) => self.differ(&p, "missing in the new file".into()),
                        (None, _) => self.differ(&p, "missing in the old file".into()),
                    }
                }
            }
            (Value::Array(x), Value::Array(y)) => {
                if x.len() != y.len() {
                    self.differ(path, format!("{} items, now {}", x.len(), y.len()));
                    return;
                }
                for (i, (u, v)) in x.iter().zip(y).enumerate() {
                    self.walk(&format!("{path}[{i}]"), u, v);
                }
            }
            (Value::Number(x), Value::Number(y)) if x != y => {
                let (u, v) = (
                    x.as_f64().unwrap_or(f64::NAN),
                    y.as_f64().unwrap_or(f64::NAN),
                );
                if self.tol.close(u, v) {
                    let rel = (u - v).abs() / u.abs().max(v.abs());
                    if rel > self.max_rel {
                        self.max_rel = rel;
                        self.worst = path.to_string();
                    }
                } else {
                    self.differ(path, format!("{} → {}", fmt_f64(u), fmt_f64(v)));
                }
            }
            (x, y) if x != y => self.differ(
                path,
                format!(
                    "{} → {}",
                    super::number::fmt_value(x),
                    super::number::fmt_value(y)
                ),
            ),
            _ => {}
        }
    }
}

/// Two JSON documents: measurement keys are skipped (noted when they differ), numbers compared
/// with `tol`, everything else exactly.
pub fn compare_json(a: &Value, b: &Value, tol: Tolerance) -> Closeness {
    if a == b {
        return Closeness::Identical;
    }
    let mut w = JsonWalk {
        tol,
        max_rel: 0.0,
        worst: String::new(),
        measurements: false,
        first_diff: None,
    };
    w.walk("", a, b);
    if let Some(d) = w.first_diff {
        return Closeness::Different(d);
    }
    if w.max_rel > 0.0 {
        let m = if w.measurements {
            "; measurements differ"
        } else {
            ""
        };
        Closeness::Within(format!(
            "largest relative difference {:.1e} at `{}` ({tol}){m}",
            w.max_rel, w.worst
        ))
    } else {
        Closeness::Within("only measurements differ".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_verdicts() {
        let t = Tolerance::METRICS;
        let a = json!({"loss": 2.0, "wall_s": 1.0, "xs": [1, 2]});
        assert_eq!(compare_json(&a, &a, t), Closeness::Identical);
        let b = json!({"loss": 2.0, "wall_s": 5.0, "xs": [1, 2]});
        assert_eq!(
            compare_json(&a, &b, t),
            Closeness::Within("only measurements differ".into())
        );
        let c = json!({"loss": 2.000000001, "wall_s": 1.0, "xs": [1, 2]});
        assert!(matches!(compare_json(&a, &c, t), Closeness::Within(_)));
        let d = json!({"loss": 2.1, "wall_s": 1.0, "xs": [1, 2]});
        assert_eq!(
            compare_json(&a, &d, t),
            Closeness::Different("`loss`: 2 → 2.1".into())
        );
        let e = json!({"loss": 2.0, "wall_s": 1.0, "xs": [1, 3]});
        assert!(matches!(compare_json(&a, &e, t), Closeness::Different(m) if m.contains("xs[1]")));
    }

    #[test]
    fn tolerance() {
        let t = Tolerance::TENSORS;
        assert!(t.close(1.0, 1.00005));
        assert!(!t.close(1.0, 1.001));
        assert!(t.close(0.0, 5e-6));
        assert!(t.close(f64::NAN, f64::NAN));
        assert!(!t.close(0.0, f64::NAN));
    }
}
