//! The run loop: all scheduling state in one [`DrainState`] (cargo's `job_queue` is the model),
//! and one message type, [`Finished`], that executors send when an attempt of an instance ends.
//! The loop starts what is ready (up to `-j` at once; heavy kinds on this machine one at a time
//! through the compute slot), hands each batch to its executor, and on each message completes
//! the instance (releasing its dependents), retries it when the executor says so, or records
//! the failure (skipping its dependents with `--keep-going`, stopping otherwise).

use super::display::Display;
use super::select::Selection;
use super::slot::ComputeSlot;
use super::summary::Outcome;
use crate::cache::RunRecord;
use crate::executor::{Env, Executor, Finished, Task};
use crate::instance::staging::Staging;
use crate::instance::{Completed, Done, InstanceError};
use crate::interrupt::Markers;
use crate::plan::{Planned, State};
use crate::project::Project;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::mpsc;
use std::thread::Scope;

/// How the loop runs.
pub(crate) struct LoopOptions {
    /// Instances at once.
    pub jobs: usize,
    pub keep_going: bool,
    /// Echo stage log lines to the terminal.
    pub echo: bool,
}

/// What the loop leaves: each selected instance's outcome (None: not reached after a failure
/// or a signal) and the record of each completed one.
pub(crate) struct Drained {
    pub outcomes: Vec<Option<Outcome>>,
    pub records: Vec<Option<RunRecord>>,
}

/// The two executors of a run: `[0]` restores and checks (always local), `[1]` computes.
pub(crate) type Executors<'a> = [&'a dyn Executor; 2];

/// Everything the loop knows while it runs.
struct DrainState<'a> {
    proj: &'a Project,
    plans: &'a [Option<Planned>],
    sel: &'a Selection,
    opts: &'a LoopOptions,
    markers: &'a Markers,
    /// Each instance's position in the topological order (the ready heap's key).
    pos: Vec<usize>,
    /// Upstreams not yet completed, per instance.
    waiting: Vec<usize>,
    ready: BinaryHeap<Reverse<(usize, usize)>>,
    outcomes: Vec<Option<Outcome>>,
    records: Vec<Option<RunRecord>>,
    /// Attempts started, per instance.
    attempts: Vec<u32>,
    /// Which executor runs each running instance.
    on: Vec<usize>,
    /// Running instances, in all and per executor.
    running: usize,
    running_on: [usize; 2],
    /// No more instances start (a failure without `--keep-going`, or a signal).
    stop: bool,
    display: Display,
}

/// Runs the plan: every selected instance, upstreams first.
pub(crate) fn drain(
    proj: &Project,
    plans: &[Option<Planned>],
    sel: &Selection,
    markers: &Markers,
    opts: &LoopOptions,
    execs: Executors,
) -> Drained {
    let staging = Staging::new(
        proj.pipeline.root.clone(),
        proj.cache.layout().staging(std::process::id()),
    );
    let env = Env {
        proj,
        staging: &staging,
    };
    let slot = ComputeSlot::default();
    let mut st = DrainState::new(proj, plans, sel, opts, markers);
    let (tx, rx) = mpsc::channel::<Finished>();
    std::thread::scope(|s| loop {
        st.start_ready(s, &env, &slot, execs, &tx);
        if st.running == 0 {
            break;
        }
        let Ok(msg) = rx.recv() else { break };
        st.finished(msg, execs);
    });
    st.display.finish();
    Drained {
        outcomes: st.outcomes,
        records: st.records,
    }
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

impl<'a> DrainState<'a> {
    fn new(
        proj: &'a Project,
        plans: &'a [Option<Planned>],
        sel: &'a Selection,
        opts: &'a LoopOptions,
        markers: &'a Markers,
    ) -> Self {
        let nn = proj.pipeline.nodes.len();
        let mut pos = vec![0; nn];
        for (k, &i) in proj.dag.order.iter().enumerate() {
            pos[i] = k;
        }
        let waiting: Vec<usize> = (0..nn)
            .map(|i| {
                proj.dag.upstream[i]
                    .iter()
                    .filter(|&&u| sel.selected[u])
                    .count()
            })
            .collect();
        let ready = (0..nn)
            .filter(|&i| sel.selected[i] && waiting[i] == 0)
            .map(|i| Reverse((pos[i], i)))
            .collect();
        let display = Display::new(
            sel.count() as u64,
            expected_durations(proj, plans),
            opts.jobs,
        );
        DrainState {
            proj,
            plans,
            sel,
            opts,
            markers,
            pos,
            waiting,
            ready,
            outcomes: vec![None; nn],
            records: vec![None; nn],
            attempts: vec![0; nn],
            on: vec![0; nn],
            running: 0,
            running_on: [0; 2],
            stop: false,
            display,
        }
    }

    /// Starts what can start now, one batch per executor.
    fn start_ready<'s, 'e>(
        &mut self,
        s: &'s Scope<'s, 'e>,
        env: &'e Env<'e>,
        slot: &'e ComputeSlot,
        execs: Executors<'e>,
        tx: &mpsc::Sender<Finished>,
    ) where
        'a: 'e,
    {
        let mut batches: [Vec<Task<'e>>; 2] = [Vec::new(), Vec::new()];
        let mut deferred = Vec::new();
        while !self.stop && self.running < self.opts.jobs.max(1) {
            if crate::interrupt::requested().is_some() {
                self.stop = true;
                break;
            }
            let Some(Reverse((k, i))) = self.ready.pop() else {
                break;
            };
            let pl = self.plans[i]
                .as_ref()
                .expect("selected instances are planned");
            // Fast path: up to date according to the plan.
            if pl.state == State::UpToDate && !self.sel.force[i] {
                let record = pl.record.clone().expect("up-to-date plans have a record");
                self.completed(
                    i,
                    Completed {
                        done: Done::UpToDate,
                        record,
                    },
                );
                continue;
            }
            let which = usize::from(matches!(pl.state, State::Run | State::MayRun));
            let exec = execs[which];
            let heavy = self.proj.pipeline.nodes[i].kind.info().heavy && exec.on_this_machine();
            let hold = match heavy.then(|| slot.try_take()) {
                None => None,
                Some(Some(guard)) => Some(Box::new(guard) as Box<dyn Send + 'e>),
                Some(None) => {
                    deferred.push(Reverse((k, i)));
                    continue;
                }
            };
            if exec.capacity(self.running_on[which]) == 0 {
                deferred.push(Reverse((k, i)));
                continue;
            }
            batches[which].push(self.task(i, heavy, hold));
            self.on[i] = which;
            self.running += 1;
            self.running_on[which] += 1;
        }
        self.ready.extend(deferred);
        for (which, tasks) in batches.into_iter().enumerate() {
            if !tasks.is_empty() {
                execs[which].start(s, env, tasks, tx);
            }
        }
    }

    /// The next attempt of instance `i`.
    fn task<'e>(&mut self, i: usize, heavy: bool, hold: Option<Box<dyn Send + 'e>>) -> Task<'e> {
        let n = &self.proj.pipeline.nodes[i];
        let ups = self
            .proj
            .dag
            .fingerprint_upstream(i, n.kind.info().reads_measurements)
            .into_iter()
            .map(|u| {
                let rec = self.records[u].clone().expect("upstream completed");
                (self.proj.pipeline.nodes[u].clone(), rec)
            })
            .collect();
        self.attempts[i] += 1;
        self.display.started(i, &n.id);
        Task {
            index: i,
            attempt: self.attempts[i],
            ups,
            forced: self.sel.force[i],
            echo: self.opts.echo,
            threads: if heavy { cores() } else { 1 },
            hold,
        }
    }

    /// An attempt ended.
    fn finished(&mut self, msg: Finished, execs: Executors) {
        let i = msg.index;
        self.running -= 1;
        self.running_on[self.on[i]] -= 1;
        match msg.result {
            Ok(c) => self.completed(i, c),
            Err(e)
                if !e.is_interrupted()
                    && !self.stop
                    && execs[self.on[i]].retry(&e, msg.attempt) =>
            {
                self.display.line(format!(
                    "retrying  {} (attempt {} failed: {})",
                    e.stage, msg.attempt, e.cause
                ));
                self.ready.push(Reverse((self.pos[i], i)));
            }
            Err(e) => self.failed(i, e),
        }
    }

    /// Instance `i` completed: its dependents may start.
    fn completed(&mut self, i: usize, c: Completed) {
        let proj = self.proj;
        let n = &proj.pipeline.nodes[i];
        self.display.ended(i);
        let outcome = match c.done {
            Done::Ran(seconds) => {
                self.display
                    .line(format!("ran       {} ({seconds:.2}s)", n.id));
                Outcome::Ran { seconds }
            }
            Done::Restored => {
                self.display.line(format!("restored  {}", n.id));
                Outcome::Restored
            }
            Done::UpToDate => Outcome::UpToDate,
        };
        // The marker of an earlier unfinished attempt dies with it; an up-to-date instance gets
        // its record's log back (the log held the failure).
        if self.markers.get(&n.id).is_some() {
            if c.done == Done::UpToDate {
                crate::instance::restore::restore_log(proj, n, &c.record);
            }
            let _ = crate::interrupt::clear(proj.cache.dir(), &n.id);
        }
        self.outcomes[i] = Some(outcome);
        self.records[i] = Some(c.record);
        for &d in &proj.dag.downstream[i] {
            if self.sel.selected[d] {
                self.waiting[d] -= 1;
                if self.waiting[d] == 0 {
                    self.ready.push(Reverse((self.pos[d], d)));
                }
            }
        }
    }

    /// Instance `i` failed or was interrupted.
    fn failed(&mut self, i: usize, e: InstanceError) {
        let e = e.into_failure();
        let proj = self.proj;
        let id = proj.pipeline.nodes[i].id.clone();
        self.display.ended(i);
        if let crate::instance::Cause::Interrupted(sig) = e.cause {
            if let Some(fp) = &e.fingerprint {
                let _ = crate::interrupt::mark(proj.cache.dir(), &id, fp, sig);
            }
            // `pipe run` prints the one line about it.
            self.outcomes[i] = Some(Outcome::Interrupted { log: e.log });
            self.stop = true;
            return;
        }
        self.display.line(format!(
            "FAILED    {id}: {} (log: {})",
            e.cause,
            e.log.display()
        ));
        let _ = crate::interrupt::mark_failed(proj.cache.dir(), &id, e.fingerprint.as_ref());
        self.outcomes[i] = Some(Outcome::Failed {
            message: e.cause.to_string(),
            log: e.log,
        });
        if !self.opts.keep_going {
            self.stop = true;
            return;
        }
        for d in proj.dag.descendants(i) {
            if self.sel.selected[d] && self.outcomes[d].is_none() {
                self.display.ended(d);
                self.display.line(format!(
                    "skipped   {} (upstream {id} failed)",
                    proj.pipeline.nodes[d].id
                ));
                self.outcomes[d] = Some(Outcome::Skipped {
                    upstream: id.clone(),
                });
            }
        }
    }
}

/// For the ETA on a terminal: for each instance that will compute, the duration of its
/// previous run if known (read from the records the lock file names; nothing is read off a
/// terminal).
fn expected_durations(proj: &Project, plans: &[Option<Planned>]) -> Vec<Option<Option<f64>>> {
    if !Display::is_terminal() {
        return vec![None; plans.len()];
    }
    plans
        .iter()
        .enumerate()
        .map(|(i, pl)| {
            let pl = pl.as_ref()?;
            if !matches!(pl.state, State::Run | State::MayRun) {
                return None;
            }
            let e = proj.lock.stages.get(&proj.pipeline.nodes[i].id);
            Some(e.and_then(|e| proj.cache.record(&e.fingerprint).map(|r| r.duration_s)))
        })
        .collect()
}
