//! `pipe graph`: prints the expanded DAG as text, Graphviz DOT or Mermaid.

use super::PipelineArgs;
use crate::error::Result;
use crate::graph;

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Format {
    Text,
    Dot,
    Mermaid,
}

#[derive(clap::Args)]
pub struct GraphArgs {
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

pub fn run(args: GraphArgs) -> Result<i32> {
    let proj = args.pipeline.load()?;
    let p = &proj.pipeline;
    let s = match args.format {
        Format::Text => graph::render_text(p, &proj.dag),
        Format::Dot => graph::render_dot(p, &proj.dag),
        Format::Mermaid => graph::render_mermaid(p, &proj.dag),
    };
    print!("{s}");
    Ok(0)
}
