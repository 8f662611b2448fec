//! The run loop with fake stage kinds: heavy kinds share the one compute slot while light ones
//! run beside them.

use super::drain::{drain, LoopOptions};
use super::summary::Outcome;
use super::Selection;
use crate::config::Node;
use crate::config::Pipeline;
use crate::executor::Local;
use crate::interrupt::Markers;
use crate::project::Project;
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
        settings: Default::default(),
    };
    let proj = Project::from_pipeline(pipeline).unwrap();
    let n = proj.pipeline.nodes.len();
    let plans = crate::plan::plan_all(&proj, false);
    let opts = LoopOptions {
        jobs: 4,
        keep_going: false,
        echo: false,
    };
    let sel = Selection::all(n);
    let d = drain(
        &proj,
        &plans,
        &sel,
        &Markers::default(),
        &opts,
        [&Local, &Local],
    );
    assert!(d
        .outcomes
        .iter()
        .all(|o| matches!(o, Some(Outcome::Ran { .. }))));
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
