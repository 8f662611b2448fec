//! `pipe graph`: prints the expanded DAG as text, Graphviz DOT, Mermaid or JSON.

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
}

pub fn run(args: GraphArgs) -> Result<i32> {
    let proj = args.pipeline.load()?;
    let p = &proj.pipeline;
    let format = if args.json { Format::Json } else { args.format };
    let s = match format {
        Format::Text => graph::render_text(p, &proj.dag),
        Format::Dot => graph::render_dot(p, &proj.dag),
        Format::Mermaid => graph::render_mermaid(p, &proj.dag),
        Format::Json => graph::render_json(p, &proj.dag),
    };
    print!("{s}");
    Ok(0)
}
