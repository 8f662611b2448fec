//! Confinement of what stages declare: every output lies strictly inside the project, away from
//! `.git` and pipe's own folders, with no symbolic link among its existing parent folders, and
//! no two instances claim one output (or one inside the other). (What stages may read is
//! `inputs`.)

use super::ids::shown;
use super::parse::cfg;
use super::Node;
use crate::error::Result;
use std::collections::HashMap;
use std::path::{Component, Path};

/// pipe's own folders: outputs may not be in them.
const OWN: [&str; 3] = crate::layout::OWN_DIRS;

/// A relative path as its normal components (`./x`, `x/`, `a/../b` resolved lexically).
pub fn normalise(p: &Path) -> std::result::Result<Vec<String>, &'static str> {
    if p.as_os_str().is_empty() {
        return Err("is empty");
    }
    let mut out: Vec<String> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if out.pop().is_none() {
                    return Err("leaves the project (`..`)");
                }
            }
            Component::Normal(s) => {
                let s = s.to_string_lossy();
                if s.contains('\0') {
                    return Err("contains a NUL character");
                }
                out.push(s.into_owned())
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err("is absolute; give a path relative to the project root")
            }
        }
    }
    Ok(out)
}

/// The project-relative components of a path given relative to `root` or absolute inside it.
fn relative(root: &Path, p: &Path) -> Option<Vec<String>> {
    let rel = if p.is_absolute() {
        p.strip_prefix(root).ok()?
    } else {
        p
    };
    if rel.as_os_str().is_empty() {
        return Some(Vec::new());
    }
    normalise(rel).ok()
}

/// Why an output (normalised) may not be written, if it may not: the path rules, then (with
/// `root`) a linked parent folder on disk.
fn bad_output(root: Option<&Path>, c: &[String], protected: &[Vec<String>]) -> Option<String> {
    if c.is_empty() {
        return Some("is the project root".into());
    }
    if c.iter().any(|x| x == ".git") {
        return Some("is or is inside `.git`".into());
    }
    if OWN.contains(&c[0].as_str()) || c[0] == crate::layout::PIPELINES {
        return Some(format!("is or is inside pipe's folder `{}/`", c[0]));
    }
    for p in protected {
        if p.starts_with(c) {
            return Some(format!(
                "is or contains `{}`, a file of the pipeline itself",
                p.join("/")
            ));
        }
    }
    let mut at = root?.to_path_buf();
    for (k, part) in c[..c.len() - 1].iter().enumerate() {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                return Some(format!(
                "has a parent folder `{}` that is a symbolic link; pipe never writes through links",
                c[..=k].join("/")
            ))
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    None
}

/// The path rules of `outs` for one path relative to the project root (also applied to the
/// paths of run records from a store or a remote; links on disk are refused when writing):
/// its normal components, or why it may not be an output.
pub fn output_rule(path: &Path) -> std::result::Result<Vec<String>, String> {
    let c = normalise(path).map_err(str::to_string)?;
    bad_output(None, &c, &[]).map_or(Ok(c), Err)
}

/// Checks every instance's declared outputs. `pipeline_file` is the pipeline path
/// as given; `blame(node, key)` is where the node's `key` parameter was set.
pub(crate) fn check(
    root: &Path,
    pipeline_file: &Path,
    lock_file: &Path,
    nodes: &[Node],
    blame: impl Fn(&Node, &str) -> String,
) -> Result<()> {
    let protected: Vec<Vec<String>> = [pipeline_file, lock_file]
        .iter()
        .filter_map(|p| relative(root, p))
        .filter(|c| !c.is_empty())
        .collect();
    let rule = "outputs must be files or folders strictly inside the project, outside `.git`, `cache/`, `results/`, `checkpoints/` and `pipelines/`";
    let mut claimed: HashMap<Vec<String>, (usize, String)> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for o in n.kind.declared_outputs(&n.params) {
            let shown_o = shown(&o.to_string_lossy());
            let c = normalise(&o).map_err(|why| {
                cfg(format!(
                    "{}: stage `{}`: output `{shown_o}` {why}; {rule}",
                    blame(n, "outs"),
                    n.id
                ))
            })?;
            if let Some(why) = bad_output(Some(root), &c, &protected) {
                return Err(cfg(format!(
                    "{}: stage `{}`: output `{shown_o}` {why}; {rule}",
                    blame(n, "outs"),
                    n.id
                )));
            }
            if let Some((j, other)) = claimed.get(&c) {
                if *j != i {
                    return Err(overlap(&blame, &nodes[*j], other, n, &shown_o, true));
                }
            }
            claimed.insert(c, (i, shown_o));
        }
    }
    // One output inside another's folder.
    let mut paths: Vec<(&Vec<String>, &(usize, String))> = claimed.iter().collect();
    paths.sort();
    for (c, (i, shown_o)) in &paths {
        for k in 1..c.len() {
            if let Some((j, other)) = claimed.get(&c[..k]) {
                if j != i {
                    return Err(overlap(
                        &blame, &nodes[*j], other, &nodes[*i], shown_o, false,
                    ));
                }
            }
        }
    }
    Ok(())
}

fn overlap(
    blame: &impl Fn(&Node, &str) -> String,
    a: &Node,
    a_out: &str,
    b: &Node,
    b_out: &str,
    same: bool,
) -> crate::error::PipeError {
    let what = if same && a_out == b_out {
        format!("both declare output `{a_out}`")
    } else if same {
        format!("both declare one output (`{a_out}` and `{b_out}`)")
    } else {
        format!("declare overlapping outputs (`{a_out}` and `{b_out}`)")
    };
    cfg(format!(
        "{}: stages `{}` and `{}` {what}; each output must have one producer (`{}` at {})",
        blame(b, "outs"),
        a.id,
        b.id,
        a.id,
        blame(a, "outs")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised() {
        assert_eq!(normalise(Path::new("./x/")).unwrap(), vec!["x"]);
        assert_eq!(normalise(Path::new("a/../b")).unwrap(), vec!["b"]);
        assert_eq!(normalise(Path::new(".")).unwrap(), Vec::<String>::new());
        assert!(normalise(Path::new("../x")).is_err());
        assert!(normalise(Path::new("/tmp/x")).is_err());
        assert_eq!(
            normalise(Path::new("a\0b")).unwrap_err(),
            "contains a NUL character"
        );
    }
}
