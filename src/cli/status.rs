//! `pipe status`: one line per stage instance, up to date or the reasons it would run;
//! `--json` for machines (with each instance's Slurm resources), `--verify` re-hashes every
//! stored and materialised output, `--resources` (automatic when the pipeline's executor is
//! Slurm) adds a line with the resources a Slurm job of each instance asks for.

use super::PipelineArgs;
use crate::error::Result;
use crate::plan;
use crate::project::Project;
use std::io::Write;

#[derive(clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Print `{"stages": [{"id", "kind", "state", "fingerprint", "reasons": [{"reason", …,
    /// "text"}]}]}` in topological order; state is `up-to-date`, `restore` or `run`.
    #[arg(long)]
    pub json: bool,
    /// Re-hash every store object and materialised output instead of trusting the stat cache;
    /// reports and changes nothing.
    #[arg(long)]
    pub verify: bool,
    /// Add a `resources: cpus=… mem=… time=…` line under each instance (always shown when the
    /// pipeline's `executor.kind` is `slurm`; always in `--json`).
    #[arg(long)]
    pub resources: bool,
}

pub fn run(args: StatusArgs) -> Result<i32> {
    let mut proj = args.pipeline.load()?;
    proj.cache
        .check_links()
        .map_err(|e| crate::error::PipeError::config(e.to_string()))?;
    if args.verify {
        proj.cache.set_read_only();
    }
    let plans = plan::plan_all(&proj, args.verify);
    // `--verify` reports and changes nothing, not even the stat cache.
    if !args.verify {
        proj.stats.save();
    }
    let show = args.resources || proj.pipeline.settings.uses_slurm();
    print!("{}", render_with(&proj, &plans, args.json, show));
    let _ = std::io::stdout().flush();
    Ok(0)
}

/// The status text (or JSON) of a plan, in topological order.
pub fn render(proj: &Project, plans: &[Option<plan::Planned>], json: bool) -> String {
    render_with(proj, plans, json, false)
}

/// [`render`], with a `resources:` line under each instance when `resources` (JSON always
/// has them).
pub fn render_with(
    proj: &Project,
    plans: &[Option<plan::Planned>],
    json: bool,
    resources: bool,
) -> String {
    let p = &proj.pipeline;
    if json {
        let stages: Vec<serde_json::Value> = proj
            .dag
            .order
            .iter()
            .filter_map(|&i| {
                plans[i].as_ref().map(|pl| {
                    let reasons: Vec<serde_json::Value> = pl
                        .reasons
                        .iter()
                        .map(|r| {
                            let mut v = serde_json::to_value(r).expect("serialises");
                            v["text"] = serde_json::Value::String(r.to_string());
                            v
                        })
                        .collect();
                    serde_json::json!({
                        "id": p.nodes[i].id,
                        "kind": p.nodes[i].kind_name,
                        "state": pl.state.as_str(),
                        "fingerprint": pl.fingerprint,
                        "reasons": reasons,
                        "resources": p.resources(&p.nodes[i]),
                    })
                })
            })
            .collect();
        return format!(
            "{}\n",
            serde_json::to_string_pretty(&serde_json::json!({ "stages": stages }))
                .expect("serialises")
        );
    }
    let width = p.nodes.iter().map(|n| n.id.len()).max().unwrap_or(0);
    let mut s = String::new();
    let (mut fresh, mut stale, mut restored, mut maybe) = (0, 0, 0, 0);
    for &i in &proj.dag.order {
        let Some(pl) = &plans[i] else { continue };
        let id = &p.nodes[i].id;
        match pl.state {
            plan::State::UpToDate => {
                fresh += 1;
                s.push_str(&format!("{id:width$}  up to date\n"))
            }
            plan::State::Restore => {
                restored += 1;
                s.push_str(&format!(
                    "{id:width$}  will restore: {}\n",
                    plan::reason::join(&pl.reasons)
                ))
            }
            plan::State::Run => {
                stale += 1;
                s.push_str(&format!(
                    "{id:width$}  will run: {}\n",
                    plan::reason::join(&pl.reasons)
                ))
            }
            plan::State::MayRun => {
                maybe += 1;
                s.push_str(&format!(
                    "{id:width$}  may run: {}\n",
                    plan::reason::join(&pl.reasons)
                ))
            }
        }
        if resources {
            s.push_str(&format!(
                "{:width$}  resources: {}\n",
                "",
                p.resources(&p.nodes[i]).describe()
            ));
        }
    }
    let restored = if restored > 0 {
        format!(", {restored} will be restored from the store")
    } else {
        String::new()
    };
    let maybe = if maybe > 0 {
        format!(", {maybe} may run (if a forced stage's outputs change)")
    } else {
        String::new()
    };
    s.push_str(&format!(
        "{}: {fresh} up to date, {stale} will run{maybe}{restored}\n",
        p.name
    ));
    s
}
