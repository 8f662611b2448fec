//! The scheduler: the ready set, up to `-j` instances at once, and one `compute` slot that
//! heavy kinds take so they never oversubscribe the cores. What happens to one instance lives
//! in `crate::instance`.

use crate::cache::RunRecord;
use crate::config::Node;
use crate::instance::staging::Staging;
use crate::instance::Job;
pub use crate::instance::Outcome;
use crate::plan::{Planned, Project, State};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::IsTerminal;
use std::sync::mpsc;

/// How to run.
pub struct RunOptions {
    pub jobs: usize,
    pub keep_going: bool,
    pub force: Vec<bool>,
    pub selected: Vec<bool>,
    /// Echo stage log lines to stderr.
    pub echo: bool,
    /// Where instances that must compute run.
    pub executor: crate::executor::Executor,
}

/// Prints stage events: an indicatif bar on a terminal (stage log lines and bars routed through
/// the same display), plain lines otherwise.
struct Progress {
    bar: Option<(indicatif::MultiProgress, indicatif::ProgressBar)>,
}

impl Progress {
    fn new(total: u64) -> Self {
        let bar = if std::io::stderr().is_terminal() && total > 0 {
            let m = indicatif::MultiProgress::new();
            let b = m.add(indicatif::ProgressBar::new(total));
            b.set_style(
                indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} stages {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            crate::progress::set_multi_progress(Some(m.clone()));
            Some((m, b))
        } else {
            None
        };
        Progress { bar }
    }
    fn line(&self, s: String) {
        match &self.bar {
            Some((m, _)) => {
                let _ = m.println(s);
            }
            None => eprintln!("{s}"),
        }
    }
    fn inc(&self, msg: &str) {
        if let Some((_, b)) = &self.bar {
            b.inc(1);
            b.set_message(msg.to_string());
        }
    }
    fn finish(&self) {
        if let Some((_, b)) = &self.bar {
            b.finish_and_clear();
            crate::progress::set_multi_progress(None);
        }
    }
}

/// Executes the plan. Returns the outcome of each selected instance that was reached
/// (None: not selected, or not started after a failure without `--keep-going`), and the
/// records of instances that completed.
pub fn execute(
    proj: &Project,
    plan: &[Option<Planned>],
    opts: &RunOptions,
) -> (Vec<Option<Outcome>>, Vec<Option<RunRecord>>) {
    let p = &proj.pipeline;
    let nn = p.nodes.len();
    let pos: Vec<usize> = {
        let mut v = vec![0; nn];
        for (k, &i) in proj.dag.order.iter().enumerate() {
            v[i] = k;
        }
        v
    };
    let mut outcomes: Vec<Option<Outcome>> = vec![None; nn];
    let mut records: Vec<Option<RunRecord>> = vec![None; nn];
    let mut waiting: Vec<usize> = (0..nn)
        .map(|i| {
            proj.dag.upstream[i]
                .iter()
                .filter(|&&u| opts.selected[u])
                .count()
        })
        .collect();
    let mut ready: BinaryHeap<Reverse<(usize, usize)>> = (0..nn)
        .filter(|&i| opts.selected[i] && waiting[i] == 0)
        .map(|i| Reverse((pos[i], i)))
        .collect();
    let total = opts.selected.iter().filter(|&&s| s).count() as u64;
    let progress = Progress::new(total);
    let mut running = 0usize;
    let mut compute_busy = false;
    let mut holds_slot = vec![false; nn];
    let mut stop = false;
    let (tx, rx) = mpsc::channel::<(usize, Result<(Outcome, RunRecord), Outcome>)>();
    let staging = Staging::new(proj.cache.layout().staging(std::process::id()));
    let staging = &staging;

    std::thread::scope(|s| {
        loop {
            // Start what can start.
            let mut deferred = Vec::new();
            while !stop && running < opts.jobs.max(1) {
                if crate::interrupt::requested().is_some() {
                    stop = true;
                    break;
                }
                let Some(Reverse((k, i))) = ready.pop() else {
                    break;
                };
                let n = &p.nodes[i];
                let pl = plan[i].as_ref().expect("selected instances are planned");
                // Fast path: fresh according to the plan.
                if pl.state == State::UpToDate && !opts.force[i] {
                    let rec = pl.record.clone().expect("fresh plans have a record");
                    complete(
                        i,
                        Ok((Outcome::UpToDate, rec)),
                        proj,
                        opts,
                        &progress,
                        &mut outcomes,
                        &mut records,
                        &mut waiting,
                        &mut ready,
                        &pos,
                        &mut stop,
                    );
                    continue;
                }
                // On Slurm, instances that compute are jobs: no compute slot here.
                let slurm = match &opts.executor {
                    crate::executor::Executor::Slurm(c) if pl.state == State::Run => Some(c),
                    _ => None,
                };
                let heavy = n.kind.info().heavy && slurm.is_none();
                if heavy && compute_busy {
                    deferred.push(Reverse((k, i)));
                    continue;
                }
                if heavy {
                    compute_busy = true;
                    holds_slot[i] = true;
                }
                running += 1;
                let ups: Vec<(Node, RunRecord)> = proj
                    .dag
                    .fingerprint_upstream(i, n.kind.info().reads_measurements)
                    .into_iter()
                    .map(|u| {
                        (
                            p.nodes[u].clone(),
                            records[u].clone().expect("upstream completed"),
                        )
                    })
                    .collect();
                let tx = tx.clone();
                let forced = opts.force[i];
                let echo = opts.echo;
                let threads = if heavy { cores() } else { 1 };
                s.spawn(move || {
                    let job = Job {
                        index: i,
                        ups: &ups,
                        forced,
                        echo,
                        threads,
                    };
                    let r = match slurm {
                        Some(c) => crate::executor::slurm::run(proj, &job, c, staging),
                        None => crate::instance::run(proj, &job, staging),
                    };
                    let _ = tx.send((i, r));
                });
            }
            ready.extend(deferred);
            if running == 0 {
                break;
            }
            let Ok((i, r)) = rx.recv() else { break };
            running -= 1;
            if holds_slot[i] {
                holds_slot[i] = false;
                compute_busy = false;
            }
            complete(
                i,
                r,
                proj,
                opts,
                &progress,
                &mut outcomes,
                &mut records,
                &mut waiting,
                &mut ready,
                &pos,
                &mut stop,
            );
        }
    });
    progress.finish();
    let _ = std::fs::remove_dir_all(&staging.base);
    (outcomes, records)
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

#[allow(clippy::too_many_arguments)]
fn complete(
    i: usize,
    r: Result<(Outcome, RunRecord), Outcome>,
    proj: &Project,
    opts: &RunOptions,
    progress: &Progress,
    outcomes: &mut [Option<Outcome>],
    records: &mut [Option<RunRecord>],
    waiting: &mut [usize],
    ready: &mut BinaryHeap<Reverse<(usize, usize)>>,
    pos: &[usize],
    stop: &mut bool,
) {
    let id = &proj.pipeline.nodes[i].id;
    progress.inc(id);
    match r {
        Ok((o, rec)) => {
            match &o {
                Outcome::Ran(d) => progress.line(format!("ran       {id} ({d:.2}s)")),
                Outcome::Restored => progress.line(format!("restored  {id}")),
                _ => {}
            }
            outcomes[i] = Some(o);
            records[i] = Some(rec);
            for &d in &proj.dag.downstream[i] {
                if opts.selected[d] {
                    waiting[d] -= 1;
                    if waiting[d] == 0 {
                        ready.push(Reverse((pos[d], d)));
                    }
                }
            }
        }
        Err(o) => {
            match &o {
                Outcome::Failed { msg, log } => {
                    progress.line(format!("FAILED    {id}: {msg} (log: {})", log.display()))
                }
                // `pipe run` prints the one line about it.
                Outcome::Interrupted { .. } => *stop = true,
                _ => {}
            }
            outcomes[i] = Some(o);
            if opts.keep_going {
                for d in proj.dag.descendants(i) {
                    if opts.selected[d] && outcomes[d].is_none() {
                        progress.inc(&proj.pipeline.nodes[d].id);
                        progress.line(format!(
                            "skipped   {} (upstream {id} failed)",
                            proj.pipeline.nodes[d].id
                        ));
                        outcomes[d] = Some(Outcome::Skipped(id.clone()));
                    }
                }
            } else {
                *stop = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::lockfile::LockFile;
    use crate::cache::stat::StatCache;
    use crate::cache::Cache;
    use crate::config::Pipeline;
    use crate::graph::Dag;
    use crate::stage::{KindInfo, StageCtx, StageKind};
    use serde_json::Value;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// Heavy runs in progress, the most ever at once, and whether a light run saw a heavy one
    /// running. The runs wait for each other (a light for some heavy to be running, `h1` for a
    /// light beside it), never for a clock: on any machine load they meet unless the scheduler
    /// keeps them apart, and then the generous bound ends the wait and the test fails.
    static HEAVY_NOW: AtomicUsize = AtomicUsize::new(0);
    static HEAVY_MAX: AtomicUsize = AtomicUsize::new(0);
    static LIGHT_BESIDE: AtomicBool = AtomicBool::new(false);

    struct Fake(bool);
    impl StageKind for Fake {
        fn info(&self) -> KindInfo {
            KindInfo {
                name: if self.0 { "fake-heavy" } else { "fake-light" },
                version: 1,
                defaults_yaml: "{}",
                heavy: self.0,
                per_epoch: false,
                free_matrix_keys: false,
                needs: &[],
                uses_pipeline_name: false,
                reads_measurements: false,
            }
        }
        fn check(&self, _: &Value) -> Result<(), String> {
            Ok(())
        }
        fn run(&self, ctx: &StageCtx) -> anyhow::Result<()> {
            assert!(ctx.threads > 1 || !self.0 || num_cpus() == 1);
            if self.0 {
                let now = HEAVY_NOW.fetch_add(1, Ordering::SeqCst) + 1;
                HEAVY_MAX.fetch_max(now, Ordering::SeqCst);
                // The first heavy run holds the compute slot until a light run saw it.
                if ctx.id == "h1" {
                    wait_for(|| LIGHT_BESIDE.load(Ordering::SeqCst));
                }
                HEAVY_NOW.fetch_sub(1, Ordering::SeqCst);
            } else {
                // A light run waits until a heavy one runs beside it (or another light saw one).
                // h1 runs first of the heavies and ends only once a light saw it.
                wait_for(|| {
                    HEAVY_NOW.load(Ordering::SeqCst) > 0 || LIGHT_BESIDE.load(Ordering::SeqCst)
                });
                if HEAVY_NOW.load(Ordering::SeqCst) > 0 {
                    LIGHT_BESIDE.store(true, Ordering::SeqCst);
                }
            }
            std::fs::write(ctx.out_dir.join("x"), &ctx.id)?;
            Ok(())
        }
    }
    /// Polls `cond` until it holds or 60 s have passed.
    fn wait_for(cond: impl Fn() -> bool) {
        let t0 = std::time::Instant::now();
        while !cond() && t0.elapsed() < std::time::Duration::from_secs(60) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    fn num_cpus() -> usize {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    }
    static HEAVY: Fake = Fake(true);
    static LIGHT: Fake = Fake(false);

    #[test]
    fn heavy_stages_share_one_compute_slot() {
        let dir = tempfile::tempdir().unwrap();
        let node = |id: &str, kind: &'static Fake| Node {
            id: id.into(),
            stage: id.into(),
            ckpt_name: id.into(),
            kind,
            kind_name: kind.info().name.into(),
            params: serde_json::json!({}),
            needs: vec![],
            matrix: Default::default(),
            epoch: None,
        };
        let nodes = vec![
            node("h1", &HEAVY),
            node("h2", &HEAVY),
            node("h3", &HEAVY),
            node("l1", &LIGHT),
            node("l2", &LIGHT),
        ];
        let pipeline = Pipeline {
            name: "t".into(),
            seed: 1,
            file: "p.yaml".into(),
            root: dir.path().to_path_buf(),
            stages: nodes.iter().map(|n| n.id.clone()).collect(),
            nodes,
            resources: Default::default(),
        };
        let dag = Dag::new(&pipeline);
        let cache = Cache::new(dir.path());
        let proj = Project {
            stats: StatCache::load(&cache.layout().stat()),
            cache,
            dag,
            pipeline,
            lock: LockFile::default(),
            mirrors: Vec::new(),
        };
        let n = proj.pipeline.nodes.len();
        let plans = crate::plan::plan(&proj, &vec![true; n], &vec![false; n], false, &|_| false);
        let opts = RunOptions {
            jobs: 4,
            keep_going: false,
            force: vec![false; n],
            selected: vec![true; n],
            echo: false,
            executor: Default::default(),
        };
        let (outcomes, _) = execute(&proj, &plans, &opts);
        assert!(outcomes.iter().all(|o| matches!(o, Some(Outcome::Ran(_)))));
        assert_eq!(
            HEAVY_MAX.load(Ordering::SeqCst),
            1,
            "heavy stages overlapped"
        );
        // h1 holds the compute slot until a light stage saw it: lights run beside heavies.
        assert!(
            LIGHT_BESIDE.load(Ordering::SeqCst),
            "no light stage ran beside a heavy one"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("results/t/h2/x")).unwrap(),
            "h2"
        );
    }
}
