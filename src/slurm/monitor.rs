//! One watcher for every job a process waits for: however many threads wait on however many
//! jobs, each poll is one status query for all of them (see [`super::query`]), at an interval
//! that starts at 0.2 s, grows by half while nothing changes, and is at most 5 s, so the query
//! rate does not grow with the number of jobs. No thread of its own: the waiter that finds the
//! last answer too old asks, the others wait for its answer.
//!
//! While the controller cannot be reached the last known states stand (a job is never taken
//! for lost meanwhile) and the query is retried with a growing pause; after the patience
//! (`PIPE_SLURM_PATIENCE`) every waiter gets [`SlurmError::GaveUp`] naming the jobs still out
//! there.

use super::query;
use super::retry::{self, one_line, Patience};
use super::state::{JobRef, JobStatus};
use super::{Result, SlurmError};
use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// Shortest and longest pause between two queries.
pub const MIN_INTERVAL: Duration = Duration::from_millis(200);
pub const MAX_INTERVAL: Duration = Duration::from_secs(5);

/// One status query for a set of jobs (each with its own job id when known, see
/// [`query::once`]).
pub type QueryFn =
    dyn Fn(&BTreeMap<JobRef, Option<u64>>) -> Result<BTreeMap<JobRef, JobStatus>> + Send + Sync;

/// The watcher.
pub struct Monitor {
    state: Mutex<State>,
    answered: Condvar,
    patience: Patience,
    query: Box<QueryFn>,
    /// Shortest and longest interval ([`MIN_INTERVAL`], [`MAX_INTERVAL`] unless a test says).
    min: Duration,
    max: Duration,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("patience", &self.patience)
            .finish_non_exhaustive()
    }
}

/// Queries failing the passing way since `since`.
#[derive(Debug, Clone)]
struct Failing {
    since: Instant,
    failures: u32,
    last: String,
}

#[derive(Debug)]
struct State {
    /// Watched jobs and how many waiters watch each.
    watched: BTreeMap<JobRef, usize>,
    /// The last known status of each job ever queried.
    known: BTreeMap<JobRef, JobStatus>,
    /// No query before this (unless a watched job has no status yet).
    next: Instant,
    interval: Duration,
    /// A waiter is querying: the others wait for its answer.
    querying: bool,
    failing: Option<Failing>,
    /// Set once the patience has run out; every waiter gets it.
    gave_up: Option<(u64, String)>,
    queries: u64,
}

impl Monitor {
    /// A monitor querying Slurm ([`query::once`]).
    pub fn new(patience: Patience) -> Monitor {
        Self::with_query(patience, Box::new(query::once))
    }

    /// A monitor asking `query` (tests give it a fake cluster).
    pub fn with_query(patience: Patience, query: Box<QueryFn>) -> Monitor {
        Monitor {
            state: Mutex::new(State {
                watched: BTreeMap::new(),
                known: BTreeMap::new(),
                next: Instant::now(),
                interval: MIN_INTERVAL,
                querying: false,
                failing: None,
                gave_up: None,
                queries: 0,
            }),
            answered: Condvar::new(),
            patience,
            query,
            min: MIN_INTERVAL,
            max: MAX_INTERVAL,
        }
    }

    /// The process's monitor (patience from `PIPE_SLURM_PATIENCE`).
    pub fn global() -> &'static Monitor {
        static M: OnceLock<Monitor> = OnceLock::new();
        M.get_or_init(|| Monitor::new(Patience::from_env()))
    }

    /// The same monitor with other shortest and longest intervals.
    pub fn intervals(mut self, min: Duration, max: Duration) -> Monitor {
        self.min = min;
        self.max = max.max(min);
        self.lock().interval = min;
        self
    }

    /// The longest interval between two queries.
    pub fn max_interval(&self) -> Duration {
        self.max
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts watching `ids` (counted: each `watch` needs its `unwatch`). A new job makes the
    /// next query due within the shortest interval (jobs submitted together share it).
    pub fn watch(&self, ids: &[JobRef]) {
        let mut st = self.lock();
        for &id in ids {
            *st.watched.entry(id).or_insert(0) += 1;
        }
        st.interval = self.min;
        if st.failing.is_none() {
            st.next = st.next.min(Instant::now() + self.min);
        }
    }

    /// Stops watching `ids` once.
    pub fn unwatch(&self, ids: &[JobRef]) {
        let mut st = self.lock();
        for id in ids {
            if let Some(n) = st.watched.get_mut(id) {
                *n -= 1;
                if *n == 0 {
                    st.watched.remove(id);
                }
            }
        }
    }

    /// Status queries made so far.
    pub fn queries(&self) -> u64 {
        self.lock().queries
    }

    /// How long until the next query is due (zero when it is).
    pub fn until_next(&self) -> Duration {
        self.lock().next.saturating_duration_since(Instant::now())
    }

    /// The statuses of `ids` (which must be watched), from a query made after the last one was
    /// due: a query now when it is due and nobody else is asking, else the answer of the one in
    /// progress or the current one; a job not asked about yet waits for the next query. While
    /// the controller cannot be reached, a job it has not reported yet is absent. Errors: the controller has been unreachable for longer
    /// than the patience ([`SlurmError::GaveUp`], naming every watched job), a query failing
    /// the way that is not a busy controller's. A query stopped because pipe is interrupted
    /// gives the last known statuses: the caller checks the interrupt and cancels its jobs.
    pub fn statuses(&self, ids: &[JobRef]) -> Result<BTreeMap<JobRef, JobStatus>> {
        let mut st = self.lock();
        loop {
            if let Some((waited_s, last)) = &st.gave_up {
                return Err(SlurmError::GaveUp {
                    cmd: "squeue".into(),
                    waited_s: *waited_s,
                    last: last.clone(),
                    jobs: st.watched.keys().copied().collect(),
                });
            }
            let now = Instant::now();
            if now < st.next {
                let missing = ids.iter().any(|i| !st.known.contains_key(i));
                if !missing || st.failing.is_some() {
                    return Ok(pick(&st.known, ids));
                }
                // a job not asked about yet: wait for the next query (made by whichever waiter
                // finds it due), so the first poll of a job gives its status
                let left = st.next - now;
                st = self
                    .answered
                    .wait_timeout(st, left)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
                continue;
            }
            if st.querying {
                st = self.answered.wait(st).unwrap_or_else(|p| p.into_inner());
                if !st.querying {
                    // answered (or failed) for us too
                    if st.gave_up.is_none() {
                        return Ok(pick(&st.known, ids));
                    }
                }
                continue;
            }
            st.querying = true;
            let all: BTreeMap<JobRef, Option<u64>> = st
                .watched
                .keys()
                .chain(ids)
                .map(|r| (*r, st.known.get(r).map(|s| s.raw)))
                .collect();
            drop(st);
            let r = (self.query)(&all);
            st = self.lock();
            st.querying = false;
            st.queries += 1;
            let out = self.answer(&mut st, r, &all);
            self.answered.notify_all();
            out?;
            return Ok(pick(&st.known, ids));
        }
    }

    /// Takes in one query's result: new statuses and the next interval, or the failure.
    fn answer(
        &self,
        st: &mut State,
        r: Result<BTreeMap<JobRef, JobStatus>>,
        asked: &BTreeMap<JobRef, Option<u64>>,
    ) -> Result<()> {
        let now = Instant::now();
        match r {
            Ok(m) => {
                let changed = m.iter().any(|(id, s)| st.known.get(id) != Some(s));
                st.known.extend(m);
                if let Some(f) = st.failing.take() {
                    eprintln!(
                        "slurm: the controller answers again (after {:.0} s)",
                        f.since.elapsed().as_secs_f64()
                    );
                }
                st.interval = if changed {
                    self.min
                } else {
                    (st.interval * 3 / 2).min(self.max)
                };
                st.next = now + st.interval;
                Ok(())
            }
            // pipe is stopping: no news; the waiter sees the interrupt and cancels its jobs
            Err(SlurmError::Interrupted { .. }) => Ok(()),
            Err(e) if retry::transient(&e) => {
                let f = st.failing.get_or_insert(Failing {
                    since: now,
                    failures: 0,
                    last: String::new(),
                });
                f.failures += 1;
                f.last = one_line(&e.to_string());
                if f.failures == 1 {
                    eprintln!(
                        "slurm: cannot query the jobs ({}); their last known states stand, retrying for up to {} s",
                        f.last,
                        self.patience.total.as_secs()
                    );
                }
                if f.since.elapsed() >= self.patience.total {
                    st.gave_up = Some((f.since.elapsed().as_secs(), f.last.clone()));
                    return Err(SlurmError::GaveUp {
                        cmd: "squeue".into(),
                        waited_s: f.since.elapsed().as_secs(),
                        last: f.last.clone(),
                        jobs: asked.keys().copied().collect(),
                    });
                }
                st.next = now + Patience::pause(f.failures);
                Ok(())
            }
            Err(e) => {
                st.next = now + st.interval;
                Err(e)
            }
        }
    }
}

fn pick(known: &BTreeMap<JobRef, JobStatus>, ids: &[JobRef]) -> BTreeMap<JobRef, JobStatus> {
    ids.iter()
        .filter_map(|i| known.get(i).map(|s| (*i, s.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slurm::poll::Poller;
    use crate::slurm::state::JobState;
    use std::collections::BTreeSet;
    use std::sync::Arc;

    /// A fake cluster: job `i` runs until `ends[i]`; queries fail the passing way inside
    /// `down`; every query's time is recorded.
    struct Fake {
        t0: Instant,
        ends: BTreeMap<u64, Duration>,
        down: (Duration, Duration),
        log: Mutex<Vec<(Duration, usize)>>,
    }

    impl Fake {
        fn query(
            &self,
            ids: &BTreeMap<JobRef, Option<u64>>,
        ) -> Result<BTreeMap<JobRef, JobStatus>> {
            let now = self.t0.elapsed();
            self.log.lock().unwrap().push((now, ids.len()));
            if now >= self.down.0 && now < self.down.1 {
                return Err(SlurmError::Command {
                    cmd: "squeue".into(),
                    status: "exit status: 1".into(),
                    stderr: "slurm_load_jobs error: Unable to contact slurm controller (connect failure)".into(),
                });
            }
            Ok(ids
                .keys()
                .map(|&r| {
                    let id = r.job;
                    let done = now >= self.ends[&id];
                    let st = JobStatus {
                        id,
                        task: None,
                        raw: id,
                        state: if done {
                            JobState::Completed
                        } else {
                            JobState::Running
                        },
                        reason: String::new(),
                        exit_code: done.then_some(0),
                        signal: None,
                        node: "n1".into(),
                    };
                    (r, st)
                })
                .collect())
        }
    }

    fn setup(
        n: u64,
        down: (Duration, Duration),
        patience: Duration,
    ) -> (Arc<Fake>, &'static Monitor) {
        let ms = Duration::from_millis;
        let fake = Arc::new(Fake {
            t0: Instant::now(),
            ends: (1..=n).map(|i| (i, ms(100 + 25 * i))).collect(),
            down,
            log: Mutex::new(Vec::new()),
        });
        let f = fake.clone();
        let m = Monitor::with_query(
            Patience { total: patience },
            Box::new(move |ids: &BTreeMap<JobRef, Option<u64>>| f.query(ids)),
        )
        .intervals(ms(20), ms(200));
        (fake, Box::leak(Box::new(m)))
    }

    /// One thread per job, each waiting for its own job through its own poller.
    fn wait_each(m: &'static Monitor, n: u64) -> Vec<Result<JobStatus>> {
        let hs: Vec<_> = (1..=n)
            .map(|id| {
                std::thread::spawn(move || -> Result<JobStatus> {
                    let mut p = Poller::on(m);
                    loop {
                        p.poll(&[id])?;
                        if let Some(s) = p.status(id).filter(|s| s.state.is_terminal()) {
                            return Ok(s.clone());
                        }
                        p.pause();
                    }
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    }

    #[test]
    fn sixteen_waiters_share_each_query() {
        let never = (Duration::MAX, Duration::MAX);
        let (fake, m) = setup(16, never, Duration::from_secs(5));
        for r in wait_each(m, 16) {
            assert_eq!(r.unwrap().state, JobState::Completed);
        }
        let log = fake.log.lock().unwrap();
        // never two queries closer than the shortest interval (with some slack for the clock)
        for w in log.windows(2) {
            assert!(
                w[1].0 - w[0].0 >= Duration::from_millis(15),
                "queries at {:?} and {:?}",
                w[0].0,
                w[1].0
            );
        }
        // the whole wait (~0.5 s) at a 20 ms interval: far fewer than one query per waiter and poll
        let wall = log.last().unwrap().0;
        assert!(
            (log.len() as u128) <= wall.as_millis() / 15 + 2,
            "{} queries in {wall:?}",
            log.len()
        );
        assert!(
            log.iter().any(|(_, n)| *n >= 8),
            "queries cover many jobs: {log:?}"
        );
        assert_eq!(m.queries() as usize, log.len());
    }

    #[test]
    fn the_interval_grows_while_nothing_changes() {
        let ms = Duration::from_millis;
        let fake = Arc::new(Fake {
            t0: Instant::now(),
            ends: [(1, Duration::from_secs(100))].into(),
            down: (Duration::MAX, Duration::MAX),
            log: Mutex::new(Vec::new()),
        });
        let f = fake.clone();
        let m: &'static Monitor = Box::leak(Box::new(
            Monitor::with_query(
                Patience::default(),
                Box::new(move |ids: &BTreeMap<JobRef, Option<u64>>| f.query(ids)),
            )
            .intervals(ms(10), ms(80)),
        ));
        let mut p = Poller::on(m);
        let t0 = Instant::now();
        while t0.elapsed() < ms(700) {
            p.poll(&[1]).unwrap();
            p.pause();
        }
        let log = fake.log.lock().unwrap();
        let gaps: Vec<Duration> = log.windows(2).map(|w| w[1].0 - w[0].0).collect();
        assert!(gaps.len() >= 5, "{gaps:?}");
        assert!(gaps[0] < ms(40), "{gaps:?}");
        // bounded by the longest interval (plus scheduling slack) and reaching it
        assert!(gaps.iter().all(|g| *g < ms(160)), "{gaps:?}");
        assert!(gaps.iter().rev().take(2).all(|g| *g >= ms(70)), "{gaps:?}");
    }

    #[test]
    fn an_unreachable_controller_loses_no_job() {
        let ms = Duration::from_millis;
        // down from 50 ms to 400 ms: every job ends meanwhile
        let (fake, m) = setup(4, (ms(50), ms(400)), Duration::from_secs(5));
        for r in wait_each(m, 4) {
            assert_eq!(r.unwrap().state, JobState::Completed);
        }
        let log = fake.log.lock().unwrap();
        assert!(
            log.iter().any(|(t, _)| *t >= ms(50) && *t < ms(400)),
            "{log:?}"
        );
        assert!(log.last().unwrap().0 >= ms(400));
    }

    #[test]
    fn giving_up_names_every_job_still_out_there() {
        let ms = Duration::from_millis;
        let (_fake, m) = setup(3, (ms(0), Duration::MAX), ms(300));
        let t0 = Instant::now();
        let mut named = BTreeSet::new();
        for r in wait_each(m, 3) {
            let e = r.unwrap_err();
            let msg = e.to_string();
            assert!(matches!(e, SlurmError::GaveUp { .. }), "{msg}");
            assert!(msg.contains("Unable to contact slurm controller"), "{msg}");
            assert!(msg.contains("may still be queued or running"), "{msg}");
            if let SlurmError::GaveUp { jobs, .. } = &e {
                named.extend(jobs.iter().map(|r| r.job));
            }
        }
        // every waiter's error names its own job at least, and the jobs watched by then
        assert_eq!(named, (1..=3).collect::<BTreeSet<u64>>());
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    }
}
