//! `pipe graph`: prints the expanded DAG as text, Graphviz DOT, Mermaid or JSON. JSON nodes
//! carry the resources a Slurm job of the instance asks for; the text form shows them with
//! `--resources`, or always when the pipeline's executor is Slurm.

use super::PipelineArgs;
use crate::error::Result;
use crate::graph;

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Format {
    Text,
    Dot,
    Mermaid,
    Json,
}

#[derive(clap::Args)]
pub struct GraphArgs {
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Shorthand for `--format json`.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Text form: show each instance's Slurm resources (always shown when the pipeline's
    /// `executor.kind` is `slurm`; always in JSON).
    #[arg(long)]
    pub resources: bool,
}

pub fn run(args: GraphArgs) -> Result<i32> {
    let proj = args.pipeline.load()?;
    let p = &proj.pipeline;
    let format = if args.json { Format::Json } else { args.format };
    let show = args.resources || p.settings.uses_slurm();
    let (nodes, dag) = (&p.nodes, &proj.dag);
    let s = match format {
        Format::Text if show => with_resources(p, dag, graph::render_text(nodes, dag)),
        Format::Text => graph::render_text(nodes, dag),
        Format::Dot => graph::render_dot(nodes, dag),
        Format::Mermaid => graph::render_mermaid(nodes, dag),
        Format::Json => json_with_resources(p, dag, &graph::render_json(&p.name, nodes, dag)),
    };
    print!("{s}");
    Ok(0)
}

/// The text form (one line per instance, in `dag.order`) with `  [cpus=… mem=… time=…]` after
/// each line.
fn with_resources(p: &crate::config::Pipeline, dag: &graph::Dag, text: String) -> String {
    let mut s = String::new();
    for (line, &i) in text.lines().zip(&dag.order) {
        let r = p.resources(&p.nodes[i]);
        s.push_str(&format!("{line}  [{}]\n", r.describe()));
    }
    s
}

/// The JSON form with `"resources": {cpus, mem_mb, time_min, …}` in each node.
fn json_with_resources(p: &crate::config::Pipeline, dag: &graph::Dag, json: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(json) else {
        return json.to_string();
    };
    if let Some(nodes) = v["nodes"].as_array_mut() {
        for (node, &i) in nodes.iter_mut().zip(&dag.order) {
            let r = p.resources(&p.nodes[i]);
            node["resources"] = serde_json::to_value(r).unwrap_or_default();
        }
    }
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
    s.push('\n');
    s
}
