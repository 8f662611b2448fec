//! The scheduler: runs ready instances in parallel up to `-j`, with one `compute` slot that
//! heavy kinds take, and executes each instance: early cutoff on the real upstream outputs,
//! restore from the store, or run in staging → store → run record (last, by rename) →
//! materialise.

use crate::cache::{hash_file, manifest_hash, walk, Area, Output, RunRecord};
use crate::config::Node;
use crate::plan::{Planned, Project, State};
use crate::progress::Reporter;
use crate::stage::{StageCtx, Upstream};
use serde_json::Value;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

/// How to run.
pub struct RunOptions {
    pub jobs: usize,
    pub keep_going: bool,
    pub force: Vec<bool>,
    pub selected: Vec<bool>,
    /// Echo stage log lines to stderr.
    pub echo: bool,
}

/// What happened to one instance.
#[derive(Debug, Clone)]
pub enum Outcome {
    UpToDate,
    Restored,
    Ran(f64),
    Failed {
        msg: String,
        log: PathBuf,
    },
    /// Not run because an upstream failed (its id).
    Skipped(String),
}

/// Reusable staging folders (`cache/tmp/<pid>/<k>/{out,ckpt}`), one per running job, emptied
/// after each stage: creating fresh folders per stage costs more than the stage's bookkeeping.
struct Staging {
    base: PathBuf,
    free: std::sync::Mutex<Vec<PathBuf>>,
    next: std::sync::atomic::AtomicUsize,
}

impl Staging {
    fn new(base: PathBuf) -> Self {
        Staging {
            base,
            free: std::sync::Mutex::new(Vec::new()),
            next: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// An empty slot with `out/` and `ckpt/`.
    fn take(&self) -> std::io::Result<PathBuf> {
        if let Some(p) = self.free.lock().ok().and_then(|mut f| f.pop()) {
            return Ok(p);
        }
        let k = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let slot = self.base.join(k.to_string());
        let _ = std::fs::remove_dir_all(&slot);
        std::fs::create_dir_all(slot.join("out"))?;
        std::fs::create_dir_all(slot.join("ckpt"))?;
        std::fs::create_dir_all(slot.join("meas"))?;
        Ok(slot)
    }

    /// Empties a slot and returns it to the pool (or drops it when it cannot be emptied).
    fn give_back(&self, slot: PathBuf) {
        let mut ok = true;
        for d in ["out", "ckpt", "meas"] {
            match std::fs::read_dir(slot.join(d)) {
                Ok(rd) => {
                    for e in rd.flatten() {
                        let p = e.path();
                        let r = match e.file_type() {
                            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&p),
                            _ => std::fs::remove_file(&p),
                        };
                        ok &= r.is_ok();
                    }
                }
                Err(_) => ok = false,
            }
        }
        if ok {
            if let Ok(mut f) = self.free.lock() {
                f.push(slot);
                return;
            }
        }
        let _ = std::fs::remove_dir_all(&slot);
    }
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
    let mut stop = false;
    let (tx, rx) = mpsc::channel::<(usize, Result<(Outcome, RunRecord), Outcome>)>();
    let staging = Staging::new(proj.cache.tmp_dir().join(std::process::id().to_string()));
    let staging = &staging;

    std::thread::scope(|s| {
        loop {
            // Start what can start.
            let mut deferred = Vec::new();
            while !stop && running < opts.jobs.max(1) {
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
                let heavy = n.kind.info().heavy;
                if heavy && compute_busy {
                    deferred.push(Reverse((k, i)));
                    continue;
                }
                if heavy {
                    compute_busy = true;
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
                s.spawn(move || {
                    let r = run_one(proj, i, &ups, forced, echo, staging);
                    let _ = tx.send((i, r));
                });
            }
            ready.extend(deferred);
            if running == 0 {
                break;
            }
            let Ok((i, r)) = rx.recv() else { break };
            running -= 1;
            if p.nodes[i].kind.info().heavy {
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
            if let Outcome::Failed { msg, log } = &o {
                progress.line(format!("FAILED    {id}: {msg} (log: {})", log.display()));
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

fn failed(log: &Path, msg: impl Into<String>) -> Outcome {
    Outcome::Failed {
        msg: msg.into(),
        log: log.to_path_buf(),
    }
}

/// Restores a record's outputs: re-hashes each store object, then materialises. False (with
/// the bad object removed) when one is corrupt or missing.
fn restore(proj: &Project, n: &Node, rec: &RunRecord) -> Result<bool, String> {
    for o in &rec.outputs {
        if !proj.cache.verify_object(&o.blake3) {
            eprintln!(
                "warning: stage `{}`: the stored copy of {} is corrupt or missing; running the stage again",
                n.id,
                proj.display(n, o)
            );
            return Ok(false);
        }
    }
    // Declared output folders are replaced wholesale, like results folders.
    for d in n.kind.declared_outputs(&n.params) {
        let ds = d.to_string_lossy().trim_end_matches('/').to_string();
        let prefix = format!("{ds}/");
        let full = proj.pipeline.root.join(&d);
        if full.is_dir()
            && rec
                .outputs
                .iter()
                .any(|o| o.area == Area::Project && o.path.starts_with(&prefix))
        {
            std::fs::remove_dir_all(&full).map_err(|e| format!("cannot replace {ds}: {e}"))?;
        }
    }
    materialise(proj, n, rec, false).map_err(|e| format!("cannot restore outputs: {e}"))?;
    Ok(true)
}

/// Places a record's outputs: results replaced wholesale, checkpoints and project files one by one.
/// With `fresh_project`, project files are the ones the stage just wrote and stay as they are.
fn materialise(
    proj: &Project,
    n: &Node,
    rec: &RunRecord,
    fresh_project: bool,
) -> std::io::Result<()> {
    let rd = proj.results_dir(n);
    if rd.exists() {
        std::fs::remove_dir_all(&rd)?;
    }
    std::fs::create_dir_all(&rd)?;
    for o in &rec.outputs {
        let dest = proj.dest(n, o);
        if o.area == Area::Project {
            if fresh_project {
                continue;
            }
            if let Ok(m) = std::fs::metadata(&dest) {
                if m.len() == o.size && hash_file(&dest).ok().as_deref() == Some(&o.blake3) {
                    continue;
                }
            }
        }
        proj.cache.materialise(&o.blake3, &dest)?;
    }
    Ok(())
}

/// Runs (or restores) one instance whose upstreams have completed.
fn run_one(
    proj: &Project,
    i: usize,
    ups: &[(Node, RunRecord)],
    forced: bool,
    echo: bool,
    staging: &Staging,
) -> Result<(Outcome, RunRecord), Outcome> {
    let tstart = Instant::now();
    let n = &proj.pipeline.nodes[i];
    let log = proj.log_path(n);
    // Messages name the log relative to the project root.
    let log_rel = log
        .strip_prefix(&proj.pipeline.root)
        .unwrap_or(&log)
        .to_path_buf();
    let upstream_hashes: Vec<(String, String)> = ups
        .iter()
        .map(|(u, r)| (u.id.clone(), crate::plan::upstream_hash(n, r)))
        .collect();
    let up_recs: Vec<&RunRecord> = ups.iter().map(|(_, r)| r).collect();
    let (key, missing) = proj.key(n, upstream_hashes, &up_recs);
    if !missing.is_empty() {
        return Err(failed(
            &log_rel,
            format!(
                "input {} does not exist; create it or produce it in an upstream stage",
                missing.join(", ")
            ),
        ));
    }
    let fp = key.fingerprint();
    // Early cutoff: a record for the real fingerprint is restored, never recomputed.
    if !forced {
        if let Some(rec) = proj.cache.record(&fp) {
            if proj.missing_output(n, &rec).is_none() {
                return Ok((Outcome::UpToDate, rec));
            }
            match restore(proj, n, &rec) {
                Ok(true) => return Ok((Outcome::Restored, rec)),
                Ok(false) => {}
                Err(e) => return Err(failed(&log_rel, e)),
            }
        }
    }

    // Run in staging folders.
    let stage_dir = match staging.take() {
        Ok(d) => d,
        Err(e) => {
            return Err(failed(
                &log_rel,
                format!("cannot create a staging folder: {e}"),
            ))
        }
    };
    let out_dir = stage_dir.join("out");
    let ckpt_dir = stage_dir.join("ckpt");
    let meas_dir = stage_dir.join("meas");
    let declared = n.kind.declared_outputs(&n.params);
    for d in &declared {
        let p = proj.pipeline.root.join(d);
        let _ = match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&p),
            Ok(_) => std::fs::remove_file(&p),
            Err(_) => Ok(()),
        };
    }
    let reporter = match Reporter::new(&n.id, Some(&log), echo) {
        Ok(r) => r,
        Err(e) => return Err(failed(&log_rel, format!("cannot create log file: {e}"))),
    };
    let to_upstream = |(u, r): &(Node, RunRecord)| Upstream {
        id: u.id.clone(),
        stage: u.stage.clone(),
        kind: u.kind_name.clone(),
        results: proj.results_dir(u),
        checkpoints: proj.ckpt_dir(u),
        params: u.params.clone(),
        fingerprint: r.fingerprint.clone(),
        duration_s: Some(r.duration_s),
    };
    // `ups` holds every ancestor for kinds that read measurements; the direct ones in `needs` order.
    let upstream: Vec<Upstream> = n
        .needs
        .iter()
        .filter_map(|id| ups.iter().find(|(u, _)| &u.id == id))
        .map(to_upstream)
        .collect();
    let ancestors: Vec<Upstream> = if n.kind.info().reads_measurements {
        ups.iter().map(to_upstream).collect()
    } else {
        Vec::new()
    };
    let threads = if n.kind.info().heavy {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        1
    };
    let ctx = StageCtx {
        pipeline: proj.pipeline.name.clone(),
        id: n.id.clone(),
        stage: n.stage.clone(),
        kind: n.kind_name.clone(),
        pipeline_seed: proj.pipeline.seed,
        params: n.params.clone(),
        upstream,
        ancestors,
        fingerprint: fp.clone(),
        out_dir: out_dir.clone(),
        ckpt_dir: ckpt_dir.clone(),
        meas_dir: meas_dir.clone(),
        root: proj.pipeline.root.clone(),
        cache_dir: proj.cache.dir.clone(),
        threads,
        reporter: reporter.clone(),
    };
    let t0 = Instant::now();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| n.kind.run(&ctx)));
    let duration = t0.elapsed().as_secs_f64();
    let r = match r {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            Err(anyhow::anyhow!("panicked: {msg}"))
        }
    };
    if let Err(e) = r {
        reporter.log(format!("error: {e:#}"));
        staging.give_back(stage_dir);
        return Err(failed(&log_rel, format!("{e:#}")));
    }
    let tc = Instant::now();
    let result = commit(
        proj, n, key, &fp, &out_dir, &ckpt_dir, &meas_dir, &declared, duration,
    );
    // PIPE_TRACE=1: the engine's own time per executed stage (for benches/engine.sh work).
    if std::env::var_os("PIPE_TRACE").is_some() {
        eprintln!(
            "trace {} setup {:.2}ms run {:.2}ms commit {:.2}ms",
            n.id,
            (t0 - tstart).as_secs_f64() * 1e3,
            duration * 1e3,
            tc.elapsed().as_secs_f64() * 1e3
        );
    }
    staging.give_back(stage_dir);
    match result {
        Ok(rec) => {
            reporter.log(format!("done in {duration:.2}s"));
            Ok((Outcome::Ran(duration), rec))
        }
        Err(e) => {
            reporter.log(format!("error: {e}"));
            Err(failed(&log_rel, e))
        }
    }
}

/// Hashes and stores every output, writes the run record (last, by rename) and materialises.
#[allow(clippy::too_many_arguments)]
fn commit(
    proj: &Project,
    n: &Node,
    key: crate::cache::FingerprintKey,
    fp: &str,
    out_dir: &Path,
    ckpt_dir: &Path,
    meas_dir: &Path,
    declared: &[PathBuf],
    duration: f64,
) -> Result<RunRecord, String> {
    let io = |e: std::io::Error| format!("cannot store outputs: {e}");
    let metrics: BTreeMap<String, Value> = std::fs::read(out_dir.join("metrics.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v.as_object().cloned())
        .map(|m| m.into_iter().collect())
        .unwrap_or_default();
    // (area, relative path, source, keep the source, measurement)
    let mut files: Vec<(Area, String, PathBuf, bool, bool)> = Vec::new();
    let results = walk(out_dir).map_err(io)?;
    for f in &results {
        files.push((Area::Results, f.clone(), out_dir.join(f), false, false));
    }
    for f in walk(meas_dir).map_err(io)? {
        if results.binary_search(&f).is_ok() {
            return Err(format!(
                "the stage wrote `{f}` both as an output and as a measurement"
            ));
        }
        files.push((Area::Results, f.clone(), meas_dir.join(&f), false, true));
    }
    for f in walk(ckpt_dir).map_err(io)? {
        files.push((
            Area::Checkpoints,
            f.clone(),
            ckpt_dir.join(&f),
            false,
            false,
        ));
    }
    for d in declared {
        let full = proj.pipeline.root.join(d);
        let ds = d.to_string_lossy().trim_end_matches('/').to_string();
        match std::fs::metadata(&full) {
            Ok(m) if m.is_dir() => {
                for f in walk(&full).map_err(io)? {
                    files.push((
                        Area::Project,
                        format!("{ds}/{f}"),
                        full.join(&f),
                        true,
                        false,
                    ));
                }
            }
            Ok(_) => files.push((Area::Project, ds, full, true, false)),
            Err(_) => {
                return Err(format!(
                    "declared output `{ds}` was not created by the stage"
                ))
            }
        }
    }
    let mut outputs = Vec::with_capacity(files.len());
    for (area, rel, src, keep, measure) in files {
        let size = std::fs::metadata(&src).map_err(io)?.len();
        let h = hash_file(&src).map_err(io)?;
        proj.cache.store(&src, &h, keep).map_err(io)?;
        outputs.push(Output {
            area,
            path: rel,
            blake3: h,
            size,
            measure,
        });
    }
    outputs.sort_by(|a, b| (a.area, &a.path).cmp(&(b.area, &b.path)));
    let rec = RunRecord {
        fingerprint: fp.to_string(),
        key,
        outputs_hash: manifest_hash(&outputs),
        outputs,
        duration_s: duration,
        metrics,
    };
    // Materialise first (results and checkpoints), record last: a kill in between leaves
    // no record, so the stage simply reruns.
    materialise(proj, n, &rec, true).map_err(|e| format!("cannot materialise outputs: {e}"))?;
    proj.cache
        .write_record(&rec)
        .map_err(|e| format!("cannot write the run record: {e}"))?;
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::lockfile::LockFile;
    use crate::cache::stat::StatCache;
    use crate::cache::Cache;
    use crate::config::Pipeline;
    use crate::graph::Dag;
    use crate::stage::{KindInfo, StageKind};
    use std::sync::Mutex;

    /// Records (start, end) of each run to check that heavy runs never overlap.
    static SPANS: Mutex<Vec<(bool, Instant, Instant)>> = Mutex::new(Vec::new());

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
            let t0 = Instant::now();
            std::thread::sleep(std::time::Duration::from_millis(40));
            std::fs::write(ctx.out_dir.join("x"), &ctx.id)?;
            SPANS.lock().unwrap().push((self.0, t0, Instant::now()));
            Ok(())
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
        };
        let dag = Dag::new(&pipeline);
        let cache = Cache::new(dir.path());
        let proj = Project {
            stats: StatCache::load(&cache.dir),
            cache,
            dag,
            pipeline,
            lock: LockFile::default(),
        };
        let n = proj.pipeline.nodes.len();
        let plans = crate::plan::plan(&proj, &vec![true; n], &vec![false; n], false);
        let opts = RunOptions {
            jobs: 4,
            keep_going: false,
            force: vec![false; n],
            selected: vec![true; n],
            echo: false,
        };
        let (outcomes, _) = execute(&proj, &plans, &opts);
        assert!(outcomes.iter().all(|o| matches!(o, Some(Outcome::Ran(_)))));
        let spans = SPANS.lock().unwrap().clone();
        let heavy: Vec<_> = spans.iter().filter(|s| s.0).collect();
        assert_eq!(heavy.len(), 3);
        for a in &heavy {
            for b in &heavy {
                if a.1 != b.1 {
                    assert!(a.2 <= b.1 || b.2 <= a.1, "heavy stages overlapped");
                }
            }
        }
        // Light stages ran beside a heavy one (-j 4).
        let light: Vec<_> = spans.iter().filter(|s| !s.0).collect();
        assert!(light
            .iter()
            .any(|l| heavy.iter().any(|h| l.1 < h.2 && h.1 < l.2)));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("results/t/h2/x")).unwrap(),
            "h2"
        );
    }
}
