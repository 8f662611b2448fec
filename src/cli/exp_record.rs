//! The glue between `pipe run` and the experiment library: the experiment is recorded as
//! running before `engine::run` (its overrides, no instances yet) and completed from the run's
//! summary after it (every instance's id, kind, fingerprint and outcome). A run that ends in an
//! error before any stage could run (a bad flag, `--frozen`, a busy project lock) records
//! nothing; any other error records the experiment as failed (or interrupted), never as done.
//! `pipe run --compare A,B` becomes `--set <report>.compare=[A, B]` here.

use crate::config::Pipeline;
use crate::engine::{Outcome, RunSummary};
use crate::error::{PipeError, Result};
use crate::experiment::{self, Experiment, Given, InstanceRef, RunInput, Status};

/// The overrides of this invocation: `--set`, the `--params` file (path and content) and the
/// `PIPE_<STAGE>__<KEY>` variables naming a stage of the pipeline.
pub fn given(p: &Pipeline, sets: &[String], params: Option<&std::path::Path>) -> Given {
    let env_name = |s: &str| s.to_uppercase().replace(['-', '.'], "_");
    let env = std::env::vars()
        .filter(|(k, _)| {
            k.strip_prefix("PIPE_")
                .and_then(|r| r.split_once("__"))
                .is_some_and(|(st, _)| p.stages.iter().any(|n| env_name(n) == st))
        })
        .collect();
    let params_file = params.map(|f| {
        let text = std::fs::read_to_string(p.root.join(f)).unwrap_or_default();
        (f.display().to_string(), text)
    });
    Given {
        set: sets.to_vec(),
        params_file,
        env,
    }
}

/// The experiment's state: the run was stopped, a stage failed (or was skipped behind one), or
/// everything it reached completed.
fn status_of(s: &RunSummary) -> Status {
    let any = |f: fn(&Outcome) -> bool| s.stages.iter().any(|st| f(&st.outcome));
    if s.interrupted.is_some() || any(|o| matches!(o, Outcome::Interrupted { .. })) {
        Status::Interrupted
    } else if any(|o| matches!(o, Outcome::Failed { .. } | Outcome::Skipped { .. })) {
        Status::Failed
    } else {
        Status::Done
    }
}

/// The instances the run reached, with their kinds from the pipeline.
fn instances(p: &Pipeline, s: &RunSummary) -> Vec<InstanceRef> {
    s.stages
        .iter()
        .map(|st| {
            let outcome = match &st.outcome {
                Outcome::Ran { .. } => "ran",
                Outcome::Restored => "restored",
                Outcome::UpToDate => "up-to-date",
                Outcome::Failed { .. } => "failed",
                Outcome::Interrupted { .. } => "interrupted",
                Outcome::Skipped { .. } => "skipped",
            };
            let kind = p
                .nodes
                .iter()
                .find(|n| n.id == st.id)
                .map(|n| n.kind_name.clone())
                .unwrap_or_default();
            InstanceRef {
                id: st.id.clone(),
                stage: st.stage.clone(),
                kind,
                fingerprint: st.fingerprint,
                outcome: outcome.to_string(),
            }
        })
        .collect()
}

/// What [`start`] recorded, the record it replaced (a rerun of `-n NAME`) and the folders it
/// created.
pub struct Started {
    exp: Experiment,
    replaced: Option<Experiment>,
    created: Vec<std::path::PathBuf>,
}

/// Records the experiment a run is (status `Running`, no instances yet); a failure to record
/// is a warning.
pub fn start(
    p: &Pipeline,
    sets: &[String],
    params: Option<&std::path::Path>,
    name: Option<String>,
) -> Option<Started> {
    let replaced = name
        .as_deref()
        .and_then(|n| experiment::load(&p.root, n).ok());
    let created = experiment::missing_dirs(&p.root);
    let input = RunInput {
        root: &p.root,
        pipeline: &p.name,
        file: &p.file,
        stages: &p.stages,
        given: given(p, sets, params),
        instances: Vec::new(),
        name,
    };
    match experiment::start(input) {
        Ok(exp) => Some(Started {
            exp,
            replaced,
            created,
        }),
        Err(e) => {
            eprintln!("warning: the experiment was not recorded: {e}");
            None
        }
    }
}

/// Completes the experiment from the run's summary, says its name on stderr and returns it.
pub fn finish(p: &Pipeline, started: Option<Started>, s: &RunSummary) -> Option<String> {
    let st = started?;
    match experiment::finish(&p.root, st.exp, instances(p, s), status_of(s)) {
        Ok(e) => {
            eprintln!("experiment: {}", e.name);
            Some(e.name)
        }
        Err(e) => {
            eprintln!("warning: the experiment was not recorded: {e}");
            None
        }
    }
}

/// After a run that ended in error `err`: an error raised before any stage could run leaves
/// the experiments as they were (the record [`start`] replaced comes back); any other records
/// the experiment as failed, or interrupted when a signal stopped the run.
pub fn abandon(p: &Pipeline, started: Option<Started>, err: &PipeError) {
    let Some(st) = started else { return };
    let nothing_ran = matches!(
        err,
        PipeError::Config(_)
            | PipeError::Usage(_)
            | PipeError::Frozen(_)
            | PipeError::ProjectLock(_)
    );
    if nothing_ran && crate::interrupt::requested().is_none() {
        let restored = match &st.replaced {
            Some(old) => experiment::save(&p.root, old),
            None => experiment::remove(&p.root, &st.exp.name),
        };
        if let Err(e) = restored {
            eprintln!("warning: experiment {}: {e}", st.exp.name);
        }
        // The disk as it was: the folders the record needed go too (when still empty).
        for d in &st.created {
            let _ = std::fs::remove_dir(d);
        }
        return;
    }
    let (status, word) = match crate::interrupt::requested() {
        Some(_) => (Status::Interrupted, "interrupted"),
        None => (Status::Failed, "failed"),
    };
    let name = st.exp.name.clone();
    match experiment::finish(&p.root, st.exp, Vec::new(), status) {
        Ok(e) => eprintln!("experiment: {} ({word})", e.name),
        Err(e) => eprintln!("warning: experiment {name} was not recorded: {e}"),
    }
}

/// `--compare A,B`: a `--set <stage>.compare=["A", "B"]` for every `report` stage of the
/// pipeline; each name must be a recorded experiment, and the pipeline must have a report.
pub fn compare_sets(args: &super::PipelineArgs, names: &[String]) -> Result<Vec<String>> {
    let (root, file) = args.resolve()?;
    for n in names {
        experiment::load(&root, n)?;
    }
    let p = crate::config::load(&root, &file, &args.overrides())?;
    let mut reports: Vec<&str> = Vec::new();
    for n in p.nodes.iter().filter(|n| n.kind_name == "report") {
        if !reports.contains(&n.stage.as_str()) {
            reports.push(&n.stage);
        }
    }
    if reports.is_empty() {
        return Err(PipeError::usage(format!(
            "--compare {}: {} has no `report` stage to draw the comparison in (`pipe plots \
             diff {}` draws it without one)",
            names.join(","),
            file.display(),
            names.join(" ")
        )));
    }
    let list = serde_json::to_string(names).expect("names serialise");
    Ok(reports
        .into_iter()
        .map(|s| format!("{s}.compare={list}"))
        .collect())
}
