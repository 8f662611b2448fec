//! Positions in YAML text: `file:line:col` of a nested key, for messages that point at the
//! line a value came from.

/// The first `key:` (plain or quoted) at or after byte `pos`. The empty key can only be
/// written quoted (`"":` or `'':`), so that is what it is searched as; every other search
/// moves forward by at least one byte per candidate, so the search always ends.
fn find_key(text: &str, pos: usize, key: &str) -> Option<usize> {
    if key.is_empty() {
        return ["\"\":", "'':"]
            .iter()
            .filter_map(|q| text.get(pos..)?.find(q).map(|i| pos + i + 1))
            .min();
    }
    let mut from = pos;
    while let Some(i) = text.get(from..)?.find(key) {
        let at = from + i;
        let before = text[..at].chars().last();
        let after = &text[at + key.len()..];
        let bounded =
            matches!(
                before,
                None | Some(' ' | '\t' | '\n' | '{' | ',' | '"' | '\'')
            ) && (after.starts_with(':') || after.starts_with("\":") || after.starts_with("':"));
        if bounded {
            return Some(at);
        }
        from = at + key.len();
    }
    None
}

/// `line, col` (1-based) of the first `key:` after each earlier key of `path`, best effort. A
/// key with control characters is also found written with escapes (`"a\nb":`).
pub fn locate(text: &str, path: &[&str]) -> Option<(usize, usize)> {
    let mut pos = 0;
    for key in path {
        let escaped: String = key.escape_debug().collect();
        pos = find_key(text, pos, key).or_else(|| {
            (escaped != *key)
                .then(|| find_key(text, pos, &escaped))
                .flatten()
        })?;
    }
    let line = text[..pos].matches('\n').count() + 1;
    let col = pos - text[..pos].rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    Some((line, col))
}

/// `file:line:col` of `path` in `text`, or the file name alone when the key is not found.
pub fn at(file: &str, text: &str, path: &[&str]) -> String {
    match locate(text, path) {
        Some((l, c)) => format!("{file}:{l}:{c}"),
        None => file.to_string(),
    }
}

/// `file:line:col` of the deepest prefix of `path` that is found: a stage whose `params` key
/// is missing is still blamed at the stage's line.
pub fn at_best(file: &str, text: &str, path: &[&str]) -> String {
    for n in (1..=path.len()).rev() {
        if let Some((l, c)) = locate(text, &path[..n]) {
            return format!("{file}:{l}:{c}");
        }
    }
    file.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_finds_nested_keys() {
        let t = "name: x\nstages:\n  a:\n    kind: command\n    params: { cmd: x, lr: 1 }\n";
        assert_eq!(locate(t, &["stages", "a", "params", "lr"]), Some((5, 23)));
        assert_eq!(at_best("f", t, &["stages", "a", "matrix"]), "f:3:3");
        let q = "stages:\n  \"a\\nb\": { kind: command }\n";
        assert_eq!(locate(q, &["stages", "a\nb"]), Some((2, 4)));
    }

    /// The empty key (only writable quoted) is found where it is, and a search for it ends.
    #[test]
    fn the_empty_key_is_found_and_never_hangs() {
        let t = "stages:\n  a:\n    params: { cmd: x, \"\": 1 }\n";
        assert_eq!(locate(t, &["stages", "a", "params", ""]), Some((3, 24)));
        let s = "stages:\n  '': { kind: command }\n";
        assert_eq!(locate(s, &["stages", ""]), Some((2, 4)));
        assert_eq!(locate("a: 1\n", &[""]), None);
        assert_eq!(at_best("f", "a: 1\n", &["a", ""]), "f:1:1");
    }
}
