//! Rendering the expanded DAG: plain text, Graphviz DOT (petgraph's writer), Mermaid and JSON.

use super::Dag;
use crate::config::Pipeline;
use petgraph::dot::{Config, Dot, RankDir};
use petgraph::graph::DiGraph;

/// Plain text: one line per instance in topological order, with its kind and needs.
pub fn render_text(p: &Pipeline, d: &Dag) -> String {
    let mut s = String::new();
    for &i in &d.order {
        let n = &p.nodes[i];
        s.push_str(&format!("{} ({})", n.id, n.kind_name));
        if !n.needs.is_empty() {
            s.push_str(&format!(" <- {}", n.needs.join(", ")));
        }
        s.push('\n');
    }
    s
}

/// Graphviz DOT, written by petgraph: one node per instance labelled with its id and kind on
/// two lines, in topological order.
pub fn render_dot(p: &Pipeline, d: &Dag) -> String {
    let mut g: DiGraph<String, &str> = DiGraph::with_capacity(d.order.len(), 0);
    let mut at = vec![petgraph::graph::NodeIndex::end(); p.nodes.len()];
    for &i in &d.order {
        let n = &p.nodes[i];
        at[i] = g.add_node(format!("{}\n{}", n.id, n.kind_name));
    }
    for &i in &d.order {
        for &u in &d.upstream[i] {
            g.add_edge(at[u], at[i], "");
        }
    }
    let dot = Dot::with_config(&g, &[Config::EdgeNoLabel, Config::RankDir(RankDir::LR)]);
    format!("{dot}")
}

/// Mermaid flowchart.
pub fn render_mermaid(p: &Pipeline, d: &Dag) -> String {
    let mut s = String::from("flowchart LR\n");
    let mid = |i: usize| format!("n{i}");
    for &i in &d.order {
        let n = &p.nodes[i];
        s.push_str(&format!(
            "  {}[\"{} ({})\"]\n",
            mid(i),
            n.id.replace('"', "#quot;"),
            n.kind_name
        ));
    }
    for &i in &d.order {
        for &u in &d.upstream[i] {
            s.push_str(&format!("  {} --> {}\n", mid(u), mid(i)));
        }
    }
    s
}

/// JSON: `{"pipeline", "nodes": [{id, stage, kind, epoch?, matrix}], "edges": [{from, to}]}`,
/// nodes in topological order.
pub fn render_json(p: &Pipeline, d: &Dag) -> String {
    let nodes: Vec<serde_json::Value> = d
        .order
        .iter()
        .map(|&i| {
            let n = &p.nodes[i];
            let mut o = serde_json::json!({
                "id": n.id,
                "stage": n.stage,
                "kind": n.kind_name,
                "matrix": n.matrix,
            });
            if let Some(e) = n.epoch {
                o["epoch"] = e.into();
            }
            o
        })
        .collect();
    let edges: Vec<serde_json::Value> = d
        .order
        .iter()
        .flat_map(|&i| {
            d.upstream[i]
                .iter()
                .map(move |&u| serde_json::json!({ "from": p.nodes[u].id, "to": p.nodes[i].id }))
        })
        .collect();
    let v = serde_json::json!({ "pipeline": p.name, "nodes": nodes, "edges": edges });
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
    s.push('\n');
    s
}
