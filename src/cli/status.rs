//! `pipe status`: one line per stage instance, up to date or the reasons it would run;
//! `--json` for machines, `--verify` re-hashes every stored and materialised output.

use super::PipelineArgs;
use crate::error::Result;
use crate::plan;
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
}

pub fn run(args: StatusArgs) -> Result<i32> {
    let proj = args.pipeline.load()?;
    let nn = proj.pipeline.nodes.len();
    let interrupted = |id: &str| crate::interrupt::was_interrupted(&proj.cache.dir, id);
    let plans = plan::plan(
        &proj,
        &vec![true; nn],
        &vec![false; nn],
        args.verify,
        &interrupted,
    );
    // `--verify` reports and changes nothing, not even the stat cache.
    if !args.verify {
        proj.stats.save();
    }
    print!("{}", render(&proj, &plans, args.json));
    let _ = std::io::stdout().flush();
    Ok(0)
}

/// The status text (or JSON) of a plan, in topological order.
pub fn render(proj: &plan::Project, plans: &[Option<plan::Planned>], json: bool) -> String {
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
    let (mut fresh, mut stale, mut restored) = (0, 0, 0);
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
        }
    }
    let restored = if restored > 0 {
        format!(", {restored} will be restored from the store")
    } else {
        String::new()
    };
    s.push_str(&format!(
        "{}: {fresh} up to date, {stale} will run{restored}\n",
        p.name
    ));
    s
}
