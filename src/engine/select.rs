//! Which instances a run covers (`--only` and what they need) and which it forces
//! (`--force`), by stage name or instance id.

use crate::error::{Result, UsageError};
use crate::project::Project;

/// The instances a run covers and forces, by index.
pub struct Selection {
    pub selected: Vec<bool>,
    pub force: Vec<bool>,
}

impl Selection {
    /// Everything, nothing forced.
    pub fn all(n: usize) -> Selection {
        Selection {
            selected: vec![true; n],
            force: vec![false; n],
        }
    }

    /// `--only` (each named instance and what it needs; none: everything) and `--force`.
    pub fn resolve(proj: &Project, only: &[String], force: &[String]) -> Result<Selection> {
        let mut sel = Selection::all(proj.pipeline.nodes.len());
        if !only.is_empty() {
            let mut roots = Vec::new();
            for o in only {
                roots.extend(matching(proj, o, "--only")?);
            }
            sel.selected = proj.dag.with_ancestors(&roots);
        }
        for f in force {
            for i in matching(proj, f, "--force")? {
                sel.force[i] = true;
            }
        }
        Ok(sel)
    }

    /// How many instances the run covers.
    pub fn count(&self) -> usize {
        self.selected.iter().filter(|&&s| s).count()
    }
}

/// Instances matching a stage name or an instance id.
fn matching(proj: &Project, name: &str, flag: &'static str) -> Result<Vec<usize>> {
    let p = &proj.pipeline;
    let v: Vec<usize> = (0..p.nodes.len())
        .filter(|&i| p.nodes[i].stage == name || p.nodes[i].id == name)
        .collect();
    if v.is_empty() {
        return Err(UsageError::UnknownStage {
            flag,
            name: name.to_string(),
            file: p.file.clone(),
            hint: crate::config::nearest(name, &p.stages),
        }
        .into());
    }
    Ok(v)
}
