//! The Slurm executor on the real one-node cluster that `scripts/test.sh` starts (it exports
//! `PIPE_TEST_SLURM=1`); without it the tests print a skip line and return. They drive the
//! real `pipe` binary with `command` stages and share the node, so they run one at a time (with
//! `slurm`: one lock, `support::cluster`).

use crate::support::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// Five `command` stages: a → b (matrix w: 1, 2) → c, and d on its own.
const CHAIN: &str = r#"
name: s
seed: 7
stages:
  a:
    kind: command
    params:
      cmd: "echo a >> runs.log; mkdir -p out; cat in.txt > out/a.txt; echo '{\"score\": 1.5}' > $PIPE_OUT/metrics.json"
      deps: [in.txt]
      outs: [out/a.txt]
  b:
    kind: command
    needs: [a]
    matrix: { w: [1, 2] }
    params:
      cmd: "echo $PIPE_STAGE >> runs.log; cat out/a.txt > out/b_${w}.txt; echo ${w} >> out/b_${w}.txt"
      deps: [out/a.txt]
      outs: ["out/b_${w}.txt"]
  c:
    kind: command
    needs: [b]
    params:
      cmd: "echo c >> runs.log; cat out/b_1.txt out/b_2.txt > $PIPE_OUT/c.txt"
  d:
    kind: command
    params:
      cmd: "echo d >> runs.log; echo d > $PIPE_OUT/d.txt"
"#;

/// This user's queued or running jobs of a project.
fn project_jobs(root: &Path) -> Vec<pipe::slurm::FoundJob> {
    pipe::slurm::find_jobs(&pipe::executor::slurm::job_name(root, "")).unwrap()
}

#[test]
fn slurm_run_gives_the_local_lock_file() {
    let Some(_node) = cluster() else { return };
    let local = Proj::new(CHAIN);
    let o = local.pipe(&["run", "pipelines/p.yaml"]);
    assert!(o.status.success(), "{}", text(&o));
    let slurm = Proj::new(CHAIN);
    let o = slurm.pipe(&["run", "pipelines/p.yaml", "--executor", "slurm"]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert_eq!(t.matches("as Slurm job").count(), 5, "{t}");
    assert_eq!(slurm.runs(), local.runs());
    assert_eq!(
        slurm.read("pipelines/p.lock"),
        local.read("pipelines/p.lock")
    );
    assert!(!slurm.read("pipelines/p.lock").is_empty());
    // Nothing to compute: no job.
    let o = slurm.pipe(&["run", "pipelines/p.yaml", "--executor", "slurm"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("Slurm job"), "{}", text(&o));
    assert_eq!(slurm.runs().len(), 5);
}

#[test]
fn failing_job_names_stage_job_id_state_and_log() {
    let Some(_node) = cluster() else { return };
    let p = Proj::new(
        "name: f\nstages:\n  bad: { kind: command, params: { cmd: \"echo boom >&2; exit 3\" } }\n",
    );
    let o = p.pipe(&["run", "pipelines/p.yaml", "--executor", "slurm"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("stage `bad` failed") && t.contains("FAILED") && t.contains("exit code 1"),
        "{t}"
    );
    assert!(t.contains("results/f/logs/bad.log"), "{t}");
    let id = t
        .split("Slurm job ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse::<u64>().ok());
    assert!(id.is_some(), "no job id in: {t}");
    assert!(p.read("results/f/logs/bad.log").contains("boom"));
}

#[test]
fn job_cancelled_from_outside_is_reported_cancelled() {
    let Some(_node) = cluster() else { return };
    let p =
        Proj::new("name: c\nstages:\n  slow: { kind: command, params: { cmd: \"sleep 60\" } }\n");
    let child = p
        .cmd(&["run", "pipelines/p.yaml", "--executor", "slurm"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let job = loop {
        if let Some(j) = project_jobs(p.root()).into_iter().next() {
            break j;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "no job submitted");
        std::thread::sleep(Duration::from_millis(100));
    };
    pipe::slurm::cancel(&[job.id]).unwrap();
    let o = child.wait_with_output().unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains(&format!("Slurm job {} CANCELLED", job.id)) && t.contains("stage `slow`"),
        "{t}"
    );
    assert!(project_jobs(p.root()).is_empty());
}
