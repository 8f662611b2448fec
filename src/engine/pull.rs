//! `run --pull`: before anything computes, the runs the lock file names are downloaded, then,
//! as long as the plan finds a fingerprint to compute that the remote has, that run too (each
//! download verified by blake3). Forced instances are never pulled.

use crate::digest::Fingerprint;
use crate::error::Result;
use crate::plan::{self, PlanInput, Planned, State};
use crate::project::Project;
use crate::remote::Remote;
use std::collections::BTreeSet;

/// Pulls what the plan needs; returns the plan after pulling.
pub(crate) fn pull_and_plan(
    proj: &Project,
    remote: &Remote,
    input: &PlanInput,
) -> Result<Vec<Option<Planned>>> {
    let fps = crate::remote::sync::lock_fingerprints(&proj.lock);
    let mut total = crate::remote::pull(&proj.cache, &fps, remote)?;
    let mut tried: BTreeSet<Fingerprint> = fps.into_iter().collect();
    loop {
        let plans = plan::plan(proj, input);
        let want: Vec<Fingerprint> = plans
            .iter()
            .enumerate()
            .filter(|(i, _)| !input.force[*i])
            .filter_map(|(_, pl)| pl.as_ref())
            .filter(|pl| pl.state == State::Run)
            .filter_map(|pl| pl.fingerprint)
            .filter(|fp| tried.insert(*fp))
            .collect();
        if want.is_empty() {
            eprintln!(
                "pulled {} runs and {} objects ({} bytes) from {}{}",
                total.records,
                total.objects,
                total.bytes,
                remote.describe(),
                if total.corrupt.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; corrupt on the remote, not used: {}",
                        total.corrupt.join(", ")
                    )
                }
            );
            return Ok(plans);
        }
        let t = crate::remote::pull(&proj.cache, &want, remote)?;
        total.records += t.records;
        total.objects += t.objects;
        total.bytes += t.bytes;
        total.corrupt.extend(t.corrupt);
    }
}
