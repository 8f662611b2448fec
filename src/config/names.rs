//! "Did you mean": the closest valid name, offered only when it is close to what was typed.

/// Edit distance (Levenshtein, by characters).
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let v = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
            cur.push(v);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The valid name closest to `name`, when it is close: an edit distance of at most
/// `max(2, len/3)` characters of what was typed. `None` when nothing is that close.
pub fn closest<'a>(name: &str, valid: impl IntoIterator<Item = &'a String>) -> Option<&'a String> {
    let limit = (name.chars().count() / 3).max(2);
    valid
        .into_iter()
        .map(|v| (levenshtein(name, v), v))
        .filter(|(d, _)| *d <= limit)
        .min_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)))
        .map(|(_, v)| v)
}

/// A hint sentence: "did you mean `x`?" for a close match, otherwise the valid names.
pub fn nearest<'a>(name: &str, valid: impl IntoIterator<Item = &'a String>) -> String {
    let valid: Vec<&String> = valid.into_iter().collect();
    if valid.is_empty() {
        return "this kind takes no parameters".into();
    }
    match closest(name, valid.iter().copied()) {
        Some(v) => format!("did you mean `{v}`?"),
        None => {
            const SHOWN: usize = 12;
            let mut list: Vec<String> =
                valid.iter().take(SHOWN).map(|v| format!("`{v}`")).collect();
            if valid.len() > SHOWN {
                list.push(format!("and {} more", valid.len() - SHOWN));
            }
            format!("expected one of {}", list.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_key() {
        let keys = vec!["lr".to_string(), "batch_size".to_string()];
        assert_eq!(nearest("batch_sise", &keys), "did you mean `batch_size`?");
    }

    #[test]
    fn unrelated_names_get_no_suggestion() {
        let stages = vec!["train".to_string(), "tokenize".to_string()];
        assert_eq!(closest("nosuch", &stages), None);
        assert_eq!(
            nearest("nosuch", &stages),
            "expected one of `train`, `tokenize`"
        );
        assert_eq!(closest("trian", &stages).map(String::as_str), Some("train"));
    }
}
