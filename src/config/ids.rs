//! Instance ids (`stage@key=value,…`): how they are built and ordered, and the rule that keeps
//! them safe as folder names (no separators, no control characters, no `.`/`..`, bounded).

use serde_json::Value;
use std::collections::BTreeMap;

/// Longest instance id (and so folder name under `results/<pipeline>/`), in bytes.
pub const MAX_ID_BYTES: usize = 200;

/// A matrix value as it appears in ids and `${key}` substitution.
pub fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Instance id from the base name and a sorted point.
pub fn instance_id(stage: &str, point: &BTreeMap<String, Value>) -> String {
    if point.is_empty() {
        return stage.to_string();
    }
    let parts: Vec<String> = point
        .iter()
        .map(|(k, v)| format!("{k}={}", scalar_text(v)))
        .collect();
    format!("{stage}@{}", parts.join(","))
}

/// Why `s` cannot be part of an id or a path (a stage name, a matrix key or value), if it can't.
pub fn unsafe_part(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        Some("is empty")
    } else if s == "." || s == ".." {
        Some("is `.` or `..`, which name folders")
    } else if s.contains(['/', '\\']) {
        Some("contains a path separator (`/` or `\\`)")
    } else if s.contains('\0') {
        Some("contains a NUL character")
    } else if s.chars().any(char::is_control) {
        Some("contains a control character (such as a newline)")
    } else if s.len() > MAX_ID_BYTES {
        Some("is longer than 200 bytes")
    } else {
        None
    }
}

/// A value shown in a message on one line: control characters escaped, long values cut, the
/// empty string as `""`.
pub fn shown(s: &str) -> String {
    if s.is_empty() {
        return "\"\"".into();
    }
    let e: String = s.escape_debug().collect();
    if e.chars().count() > 60 {
        let head: String = e.chars().take(40).collect();
        format!("{head}… ({} bytes)", s.len())
    } else {
        e
    }
}

/// Orders ids as people read them: runs of digits compare as numbers (digits after a `.` as a
/// fraction), so `beam-eval@beam_width=5` comes before `beam-eval@beam_width=10` and
/// `lr=0.0003` before `lr=0.001`; ties fall back to the plain string order.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    let mut after_dot = false;
    while !x.is_empty() && !y.is_empty() {
        let digits = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
        let (dx, dy) = (digits(x), digits(y));
        let ord = if dx > 0 && dy > 0 && after_dot {
            let o = x[..dx].cmp(&y[..dy]);
            x = &x[dx..];
            y = &y[dy..];
            after_dot = false;
            o
        } else if dx > 0 && dy > 0 {
            let (nx, ny) = (&x[..dx], &y[..dy]);
            let trim = |n: &[u8]| -> usize { n.iter().take_while(|&&c| c == b'0').count() };
            let (nx, ny) = (&nx[trim(nx)..], &ny[trim(ny)..]);
            let o = nx.len().cmp(&ny.len()).then_with(|| nx.cmp(ny));
            x = &x[dx..];
            y = &y[dy..];
            o
        } else {
            let o = x[0].cmp(&y[0]);
            after_dot = x[0] == b'.';
            x = &x[1..];
            y = &y[1..];
            o
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    x.len().cmp(&y.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_keys() {
        let mut p = BTreeMap::new();
        p.insert("z".to_string(), Value::from(1));
        p.insert("a".to_string(), Value::from("x"));
        assert_eq!(instance_id("s", &p), "s@a=x,z=1");
    }

    #[test]
    fn unsafe_parts_are_named() {
        assert!(unsafe_part("x/../../victim").is_some());
        assert!(unsafe_part("..").is_some());
        assert!(unsafe_part("a\nb").is_some());
        assert!(unsafe_part(&"x".repeat(300)).is_some());
        assert_eq!(unsafe_part("beam-eval"), None);
        assert_eq!(unsafe_part("0.001"), None);
    }

    #[test]
    fn natural_order_compares_numbers_as_numbers() {
        let mut ids = vec![
            "beam-eval@beam_width=10",
            "beam-eval@beam_width=5",
            "beam-eval@beam_width=1",
            "beam-eval@beam_width=05",
            "beam-eval@lr=0.001",
            "beam-eval@lr=0.0003",
        ];
        ids.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            ids,
            vec![
                "beam-eval@beam_width=1",
                "beam-eval@beam_width=05",
                "beam-eval@beam_width=5",
                "beam-eval@beam_width=10",
                "beam-eval@lr=0.0003",
                "beam-eval@lr=0.001",
            ]
        );
    }
}
