//! The expanded DAG on petgraph: edges from each upstream instance to its dependents and a
//! deterministic topological order. `stages` orders the stage declarations before expansion;
//! `render` prints the DAG.

pub mod render;
pub mod stages;

pub use render::{render_dot, render_json, render_mermaid, render_text};

use crate::config::Pipeline;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// The DAG of a pipeline's instances. Node weights are indices into `Pipeline::nodes`.
pub struct Dag {
    pub graph: DiGraph<usize, ()>,
    /// Instance indices in topological order (ties broken by file order).
    pub order: Vec<usize>,
    /// Upstream instance indices of each instance, in the order the stage sees them.
    pub upstream: Vec<Vec<usize>>,
    /// Direct dependents of each instance.
    pub downstream: Vec<Vec<usize>>,
    pub index: HashMap<String, usize>,
}

impl Dag {
    /// Builds the DAG. Config validation has already rejected cycles and unknown needs.
    pub fn new(p: &Pipeline) -> Dag {
        let mut graph = DiGraph::new();
        let idx: Vec<NodeIndex> = (0..p.nodes.len()).map(|i| graph.add_node(i)).collect();
        let index: HashMap<String, usize> = p
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.clone(), i))
            .collect();
        let mut upstream = vec![Vec::new(); p.nodes.len()];
        let mut downstream = vec![Vec::new(); p.nodes.len()];
        for (i, n) in p.nodes.iter().enumerate() {
            for u in &n.needs {
                let j = index[u];
                graph.add_edge(idx[j], idx[i], ());
                upstream[i].push(j);
                downstream[j].push(i);
            }
        }
        let order = topo_order(&graph);
        Dag {
            graph,
            order,
            upstream,
            downstream,
            index,
        }
    }

    /// The instance `i` and everything it depends on, transitively.
    pub fn with_ancestors(&self, roots: &[usize]) -> Vec<bool> {
        let mut keep = vec![false; self.upstream.len()];
        let mut stack: Vec<usize> = roots.to_vec();
        while let Some(i) = stack.pop() {
            if !keep[i] {
                keep[i] = true;
                stack.extend(self.upstream[i].iter().copied());
            }
        }
        keep
    }

    /// Everything `i` depends on, transitively (without `i`), in topological order.
    pub fn ancestors(&self, i: usize) -> Vec<usize> {
        let keep = self.with_ancestors(&[i]);
        self.order
            .iter()
            .copied()
            .filter(|&j| j != i && keep[j])
            .collect()
    }

    /// The instances whose records enter the fingerprint of `i`: its direct upstreams, or every
    /// ancestor for kinds that read measurements (reports list every instance they cover).
    pub fn fingerprint_upstream(&self, i: usize, all_ancestors: bool) -> Vec<usize> {
        if all_ancestors {
            self.ancestors(i)
        } else {
            self.upstream[i].clone()
        }
    }

    /// Everything downstream of `i`, transitively (without `i`).
    pub fn descendants(&self, i: usize) -> Vec<usize> {
        let mut seen = vec![false; self.upstream.len()];
        let mut stack = self.downstream[i].clone();
        let mut out = Vec::new();
        while let Some(j) = stack.pop() {
            if !seen[j] {
                seen[j] = true;
                out.push(j);
                stack.extend(self.downstream[j].iter().copied());
            }
        }
        out.sort();
        out
    }
}

/// Kahn's algorithm taking the smallest ready node index first: stable and deterministic.
pub fn topo_order(g: &DiGraph<usize, ()>) -> Vec<usize> {
    let mut indeg: Vec<usize> = g
        .node_indices()
        .map(|n| g.neighbors_directed(n, Direction::Incoming).count())
        .collect();
    let mut ready: BinaryHeap<Reverse<usize>> = g
        .node_indices()
        .filter(|n| indeg[n.index()] == 0)
        .map(|n| Reverse(n.index()))
        .collect();
    let mut out = Vec::with_capacity(indeg.len());
    while let Some(Reverse(i)) = ready.pop() {
        out.push(g[NodeIndex::new(i)]);
        for m in g.neighbors_directed(NodeIndex::new(i), Direction::Outgoing) {
            indeg[m.index()] -= 1;
            if indeg[m.index()] == 0 {
                ready.push(Reverse(m.index()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plan order on a literal graph: ties go to the earlier node, dependencies first.
    #[test]
    fn topo_order_is_stable() {
        // 0:a 1:b(needs d) 2:c(needs a) 3:d(needs a)
        let mut g = DiGraph::new();
        let n: Vec<_> = (0..4).map(|i| g.add_node(i)).collect();
        g.add_edge(n[3], n[1], ());
        g.add_edge(n[0], n[2], ());
        g.add_edge(n[0], n[3], ());
        assert_eq!(topo_order(&g), vec![0, 2, 3, 1]);
    }
}
