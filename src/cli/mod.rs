//! The command line: one file per subcommand; this file parses and dispatches.

use crate::error::PipeError;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

pub mod bench;
pub mod clean;
pub mod completions;
pub mod eval;
pub mod exp;
pub mod generate;
pub mod graph;
pub mod init;
pub mod instance;
pub mod metrics;
pub mod mirrors;
pub mod model_files;
pub mod params;
pub mod project;
pub mod pull;
pub mod push;
pub mod reproduce;
pub mod run;
pub mod score;
pub mod status;
pub mod style;

pub use project::project_root;

#[derive(Parser)]
#[command(
    name = "pipe",
    version,
    about = "Run declarative ML pipelines written in YAML"
)]
pub struct Cli {
    /// Change to DIR before doing anything (as `git -C`); the project root is then found from
    /// there.
    #[arg(short = 'C', global = true, value_name = "DIR")]
    pub chdir: Option<std::path::PathBuf>,
    /// Colour pipe's messages: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = style::ColorChoice::Auto,
        hide_possible_values = true
    )]
    pub color: style::ColorChoice,
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
    /// Continue prompts with a checkpoint (sampling or beam search; prompts from stdin too).
    Generate(generate::GenerateArgs),
    /// Measure training or decoding throughput of the seed configuration.
    Bench(bench::BenchArgs),
    /// Create a project: pipelines/hello.yaml (a small pipeline that runs) and a .gitignore.
    Init(init::InitArgs),
    /// Print a shell completion script (bash, zsh or fish).
    Completions(completions::CompletionsArgs),
    /// Headline metrics of the lock file, and their changes against a git revision.
    #[command(subcommand)]
    Metrics(metrics::MetricsCommand),
    /// Parameter changes against a git revision or another lock file.
    #[command(subcommand)]
    Params(params::ParamsCommand),
    /// Every recorded run of the pipeline's stages, side by side.
    #[command(subcommand)]
    Exp(exp::ExpCommand),
    /// Recompute every stage in a scratch copy and compare with the committed lock file.
    Reproduce(reproduce::ReproduceArgs),
    /// Upload the pipeline's run records and objects to the remote store.
    Push(push::PushArgs),
    /// Download the pipeline's run records and objects missing locally from the remote store.
    Pull(pull::PullArgs),
    /// Internal: run one instance inside a Slurm job (submitted by `pipe run --executor slurm`).
    #[command(name = "__instance", hide = true)]
    Instance(instance::InstanceArgs),
}

/// The pipeline file and parameter overrides, shared by `run`, `status` and `graph`.
#[derive(clap::Args, Debug, Clone)]
pub struct PipelineArgs {
    /// The pipeline file (YAML), relative to the current folder or to the project root.
    /// Default: `default:` in pipe.yaml, else the only file in pipelines/.
    pub pipeline: Option<std::path::PathBuf>,
    /// Override one parameter: `--set stage.key=value` (repeatable; the value is YAML).
    #[arg(long = "set", value_name = "STAGE.KEY=VALUE")]
    pub set: Vec<String>,
    /// A YAML file `stage: { key: value }` layered over the pipeline's params.
    #[arg(long = "params", value_name = "FILE")]
    pub params: Option<std::path::PathBuf>,
}

impl PipelineArgs {
    /// The project root and the pipeline file (relative to the root), found from the current
    /// folder as [`project`] describes.
    pub fn resolve(&self) -> crate::error::Result<(std::path::PathBuf, std::path::PathBuf)> {
        let cwd = std::env::current_dir().map_err(PipeError::current_dir)?;
        let root = project::find_root(&cwd);
        let file = project::resolve_pipeline(&root, &cwd, self.pipeline.as_deref())?;
        Ok((root, file))
    }

    /// The overrides: `--set`, `--params` and the `PIPE_<STAGE>__<KEY>` environment.
    pub fn overrides(&self) -> crate::config::Overrides {
        crate::config::Overrides::with_env(self.set.clone(), self.params.clone())
    }

    /// Loads the project the current folder belongs to.
    pub fn load(&self) -> crate::error::Result<crate::project::Project> {
        let (root, file) = self.resolve()?;
        crate::project::Project::load(&root, &file, &self.overrides())
    }
}

/// The last `--color VALUE` / `--color=VALUE` among the arguments, read before clap parses.
fn color_flag(args: &[std::ffi::OsString]) -> Option<style::ColorChoice> {
    let mut found = None;
    let mut it = args.iter().skip(1).map(|a| a.to_string_lossy());
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        let v = if a == "--color" {
            it.next().map(|v| v.into_owned())
        } else {
            a.strip_prefix("--color=").map(str::to_string)
        };
        if let Some(v) = v {
            found = <style::ColorChoice as clap::ValueEnum>::from_str(&v, false).ok();
        }
    }
    found
}

/// Parses the process arguments, runs the subcommand and returns the exit code
/// (0 success, 1 a stage failed, 2 usage or configuration error).
pub fn main() -> i32 {
    // clap prints its own usage errors and help before `--color` is parsed: tell it the flag.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let clap_color = match color_flag(&args) {
        Some(style::ColorChoice::Always) => clap::ColorChoice::Always,
        Some(style::ColorChoice::Never) => clap::ColorChoice::Never,
        _ => clap::ColorChoice::Auto,
    };
    let parsed = Cli::command()
        .color(clap_color)
        .try_get_matches_from(&args)
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    style::init(cli.color);
    if let Some(dir) = &cli.chdir {
        if let Err(e) = std::env::set_current_dir(dir) {
            eprintln!(
                "{} -C {}: cannot change to this folder: {e}",
                style::err("error:"),
                dir.display()
            );
            return 2;
        }
    }
    let result = match cli.command {
        Command::Run(a) => run::run(a),
        Command::Status(a) => status::run(a),
        Command::Graph(a) => graph::run(a),
        Command::Clean(a) => clean::run(a),
        Command::Score(a) => score::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Generate(a) => generate::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Init(a) => init::run(a),
        Command::Completions(a) => completions::run(a),
        Command::Metrics(a) => metrics::run(a),
        Command::Params(a) => params::run(a),
        Command::Exp(a) => exp::run(a),
        Command::Reproduce(a) => reproduce::run(a),
        Command::Push(a) => push::run(a),
        Command::Pull(a) => pull::run(a),
        Command::Instance(a) => instance::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{} {e}", style::err("error:"));
            e.exit_code()
        }
    }
}
