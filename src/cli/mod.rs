//! The command line: one file per subcommand; this file parses and dispatches.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

pub mod bench;
pub mod clean;
pub mod completions;
pub mod eval;
pub mod exp;
pub mod exp_queue;
pub mod exp_record;
pub mod generate;
pub mod graph;
pub mod init;
pub mod instance;
pub mod metrics;
pub mod mirrors;
pub mod model_files;
pub mod params;
pub mod plots;
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
    /// Experiments: show them side by side, diff, apply, remove, queue and run.
    #[command(subcommand)]
    Exp(exp::ExpCommand),
    /// Training and declared curves of experiments overlaid (PNG and SVG).
    #[command(subcommand)]
    Plots(plots::PlotsCommand),
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
    /// The pipeline: a file (relative to the current folder or to the project root), its name
    /// (`ci` for pipelines/ci.yaml) or its lock file. Default: `default:` in pipe.yaml, else
    /// the only file in pipelines/.
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
        project::locate(self.pipeline.as_deref())
    }

    /// The overrides: `--set`, `--params` and the `PIPE_<STAGE>__<KEY>` environment.
    pub fn overrides(&self) -> crate::config::Overrides {
        crate::config::Overrides::with_env(self.set.clone(), self.params.clone())
    }

    /// Loads the project the current folder belongs to.
    pub fn load(&self) -> crate::error::Result<crate::project::Project> {
        let (root, file) = self.resolve()?;
        Ok(crate::project::Project::load(
            &root,
            &file,
            &self.overrides(),
        )?)
    }
}

/// Threads a `--threads` flag may ask for per available core: beyond that, more threads only
/// add start-up time (each is created and given a stack) and contention, never speed.
pub const THREADS_PER_CORE: usize = 4;

/// Parses `--threads N` (`generate`, `score`, `bench`): a whole number from 1 to
/// [`THREADS_PER_CORE`] × the cores available to pipe.
pub fn threads_arg(s: &str) -> std::result::Result<usize, String> {
    parse_threads(s, crate::decode::default_threads())
}

fn parse_threads(s: &str, cores: usize) -> std::result::Result<usize, String> {
    let limit = THREADS_PER_CORE * cores.max(1);
    match s.trim().parse::<i128>() {
        Ok(v) if v < 1 => Err(format!("must be at least 1, got {v}")),
        Ok(v) if v > limit as i128 => Err(format!(
            "{v} is more than {limit}, the limit ({THREADS_PER_CORE} × the {cores} cores \
             available); give at most {limit}"
        )),
        Ok(v) => Ok(v as usize),
        Err(_) => Err(format!("expected a whole number, got {s:?}")),
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
        Command::Plots(a) => plots::run(a),
        Command::Reproduce(a) => reproduce::run(a),
        Command::Push(a) => push::run(a),
        Command::Pull(a) => pull::run(a),
        Command::Instance(a) => instance::run(a),
    };
    // The command is over: no temporary file of it is left to sweep after a kill.
    crate::cache::tmp::finish_all();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{} {e}", style::err("error:"));
            e.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_capped_at_a_multiple_of_the_cores() {
        assert_eq!(parse_threads("8", 2), Ok(8));
        assert_eq!(parse_threads(" 1", 2), Ok(1));
        let e = parse_threads("100000", 2).unwrap_err();
        assert_eq!(
            e,
            "100000 is more than 8, the limit (4 × the 2 cores available); give at most 8"
        );
        assert_eq!(
            parse_threads("0", 2).unwrap_err(),
            "must be at least 1, got 0"
        );
        assert!(parse_threads("-3", 2).is_err());
        assert!(parse_threads("99999999999999999999999999", 2).is_err());
        assert!(parse_threads("many", 2)
            .unwrap_err()
            .contains("whole number"));
    }
}
