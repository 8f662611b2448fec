//! Planning: for each stage instance, up to date, restore (outputs from the store, nothing
//! recomputed), run, or may run (downstream of a forced instance: it runs only if the forced
//! outputs come out different), with typed reasons (new stage, changed param, changed input,
//! upstream will run, output differs, forced, …), computed from fingerprints, run records, the
//! working tree and the pipeline's lock file without running anything.

pub mod check;
mod key;
pub mod reason;

pub use reason::Reason;

use crate::cache::RunRecord;
use crate::digest::{Blake3, Fingerprint};
use crate::interrupt::Markers;
use crate::project::Project;

/// What an instance needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    UpToDate,
    /// The record's outputs are placed again from the store (or the store repaired from the
    /// tree); nothing is recomputed.
    Restore,
    Run,
    /// Downstream of a forced instance, and up to date (or restorable) if the forced outputs
    /// come out identical: known only once the forced instance has run.
    MayRun,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::UpToDate => "up-to-date",
            State::Restore => "restore",
            State::Run => "run",
            State::MayRun => "may-run",
        }
    }
}

/// The plan of one instance.
#[derive(Debug, Clone)]
pub struct Planned {
    pub state: State,
    pub reasons: Vec<Reason>,
    /// Known when every upstream has a record (for `MayRun`: the fingerprint it has if the
    /// forced outputs come out identical).
    pub fingerprint: Option<Fingerprint>,
    /// The record of that fingerprint, when it is up to date or restorable.
    pub record: Option<RunRecord>,
    /// Forced and may-run instances: the record that holds if the forced outputs come out
    /// identical (what their downstream is planned against).
    pub prior: Option<RunRecord>,
}

impl Planned {
    fn run(reasons: Vec<Reason>) -> Planned {
        Planned {
            state: State::Run,
            reasons,
            fingerprint: None,
            record: None,
            prior: None,
        }
    }
}

/// What planning needs besides the project: which instances, which are forced, whether to
/// re-hash everything (ignoring the stat cache), and the markers of unfinished attempts.
pub struct PlanInput<'a> {
    pub selected: &'a [bool],
    pub force: &'a [bool],
    pub rehash: bool,
    pub markers: &'a Markers,
}

/// Plans the selected instances, in topological order.
pub fn plan(proj: &Project, input: &PlanInput) -> Vec<Option<Planned>> {
    let p = &proj.pipeline;
    let mut out: Vec<Option<Planned>> = vec![None; p.nodes.len()];
    for &i in &proj.dag.order {
        if input.selected[i] {
            out[i] = Some(plan_one(proj, input, &out, i));
        }
    }
    let records: Vec<Option<&RunRecord>> = out
        .iter()
        .map(|pl| pl.as_ref().and_then(|pl| pl.record.as_ref()))
        .collect();
    for (i, stray) in check::stray_checkpoints(proj, &records) {
        let pl = out[i].as_mut().expect("judged folders are planned");
        if pl.state == State::UpToDate {
            pl.state = State::Restore;
        }
        pl.reasons
            .extend(stray.into_iter().map(|path| Reason::OutputExtra { path }));
    }
    out
}

/// The upstream records an instance's fingerprint would see, when every upstream has a
/// record (`waiting` names those without): for forced and may-run upstreams, the record they
/// hold if their outputs come out identical, with the reason in `maybe`.
struct Ups<'a> {
    hashes: Vec<(String, Blake3)>,
    records: Vec<&'a RunRecord>,
    waiting: Vec<String>,
    maybe: Vec<Reason>,
}

fn upstreams<'a>(proj: &Project, planned: &'a [Option<Planned>], i: usize) -> Ups<'a> {
    let p = &proj.pipeline;
    let n = &p.nodes[i];
    let mut ups = Ups {
        hashes: Vec::new(),
        records: Vec::new(),
        waiting: Vec::new(),
        maybe: Vec::new(),
    };
    for u in proj
        .dag
        .fingerprint_upstream(i, n.kind.info().reads_measurements)
    {
        let id = p.nodes[u].id.clone();
        let rec = match planned[u].as_ref() {
            Some(pl) if matches!(pl.state, State::UpToDate | State::Restore) => pl.record.as_ref(),
            Some(pl) => pl.prior.as_ref().inspect(|_| {
                ups.maybe.push(if pl.state == State::MayRun {
                    Reason::UpstreamMayRun { id: id.clone() }
                } else {
                    Reason::UpstreamForced { id: id.clone() }
                })
            }),
            None => None,
        };
        match rec {
            Some(r) => {
                ups.hashes.push((id, proj.seen_hash(&p.nodes[u], r)));
                ups.records.push(r);
            }
            None => ups.waiting.push(id),
        }
    }
    ups
}

/// Plans instance `i`, its upstreams planned.
fn plan_one(proj: &Project, input: &PlanInput, planned: &[Option<Planned>], i: usize) -> Planned {
    let n = &proj.pipeline.nodes[i];
    let forced = input.force[i];
    let ups = upstreams(proj, planned, i);
    if !ups.waiting.is_empty() {
        let mut reasons: Vec<Reason> = forced.then_some(Reason::Forced).into_iter().collect();
        reasons.extend(
            ups.waiting
                .into_iter()
                .map(|id| Reason::UpstreamWillRun { id }),
        );
        return Planned::run(reasons);
    }
    let (key, _missing) = proj.key(n, ups.hashes, &ups.records);
    let fp = key.fingerprint();
    let record = proj.cache.record(&fp);
    let mut pl = Planned::run(Vec::new());
    pl.fingerprint = Some(fp);
    if forced {
        pl.reasons.push(Reason::Forced);
        pl.prior = record;
        return pl;
    }
    if let Some(rec) = record {
        let c = check::check(proj, n, &rec, input.rehash);
        if !c.unrestorable {
            pl.state = match (ups.maybe.is_empty(), c.reasons.is_empty()) {
                (false, _) => State::MayRun,
                (true, true) => State::UpToDate,
                (true, false) => State::Restore,
            };
            if pl.state == State::MayRun {
                pl.reasons = ups.maybe;
                pl.prior = Some(rec);
            } else {
                pl.reasons = c.reasons;
                pl.record = Some(rec);
            }
            return pl;
        }
        pl.reasons = c.reasons;
        return pl;
    }
    if input.markers.interrupted(&n.id, &fp) {
        pl.reasons.push(Reason::Interrupted);
    }
    match proj.lock.stages.get(&n.id) {
        None if pl.reasons.is_empty() => pl.reasons.push(Reason::NewStage),
        None => {}
        Some(e) => match proj.cache.record(&e.fingerprint) {
            Some(prev) => pl.reasons.extend(key::diff_reasons(&prev.key, &key)),
            None => pl.reasons.push(Reason::NoCachedRun),
        },
    }
    pl
}

/// The plan of every instance of a loaded project, nothing forced.
pub fn plan_all(proj: &Project, rehash: bool) -> Vec<Option<Planned>> {
    let n = proj.pipeline.nodes.len();
    let markers = Markers::load(proj.cache.dir());
    plan(
        proj,
        &PlanInput {
            selected: &vec![true; n],
            force: &vec![false; n],
            rehash,
            markers: &markers,
        },
    )
}
