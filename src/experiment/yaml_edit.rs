//! Editing a pipeline file in place so that it produces an experiment: a parameter set in a
//! stage's `params` (added when absent) or a matrix key narrowed to one value, keeping every
//! other byte (comments, layout, quoting). Each edit is checked by parsing the result: if it
//! is not exactly the intended change, the edit is refused with the line to write by hand.

use serde_json::Value;

/// A value as YAML flow text (JSON is valid YAML: strings double-quoted).
fn flow(v: &Value) -> String {
    serde_json::to_string(v).expect("serialises")
}

/// The byte position just after `key:` when the key starts at `at`.
fn after_colon(text: &str, at: usize) -> Option<usize> {
    let i = text[at..].find(':')?;
    Some(at + i + 1)
}

fn skip_spaces(text: &str, mut i: usize) -> usize {
    while text[i..].starts_with([' ', '\t']) {
        i += 1;
    }
    i
}

/// Whether the key at `at` sits in a flow map (`{ a: 1, key: 2 }`).
fn in_flow(text: &str, at: usize) -> bool {
    text[..at]
        .trim_end_matches([' ', '\t', '\n', '\r'])
        .ends_with(['{', ','])
}

/// The span of a scalar or flow value starting at `start`: up to the end of the line (block)
/// or to the `,`/`}` that ends it (flow), without a trailing comment or spaces.
fn value_end(text: &str, start: usize, flow_ctx: bool) -> usize {
    let b = text.as_bytes();
    let (mut i, mut depth, mut quote) = (start, 0i32, None::<u8>);
    while i < b.len() {
        let c = b[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                b'"' | b'\'' => quote = Some(c),
                b'[' | b'{' => depth += 1,
                b']' | b'}' if depth > 0 => depth -= 1,
                b',' | b'}' | b']' if depth == 0 && flow_ctx => break,
                b'\n' if depth == 0 => break,
                b'#' if depth == 0 && i > start && b[i - 1] == b' ' => break,
                _ => {}
            },
        }
        i += 1;
    }
    start + text[start..i].trim_end().len()
}

/// The indentation of the first non-blank line after byte `pos`.
fn next_indent(text: &str, pos: usize) -> Option<(usize, String)> {
    let eol = pos + text[pos..].find('\n')? + 1;
    let mut at = eol;
    for line in text[eol..].split_inclusive('\n') {
        let t = line.trim_start();
        if !t.is_empty() && !t.starts_with('#') {
            return Some((eol, line[..line.len() - t.len()].to_string()));
        }
        at += line.len();
    }
    let _ = at;
    None
}

/// `text` with `stages.<stage>.params.<key>` set to `value` (or `stages.<stage>.matrix.<key>`
/// narrowed to `[value]` when `matrix`), by text edit only.
fn edit(text: &str, stage: &str, key: &str, value: &Value, matrix: bool) -> Option<String> {
    let v = flow(value);
    let section = if matrix { "matrix" } else { "params" };
    if let Some((l, c)) = crate::config::locate(text, &["stages", stage, section, key]) {
        let at = line_col_to_byte(text, l, c);
        let start = skip_spaces(text, after_colon(text, at)?);
        let end = value_end(text, start, in_flow(text, at));
        let new = if matrix { format!("[{v}]") } else { v };
        return Some(format!("{}{new}{}", &text[..start], &text[end..]));
    }
    if matrix {
        return None;
    }
    if let Some((l, c)) = crate::config::locate(text, &["stages", stage, "params"]) {
        let at = line_col_to_byte(text, l, c);
        let start = skip_spaces(text, after_colon(text, at)?);
        if text[start..].starts_with("{}") {
            return Some(format!(
                "{}{{ {key}: {v} }}{}",
                &text[..start],
                &text[start + 2..]
            ));
        }
        if text[start..].starts_with('{') {
            return Some(format!(
                "{}{{ {key}: {v},{}",
                &text[..start],
                &text[start + 1..]
            ));
        }
        let (eol, indent) = next_indent(text, start)?;
        return Some(format!(
            "{}{indent}{key}: {v}\n{}",
            &text[..eol],
            &text[eol..]
        ));
    }
    let (l, c) = crate::config::locate(text, &["stages", stage])?;
    let at = line_col_to_byte(text, l, c);
    let start = skip_spaces(text, after_colon(text, at)?);
    if text[start..].starts_with('{') {
        return Some(format!(
            "{}{{ params: {{ {key}: {v} }},{}",
            &text[..start],
            &text[start + 1..]
        ));
    }
    let (eol, indent) = next_indent(text, start)?;
    Some(format!(
        "{}{indent}params: {{ {key}: {v} }}\n{}",
        &text[..eol],
        &text[eol..]
    ))
}

fn line_col_to_byte(text: &str, line: usize, col: usize) -> usize {
    let start: usize = text
        .split_inclusive('\n')
        .take(line - 1)
        .map(str::len)
        .sum();
    start + col - 1
}

/// The document with the intended change made on the parsed tree.
fn expected(
    doc: &serde_yaml::Value,
    stage: &str,
    key: &str,
    value: &Value,
    matrix: bool,
) -> Option<serde_yaml::Value> {
    let mut d = doc.clone();
    let st = d.get_mut("stages")?.get_mut(stage)?.as_mapping_mut()?;
    let section = if matrix { "matrix" } else { "params" };
    let sec_key = serde_yaml::Value::from(section);
    if !st.contains_key(&sec_key) {
        st.insert(
            sec_key.clone(),
            serde_yaml::Value::Mapping(Default::default()),
        );
    }
    let m = st.get_mut(&sec_key)?.as_mapping_mut()?;
    let v: serde_yaml::Value = serde_yaml::to_value(value).ok()?;
    let v = if matrix {
        serde_yaml::Value::Sequence(vec![v])
    } else {
        v
    };
    m.insert(serde_yaml::Value::from(key), v);
    Some(d)
}

/// Sets `stages.<stage>.params.<key>` (or narrows the matrix key `key`) to `value` in the
/// pipeline text `text` of file `file`, or says why it cannot, with the change to make by hand.
pub fn set(
    file: &str,
    text: &str,
    stage: &str,
    key: &str,
    value: &Value,
) -> Result<String, String> {
    let by_hand = |why: &str| {
        format!(
            "{file}: cannot set `{stage}.{key}` to {} automatically ({why}); edit the file: \
             stages → {stage} → params → {key}: {}",
            flow(value),
            flow(value)
        )
    };
    let doc: serde_yaml::Value = serde_yaml::from_str(text)
        .map_err(|e| by_hand(&format!("the file does not parse: {e}")))?;
    let matrix = doc
        .get("stages")
        .and_then(|s| s.get(stage))
        .and_then(|s| s.get("matrix"))
        .and_then(|m| m.get(key))
        .is_some();
    let want = expected(&doc, stage, key, value, matrix)
        .ok_or_else(|| by_hand(&format!("no stage `{stage}` with a map of parameters")))?;
    let new = edit(text, stage, key, value, matrix)
        .ok_or_else(|| by_hand("its place in the file was not found"))?;
    match serde_yaml::from_str::<serde_yaml::Value>(&new) {
        Ok(got) if got == want => Ok(new),
        _ => Err(by_hand(
            "the layout around it is too unusual to edit safely",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const P: &str = "# my pipeline\nname: x\nstages:\n  a:\n    kind: command   # the first\n    params:\n      lr: 0.1  # tuned\n      cmd: \"echo ${lr}\"\n  b: { kind: command, params: { cmd: x, n: 1 } }\n  c:\n    kind: command\n    matrix: { w: [1, 2] }\n    params: { cmd: y }\n  d: { kind: command }\n";

    #[test]
    fn edits_keep_comments_and_layout() {
        let t = set("p.yaml", P, "a", "lr", &json!(0.3)).unwrap();
        assert!(t.contains("      lr: 0.3  # tuned\n"), "{t}");
        assert!(t.starts_with("# my pipeline\n"));
        let t = set("p.yaml", &t, "b", "n", &json!(5)).unwrap();
        assert!(t.contains("params: { cmd: x, n: 5 } }"), "{t}");
        let t = set("p.yaml", &t, "b", "extra", &json!("s")).unwrap();
        assert!(
            t.contains("params: { extra: \"s\", cmd: x, n: 5 } }"),
            "{t}"
        );
        let t = set("p.yaml", &t, "c", "w", &json!(2)).unwrap();
        assert!(t.contains("matrix: { w: [2] }"), "{t}");
        let t = set("p.yaml", &t, "a", "new", &json!(true)).unwrap();
        assert!(
            t.contains("    params:\n      new: true\n      lr: 0.3"),
            "{t}"
        );
        let t = set("p.yaml", &t, "d", "k", &json!(1)).unwrap();
        assert!(t.contains("d: { params: { k: 1 }, kind: command }"), "{t}");
        assert_eq!(t.lines().count(), P.lines().count() + 1);
    }

    #[test]
    fn refuses_what_it_cannot_do_safely() {
        let e = set("p.yaml", P, "zz", "lr", &json!(1)).unwrap_err();
        assert!(e.contains("p.yaml") && e.contains("zz.lr"), "{e}");
        let anchors = "stages:\n  a: &x\n    kind: command\n    params: { cmd: x }\n  b: *x\n";
        let e = set("p.yaml", anchors, "b", "cmd", &json!("y")).unwrap_err();
        assert!(e.contains("edit the file"), "{e}");
    }
}
