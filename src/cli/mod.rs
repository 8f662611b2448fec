//! The command line: one file per subcommand; this file parses and dispatches.

use clap::{Parser, Subcommand};

pub mod bench;
pub mod clean;
pub mod eval;
pub mod generate;
pub mod graph;
pub mod pull;
pub mod push;
pub mod run;
pub mod score;
pub mod status;

#[derive(Parser)]
#[command(
    name = "pipe",
    version,
    about = "Run declarative ML pipelines written in YAML"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run a pipeline: only stages whose inputs changed run again.
    Run(run::RunArgs),
    /// Show which stages are up to date and why the others would run.
    Status(status::StatusArgs),
    /// Print the expanded DAG.
    Graph(graph::GraphArgs),
    /// Remove results and checkpoints of a pipeline, or unreferenced store objects.
    Clean(clean::CleanArgs),
    /// Score a text file with a checkpoint: tokens, NLL, perplexity.
    Score(score::ScoreArgs),
    /// Evaluation tools (BLEU).
    #[command(subcommand)]
    Eval(eval::EvalCommand),
    /// Generate a continuation from a checkpoint.
    Generate(generate::GenerateArgs),
    /// Measure training or decoding throughput of the seed configuration.
    Bench(bench::BenchArgs),
    /// Upload the pipeline's run records and objects to the remote store.
    Push(push::PushArgs),
    /// Download the pipeline's run records and objects missing locally from the remote store.
    Pull(pull::PullArgs),
}

/// The pipeline file and parameter overrides, shared by `run`, `status` and `graph`.
#[derive(clap::Args, Debug, Clone)]
pub struct PipelineArgs {
    /// The pipeline file (YAML), relative to the project root (the current folder).
    pub pipeline: std::path::PathBuf,
    /// Override one parameter: `--set stage.key=value` (repeatable; the value is YAML).
    #[arg(long = "set", value_name = "STAGE.KEY=VALUE")]
    pub set: Vec<String>,
    /// A YAML file `stage: { key: value }` layered over the pipeline's params.
    #[arg(long = "params", value_name = "FILE")]
    pub params: Option<std::path::PathBuf>,
}

impl PipelineArgs {
    /// Loads the project in the current folder.
    pub fn load(&self) -> crate::error::Result<crate::plan::Project> {
        let root = std::env::current_dir()?;
        let ov = crate::config::Overrides::with_env(self.set.clone(), self.params.clone());
        crate::plan::Project::load(&root, &self.pipeline, &ov)
    }
}

/// Parses the process arguments, runs the subcommand and returns the exit code
/// (0 success, 1 a stage failed, 2 usage or configuration error).
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let result = match cli.command {
        Command::Run(a) => run::run(a),
        Command::Status(a) => status::run(a),
        Command::Graph(a) => graph::run(a),
        Command::Clean(a) => clean::run(a),
        Command::Score(a) => score::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Generate(a) => generate::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Push(a) => push::run(a),
        Command::Pull(a) => pull::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}
