//! The graph of stage declarations (before expansion), on petgraph: built from `needs` in any
//! order, a deterministic topological order of the stages, cycles reported as their path, and
//! the upstream kinds each kind reads.

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;
use std::collections::HashMap;

/// What is wrong with the stage declarations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageGraphError {
    /// `stage` needs `need`, which is not a stage of the pipeline.
    UnknownNeed { stage: String, need: String },
    /// The `needs` form a cycle: the path, starting and ending at the same stage.
    Cycle { path: Vec<String> },
    /// `stage` (of `kind`) reads an upstream of kind `missing`, but none of its needs is one.
    MissingKind {
        stage: String,
        kind: String,
        missing: String,
    },
}

impl StageGraphError {
    /// The stage to blame.
    pub fn stage(&self) -> &str {
        match self {
            StageGraphError::UnknownNeed { stage, .. }
            | StageGraphError::MissingKind { stage, .. } => stage,
            StageGraphError::Cycle { path } => &path[0],
        }
    }
}

/// A stage declaration as the graph sees it.
pub struct Decl<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    pub needs: &'a [String],
    /// Upstream kinds the kind reads (`KindInfo::needs`).
    pub reads: &'a [&'static str],
}

/// Stage indices in a topological order of `needs` (ties go to the stage written first), or
/// the unknown need or cycle found.
pub fn stage_order(decls: &[Decl]) -> Result<Vec<usize>, StageGraphError> {
    let index: HashMap<&str, usize> = decls.iter().enumerate().map(|(i, d)| (d.name, i)).collect();
    let mut g: DiGraph<usize, ()> = DiGraph::with_capacity(decls.len(), decls.len());
    let idx: Vec<NodeIndex> = (0..decls.len()).map(|i| g.add_node(i)).collect();
    for (i, d) in decls.iter().enumerate() {
        for n in d.needs {
            let Some(&j) = index.get(n.as_str()) else {
                return Err(StageGraphError::UnknownNeed {
                    stage: d.name.to_string(),
                    need: n.clone(),
                });
            };
            g.update_edge(idx[j], idx[i], ());
        }
    }
    let order = super::topo_order(&g);
    if order.len() < decls.len() {
        return Err(StageGraphError::Cycle {
            path: cycle_path(&g)
                .iter()
                .map(|&i| decls[i].name.to_string())
                .collect(),
        });
    }
    Ok(order)
}

/// The first stage whose kind reads an upstream kind that none of its `needs` has.
pub fn missing_kind(decls: &[Decl]) -> Option<StageGraphError> {
    let index: HashMap<&str, usize> = decls.iter().enumerate().map(|(i, d)| (d.name, i)).collect();
    for d in decls {
        for want in d.reads {
            let has = d.needs.iter().any(|n| {
                index
                    .get(n.as_str())
                    .is_some_and(|&j| decls[j].kind == *want)
            });
            if !has {
                return Some(StageGraphError::MissingKind {
                    stage: d.name.to_string(),
                    kind: d.kind.to_string(),
                    missing: want.to_string(),
                });
            }
        }
    }
    None
}

/// One cycle of `g` as a path in `needs` direction (`a` needs `b` needs … needs `a`),
/// starting at the earliest-written stage on it.
fn cycle_path(g: &DiGraph<usize, ()>) -> Vec<usize> {
    // The strongly connected component holding the earliest-written stage on any cycle.
    let on_cycle = |c: &Vec<NodeIndex>| c.len() > 1 || g.contains_edge(c[0], c[0]);
    let Some(comp) = tarjan_scc(g)
        .into_iter()
        .filter(on_cycle)
        .min_by_key(|c| c.iter().map(|n| n.index()).min())
    else {
        return Vec::new();
    };
    let start = *comp.iter().min().expect("a component has a node");
    let inside = |n: NodeIndex| comp.contains(&n);
    // Breadth-first search back to `start` along needs (edges point upstream → downstream,
    // so `needs` is the incoming direction), preferring earlier-written stages.
    let mut prev: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(u) = queue.pop_front() {
        let mut next: Vec<NodeIndex> = g
            .neighbors_directed(u, Direction::Incoming)
            .filter(|&v| inside(v))
            .collect();
        next.sort();
        for v in next {
            if v == start {
                let mut path = vec![start.index()];
                let mut x = u;
                let mut back = Vec::new();
                while x != start {
                    back.push(x.index());
                    x = prev[&x];
                }
                back.reverse();
                path.extend(back);
                path.push(start.index());
                return path;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = prev.entry(v) {
                e.insert(u);
                queue.push_back(v);
            }
        }
    }
    vec![start.index(), start.index()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decls<'a>(v: &'a [(&'a str, Vec<String>)]) -> Vec<Decl<'a>> {
        v.iter()
            .map(|(n, needs)| Decl {
                name: n,
                kind: "command",
                needs,
                reads: &[],
            })
            .collect()
    }

    #[test]
    fn forward_needs_are_ordered() {
        let v = vec![("b", vec!["a".to_string()]), ("a", vec![]), ("c", vec![])];
        assert_eq!(stage_order(&decls(&v)), Ok(vec![1, 0, 2]));
    }

    #[test]
    fn cycles_are_reported_as_paths() {
        let v = vec![
            ("x", vec![]),
            ("a", vec!["c".to_string()]),
            ("b", vec!["a".to_string()]),
            ("c", vec!["b".to_string(), "x".to_string()]),
        ];
        let e = stage_order(&decls(&v)).unwrap_err();
        assert_eq!(
            e,
            StageGraphError::Cycle {
                path: vec!["a".into(), "c".into(), "b".into(), "a".into()]
            }
        );
        let v = vec![("s", vec!["s".to_string()])];
        assert_eq!(
            stage_order(&decls(&v)).unwrap_err(),
            StageGraphError::Cycle {
                path: vec!["s".into(), "s".into()]
            }
        );
    }
}
