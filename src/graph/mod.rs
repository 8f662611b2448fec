//! The expanded DAG on petgraph: edges from each upstream instance to its dependents and a
//! deterministic topological order, built from plain indices (the graph knows nothing of
//! pipelines). `stages` orders the stage declarations before expansion; `render` prints the
//! DAG of anything that implements [`Shown`].

pub mod render;
pub mod stages;

pub use render::{render_dot, render_json, render_mermaid, render_text, Shown};

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// The DAG of a pipeline's instances, by instance index.
pub struct Dag {
    /// Instance indices in topological order (ties go to the lower index).
    pub order: Vec<usize>,
    /// Upstream instance indices of each instance, in the order the stage sees them.
    pub upstream: Vec<Vec<usize>>,
    /// Direct dependents of each instance.
    pub downstream: Vec<Vec<usize>>,
}

impl Dag {
    /// Builds the DAG from each instance's upstream indices (in the order its stage sees
    /// them). The caller has already rejected cycles.
    pub fn new(upstream: Vec<Vec<usize>>) -> Dag {
        let mut graph = DiGraph::with_capacity(upstream.len(), upstream.len());
        let idx: Vec<NodeIndex> = (0..upstream.len()).map(|i| graph.add_node(i)).collect();
        let mut downstream = vec![Vec::new(); upstream.len()];
        for (i, ups) in upstream.iter().enumerate() {
            for &j in ups {
                graph.add_edge(idx[j], idx[i], ());
                downstream[j].push(i);
            }
        }
        let order = topo_order(&graph);
        Dag {
            order,
            upstream,
            downstream,
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

    #[test]
    fn upstream_lists_give_order_and_dependents() {
        // 0:a 1:b(needs d) 2:c(needs a) 3:d(needs a)
        let d = Dag::new(vec![vec![], vec![3], vec![0], vec![0]]);
        assert_eq!(d.order, vec![0, 2, 3, 1]);
        assert_eq!(d.downstream, vec![vec![2, 3], vec![], vec![], vec![1]]);
        assert_eq!(d.ancestors(1), vec![0, 3]);
        assert_eq!(d.descendants(0), vec![1, 2, 3]);
        assert_eq!(d.with_ancestors(&[2]), vec![true, false, true, false]);
    }

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
