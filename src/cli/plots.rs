//! `pipe plots diff A B …`: the training and validation curves of several experiments overlaid
//! on one chart each (training loss per step, validation loss and perplexity per epoch, and
//! every curve a `command` stage declares), labelled by experiment name and the parameters that
//! differ, as PNG and SVG. `pipe plots show [NAME]`: one experiment's curves, a running
//! training's so far. Charts go to `pipe_plots/` under the project root (or `--out DIR`).

use crate::error::Result;
use crate::experiment::{self, ExpError};
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum PlotsCommand {
    /// Overlay the curves of several experiments.
    Diff(DiffArgs),
    /// The curves of one experiment (default: the latest), a running training's so far.
    Show(ShowArgs),
}

#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// Experiment names (at least two).
    #[arg(required = true, num_args = 2..)]
    pub names: Vec<String>,
    /// Where the charts go (default: pipe_plots/ under the project root).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    pub name: Option<String>,
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub fn run(cmd: PlotsCommand) -> Result<i32> {
    let root = super::project::project_root()?;
    let (exps, out) = match cmd {
        PlotsCommand::Diff(a) => {
            let mut v = Vec::new();
            for n in &a.names {
                v.push(experiment::load(&root, n)?);
            }
            (v, a.out)
        }
        PlotsCommand::Show(a) => {
            let e = match &a.name {
                Some(n) => experiment::load(&root, n)?,
                None => experiment::load_all(&root)
                    .0
                    .into_iter()
                    .next_back()
                    .ok_or(ExpError::NoneYet)?,
            };
            (vec![e], a.out)
        }
    };
    let out = out.unwrap_or_else(|| root.join("pipe_plots"));
    let written = experiment::charts::draw(&root, &exps, &out).map_err(ExpError::from)?;
    if written.is_empty() {
        let names = exps.iter().map(|e| e.name.clone()).collect();
        return Err(ExpError::NoCurves(names).into());
    }
    for w in written {
        println!("{}\n{}", w.png.display(), w.svg.display());
    }
    Ok(0)
}
