//! The glue between `pipe run` and the experiment library: what a run tells it at its start
//! (the planned instances) and at its end (outcomes and fingerprints). Kept apart from the run
//! loop so that `cli/run.rs` makes two calls.

use crate::experiment::{self, Experiment, Given, InstanceRef, RunInput, Status};
use crate::instance::Outcome;
use crate::plan::{Planned, Project};
use std::path::PathBuf;

/// The overrides of this invocation: `--set`, the `--params` file (path and content) and the
/// `PIPE_<STAGE>__<KEY>` variables naming a stage of the pipeline.
pub fn given(proj: &Project, sets: &[String], params: Option<&std::path::Path>) -> Given {
    let env_name = |s: &str| s.to_uppercase().replace(['-', '.'], "_");
    let env = std::env::vars()
        .filter(|(k, _)| {
            k.strip_prefix("PIPE_")
                .and_then(|r| r.split_once("__"))
                .is_some_and(|(st, _)| proj.pipeline.stages.iter().any(|n| env_name(n) == st))
        })
        .collect();
    let params_file = params.map(|p| {
        let text = std::fs::read_to_string(proj.pipeline.root.join(p)).unwrap_or_default();
        (p.display().to_string(), text)
    });
    Given {
        set: sets.to_vec(),
        params_file,
        env,
    }
}

/// The instances with what the plan (and, after the run, the outcomes) know.
fn instances(
    proj: &Project,
    plans: &[Option<Planned>],
    outcomes: Option<&[Option<Outcome>]>,
    records: Option<&[Option<crate::cache::record::RunRecord>]>,
) -> Vec<InstanceRef> {
    proj.pipeline
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| plans[*i].is_some())
        .map(|(i, n)| {
            let outcome = match outcomes.and_then(|o| o[i].as_ref()) {
                None => "planned",
                Some(Outcome::Ran(_)) => "ran",
                Some(Outcome::Restored) => "restored",
                Some(Outcome::UpToDate) => "up-to-date",
                Some(Outcome::Failed { .. }) => "failed",
                Some(Outcome::Interrupted { .. }) => "interrupted",
                Some(Outcome::Skipped(_)) => "skipped",
            };
            let fingerprint = records
                .and_then(|r| r[i].as_ref().map(|r| r.fingerprint))
                .or_else(|| plans[i].as_ref().and_then(|p| p.fingerprint));
            InstanceRef {
                id: n.id.clone(),
                stage: n.stage.clone(),
                kind: n.kind_name.clone(),
                fingerprint,
                outcome: outcome.to_string(),
            }
        })
        .collect()
}

/// Records the experiment a run is (status `Running`); a failure to record is a warning.
pub fn start(
    proj: &Project,
    sets: &[String],
    params: Option<&std::path::Path>,
    name: Option<String>,
    plans: &[Option<Planned>],
) -> Option<Experiment> {
    let input = RunInput {
        root: &proj.pipeline.root,
        pipeline: &proj.pipeline.name,
        file: &proj.pipeline.file,
        stages: &proj.pipeline.stages,
        given: given(proj, sets, params),
        instances: instances(proj, plans, None, None),
        name,
    };
    match experiment::start(input) {
        Ok(e) => Some(e),
        Err(e) => {
            eprintln!("warning: the experiment was not recorded: {e}");
            None
        }
    }
}

/// Completes the experiment after the run and says its name.
pub fn finish(
    proj: &Project,
    exp: Option<Experiment>,
    plans: &[Option<Planned>],
    outcomes: &[Option<Outcome>],
    records: &[Option<crate::cache::record::RunRecord>],
) {
    let Some(e) = exp else { return };
    let inst = instances(proj, plans, Some(outcomes), Some(records));
    let status = if crate::interrupt::requested().is_some()
        || inst.iter().any(|i| i.outcome == "interrupted")
    {
        Status::Interrupted
    } else if inst
        .iter()
        .any(|i| i.outcome == "failed" || i.outcome == "skipped")
    {
        Status::Failed
    } else {
        Status::Done
    };
    match experiment::finish(&proj.pipeline.root, e, inst, status) {
        Ok(e) => eprintln!("experiment: {}", e.name),
        Err(e) => eprintln!("warning: the experiment was not recorded: {e}"),
    }
}

/// Where experiments live (for messages).
pub fn dir(proj: &Project) -> PathBuf {
    crate::layout::Layout::new(&proj.pipeline.root)
        .cache()
        .experiments()
}
