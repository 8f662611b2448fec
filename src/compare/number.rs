//! Numbers and JSON values as text for people: no f32 noise (`0.6`, not
//! `0.6000000238418579`), and the change between two values (absolute and relative).

use serde_json::Value;

/// The shortest text of `x`; when `x` is exactly an f32 (it was computed as one), the shortest
/// text that reads back as that f32, if shorter. Very large or small magnitudes use exponents.
pub fn fmt_f64(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    let f = x as f32;
    let from_f32 = f.is_finite() && f as f64 == x;
    let a = x.abs();
    let exp = a != 0.0 && !(1e-4..1e15).contains(&a);
    let s64 = if exp {
        format!("{x:e}")
    } else {
        format!("{x}")
    };
    if from_f32 {
        let s32 = if exp {
            format!("{f:e}")
        } else {
            format!("{f}")
        };
        if s32.len() < s64.len() {
            return s32;
        }
    }
    s64
}

/// A JSON value as a table cell: numbers via [`fmt_f64`], strings bare, null as `-`.
pub fn fmt_value(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.to_string()
            } else if let Some(u) = n.as_u64() {
                u.to_string()
            } else {
                fmt_f64(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => s.clone(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

/// Like [`fmt_value`], with non-integer numbers rounded to `sig` significant digits (for
/// tables read by people; machine outputs keep every digit).
pub fn fmt_value_sig(v: &Value, sig: usize) -> String {
    let full = fmt_value(v);
    let Some(x) = v.as_f64().filter(|_| v.is_f64()) else {
        return full;
    };
    if !x.is_finite() || x == 0.0 || full.len() <= sig + 2 {
        return full;
    }
    let mag = x.abs().log10().floor() as i64;
    let decimals = sig as i64 - 1 - mag;
    if !(0..=12).contains(&decimals) {
        return format!("{:.*e}", sig.saturating_sub(1), x);
    }
    let t = format!("{:.*}", decimals as usize, x);
    if t.contains('.') {
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        t
    }
}

/// The change from `old` to `new` when both are numbers: `+0.02 (+0.87%)`. The difference is
/// taken between the values as printed and shown with as many decimals as they have, so two
/// f32 values `0.6` and `0.7` differ by `0.1`, not `0.10000002`.
pub fn fmt_change(old: &Value, new: &Value) -> Option<String> {
    let (os, ns) = (fmt_value(old), fmt_value(new));
    let (o, n) = (old.as_f64()?, new.as_f64()?);
    let decimals = |s: &str| {
        if s.contains('e') {
            None
        } else {
            Some(s.split_once('.').map_or(0, |(_, f)| f.len()))
        }
    };
    let abs = match (
        decimals(&os),
        decimals(&ns),
        os.parse::<f64>(),
        ns.parse::<f64>(),
    ) {
        (Some(a), Some(b), Ok(po), Ok(pn)) => {
            let d = pn - po;
            // At most 6 significant digits: a change needs no more.
            let sig = if d == 0.0 {
                0
            } else {
                (5 - d.abs().log10().floor() as i64).max(0) as usize
            };
            let t = format!("{:.*}", a.max(b).min(sig), d);
            let t = if t.contains('.') {
                t.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                t
            };
            let t = if t == "-0" { "0".to_string() } else { t };
            if d > 0.0 {
                format!("+{t}")
            } else {
                t
            }
        }
        _ => {
            let d = n - o;
            if d > 0.0 {
                format!("+{}", fmt_f64(d))
            } else {
                fmt_f64(d)
            }
        }
    };
    if o != 0.0 {
        Some(format!("{abs} ({:+.2}%)", (n - o) / o.abs() * 100.0))
    } else {
        Some(abs)
    }
}

/// Nested objects as dotted keys (`a.b`); arrays and scalars are leaves.
pub fn flatten(v: &Value) -> std::collections::BTreeMap<String, Value> {
    fn rec(prefix: &str, v: &Value, out: &mut std::collections::BTreeMap<String, Value>) {
        match v {
            Value::Object(m) if !m.is_empty() || prefix.is_empty() => {
                for (k, x) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    rec(&key, x, out);
                }
            }
            Value::Null if prefix.is_empty() => {}
            _ => {
                out.insert(prefix.to_string(), v.clone());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    rec("", v, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn no_f32_noise() {
        assert_eq!(fmt_f64(0.6f32 as f64), "0.6");
        assert_eq!(fmt_f64(0.6), "0.6");
        assert_eq!(fmt_f64(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(fmt_f64(3.0e-3f32 as f64), "0.003");
        assert_eq!(fmt_f64(1e-7), "1e-7");
        assert_eq!(fmt_f64(12.0), "12");
        assert_eq!(fmt_value(&json!(5)), "5");
        assert_eq!(fmt_value(&json!(null)), "-");
        assert_eq!(fmt_value_sig(&json!(265.91293907246626), 6), "265.913");
        assert_eq!(fmt_value_sig(&json!(0.008801603708576081), 6), "0.0088016");
        assert_eq!(fmt_value_sig(&json!(0.6), 6), "0.6");
        assert_eq!(fmt_value_sig(&json!(127704), 6), "127704");
    }

    #[test]
    fn change() {
        let c = fmt_change(&json!(0.6f32 as f64), &json!(0.7f32 as f64)).unwrap();
        assert_eq!(c, "+0.1 (+16.67%)");
        let c = fmt_change(&json!(2.31), &json!(2.29)).unwrap();
        assert_eq!(c, "-0.02 (-0.87%)");
        let c = fmt_change(&json!(3931.2497796862103), &json!(1656.939730849803)).unwrap();
        assert_eq!(c, "-2274.31 (-57.85%)");
        let c = fmt_change(&json!(0.038155805), &json!(0.090528338)).unwrap();
        assert_eq!(c, "+0.0523725 (+137.26%)");
        assert_eq!(fmt_change(&json!(2), &json!(1)).unwrap(), "-1 (-50.00%)");
        assert_eq!(fmt_change(&json!(0), &json!(1)).unwrap(), "+1");
        assert!(fmt_change(&json!("a"), &json!(1)).is_none());
    }

    #[test]
    fn flattening() {
        let f = flatten(&json!({"a": 1, "b": {"c": [1, 2], "d": "x"}, "e": {}}));
        let keys: Vec<&str> = f.keys().map(|s| s.as_str()).collect();
        assert_eq!(keys, ["a", "b.c", "b.d", "e"]);
    }
}
