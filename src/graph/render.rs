//! Rendering the expanded DAG: plain text, Graphviz DOT (petgraph's writer), Mermaid and JSON,
//! of any instances that implement [`Shown`].

use super::Dag;
use petgraph::dot::{Config, Dot, RankDir};
use petgraph::graph::DiGraph;

/// An instance as the renderers show it.
pub trait Shown {
    fn id(&self) -> &str;
    fn kind(&self) -> &str;
    /// Its upstream ids as the pipeline file lists them.
    fn needs(&self) -> &[String];
    /// JSON fields besides `id` and `kind` (e.g. `stage`, `matrix`, `epoch`).
    fn json_fields(&self) -> serde_json::Map<String, serde_json::Value>;
}

/// Plain text: one line per instance in topological order, with its kind and needs.
pub fn render_text<N: Shown>(nodes: &[N], d: &Dag) -> String {
    let mut s = String::new();
    for &i in &d.order {
        let n = &nodes[i];
        s.push_str(&format!("{} ({})", n.id(), n.kind()));
        if !n.needs().is_empty() {
            s.push_str(&format!(" <- {}", n.needs().join(", ")));
        }
        s.push('\n');
    }
    s
}

/// Graphviz DOT, written by petgraph: one node per instance labelled with its id and kind on
/// two lines, in topological order.
pub fn render_dot<N: Shown>(nodes: &[N], d: &Dag) -> String {
    let mut g: DiGraph<String, &str> = DiGraph::with_capacity(d.order.len(), 0);
    let mut at = vec![petgraph::graph::NodeIndex::end(); nodes.len()];
    for &i in &d.order {
        let n = &nodes[i];
        at[i] = g.add_node(format!("{}\n{}", n.id(), n.kind()));
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
pub fn render_mermaid<N: Shown>(nodes: &[N], d: &Dag) -> String {
    let mut s = String::from("flowchart LR\n");
    let mid = |i: usize| format!("n{i}");
    for &i in &d.order {
        let n = &nodes[i];
        s.push_str(&format!(
            "  {}[\"{} ({})\"]\n",
            mid(i),
            n.id().replace('"', "#quot;"),
            n.kind()
        ));
    }
    for &i in &d.order {
        for &u in &d.upstream[i] {
            s.push_str(&format!("  {} --> {}\n", mid(u), mid(i)));
        }
    }
    s
}

/// JSON: `{"pipeline", "nodes": [{id, kind, …}], "edges": [{from, to}]}`, nodes in
/// topological order with the fields [`Shown::json_fields`] adds (`stage`, `matrix`, `epoch`).
pub fn render_json<N: Shown>(pipeline: &str, nodes: &[N], d: &Dag) -> String {
    let shown: Vec<serde_json::Value> = d
        .order
        .iter()
        .map(|&i| {
            let n = &nodes[i];
            let mut o = n.json_fields();
            o.insert("id".into(), n.id().into());
            o.insert("kind".into(), n.kind().into());
            serde_json::Value::Object(o)
        })
        .collect();
    let edges: Vec<serde_json::Value> = d
        .order
        .iter()
        .flat_map(|&i| {
            d.upstream[i]
                .iter()
                .map(move |&u| serde_json::json!({ "from": nodes[u].id(), "to": nodes[i].id() }))
        })
        .collect();
    let v = serde_json::json!({ "pipeline": pipeline, "nodes": shown, "edges": edges });
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
    s.push('\n');
    s
}
