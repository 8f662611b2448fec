//! A cluster user's bad days, on real Slurm clusters with the real `pipe` binary: a `squeue`
//! that fails twice and an `sbatch` whose reply is lost (wrappers first on `PATH`), a controller
//! stopped for 20 s mid-run, a 16-wide sweep watched with one status query per poll, and a
//! further cluster started and stopped beside the others. The tests that stop a controller or
//! fill a node use the private cluster of the test run (`PIPE_TEST_SLURM2_BASE`, see
//! `support::slurm`); without the servers each prints a skip line and returns.

use crate::support::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// The name prefix of every job of a project.
fn prefix_of(root: &Path) -> String {
    pipe::executor::slurm::job_prefix(root)
}

/// Two chained `command` stages.
const TWO: &str = "name: t\nstages:\n  a: { kind: command, params: { cmd: \"echo a > $PIPE_OUT/a.txt\" } }\n  b: { kind: command, needs: [a], params: { cmd: \"cat results/t/a/a.txt > $PIPE_OUT/b.txt\" } }\n";

#[test]
fn failing_squeue_and_a_lost_sbatch_reply_are_retried_without_a_duplicate() {
    let Some(_node) = cluster() else { return };
    let Some(base) = std::env::var_os("PIPE_TEST_SLURM_BASE") else {
        eprintln!("skipped: PIPE_TEST_SLURM_BASE unset");
        return;
    };
    let p = Proj::new(TWO);
    let w = Wrappers::new();
    w.wrap(
        "squeue",
        2,
        "slurm_load_jobs error: Unable to contact slurm controller (connect failure)",
        false,
    )
    // the controller takes the first job but its reply is lost
    .wrap(
        "sbatch",
        1,
        "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation",
        true,
    );
    let o = p
        .cmd(&["run", "pipelines/p.yaml", "--executor", "slurm"])
        .env("PATH", w.path())
        .output()
        .unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("Unable to contact slurm controller"), "{t}");
    assert!(t.contains("was submitted by an earlier attempt"), "{t}");
    assert_eq!(p.read("results/t/b/b.txt"), "a\n");
    // two stages, two jobs: the lost reply's job was adopted, not submitted again
    let jobs = Cluster::at(Path::new(&base)).jobcomp_n(&prefix_of(p.root()), 2);
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert!(
        jobs.iter().all(|j| j["JobState"] == "COMPLETED"),
        "{jobs:?}"
    );
    // one sbatch per stage: the lost reply was looked up (squeue), not submitted again
    assert_eq!(w.calls("sbatch").len(), 2, "{:?}", w.calls("sbatch"));
    assert!(w.calls("squeue").len() > 2);
}

#[test]
fn controller_stopped_for_20_s_mid_run_and_restarted() {
    let Some((_g, c)) = private_cluster() else {
        return;
    };
    let p = Proj::new(
        "name: r\nstages:\n  a: { kind: command, params: { cmd: \"sleep 4; echo a > $PIPE_OUT/a.txt\" } }\n  b: { kind: command, needs: [a], params: { cmd: \"cat results/r/a/a.txt > $PIPE_OUT/b.txt\" } }\n",
    );
    let prefix = prefix_of(p.root());
    let child = p
        .cmd(&["run", "pipelines/p.yaml", "--executor", "slurm"])
        .env("SLURM_CONF", &c.conf)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("stage a's job running", 60, || {
        c.queued(&prefix).iter().any(|(_, s)| s == "RUNNING")
    });
    let pid = std::fs::read_to_string(c.base.join("run/slurmctld.pid")).unwrap();
    let ctld = format!("/proc/{}", pid.trim());
    let stopped = Instant::now();
    let o = std::process::Command::new("kill")
        .arg(pid.trim())
        .output()
        .unwrap();
    assert!(o.status.success(), "kill slurmctld: {}", text(&o));
    wait_until("slurmctld gone", 30, || !Path::new(&ctld).exists());
    // a's job ends while the controller is away
    std::thread::sleep(Duration::from_secs(20).saturating_sub(stopped.elapsed()));
    c.script("slurm_up.sh", &[]);
    let o = child.wait_with_output().unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("cannot query the jobs"), "{t}");
    assert!(t.contains("the controller answers again"), "{t}");
    assert_eq!(p.read("results/r/b/b.txt"), "a\n");
    let jobs = c.jobcomp_n(&prefix, 2);
    assert_eq!(jobs.len(), 2, "one job per stage: {jobs:?}");
    assert!(
        jobs.iter().all(|j| j["JobState"] == "COMPLETED"),
        "{jobs:?}"
    );
}

#[test]
fn sixteen_wide_sweep_all_in_flight_with_one_status_query_per_poll() {
    let Some((_g, c)) = private_cluster() else {
        return;
    };
    let p = Proj::new(
        "name: s\nstages:\n  w:\n    kind: command\n    matrix: { i: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16] }\n    params: { cmd: \"sleep 3; echo ${i} > $PIPE_OUT/x.txt\" }\n    resources: { cpus: 1, mem_mb: 100, time_min: 5 }\n",
    );
    let w = Wrappers::new();
    w.wrap("squeue", 0, "", false);
    let t0 = Instant::now();
    let o = p
        .cmd(&["run", "pipelines/p.yaml", "--executor", "slurm", "-j", "16"])
        .env("SLURM_CONF", &c.conf)
        .env("PATH", w.path())
        .output()
        .unwrap();
    let wall = t0.elapsed().as_secs_f64();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let jobs = c.jobcomp_n(&prefix_of(p.root()), 16);
    assert_eq!(jobs.len(), 16, "{jobs:?}");
    assert!(
        jobs.iter().all(|j| j["JobState"] == "COMPLETED"),
        "{jobs:?}"
    );
    let most = max_at_once(&jobs);
    // status queries: `squeue … --jobs=…`; the others look jobs up by name before submitting
    let calls = w.calls("squeue");
    let status: Vec<&(f64, String)> = calls
        .iter()
        .filter(|(_, a)| a.contains("--jobs="))
        .collect();
    let widest = status
        .iter()
        .map(|(_, a)| {
            a.split("--jobs=")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .split(',')
                .count()
        })
        .max()
        .unwrap_or(0);
    let gaps: Vec<f64> = status.windows(2).map(|w| w[1].0 - w[0].0).collect();
    let closest = gaps.iter().copied().fold(f64::INFINITY, f64::min);
    eprintln!(
        "16-wide sweep: {wall:.1} s, {} squeue calls ({} status queries, the widest for {widest} jobs, \
         closest {closest:.2} s apart), {most} jobs at once",
        calls.len(),
        status.len()
    );
    assert_eq!(most, 16, "all 16 in flight at once: {jobs:?}");
    assert_eq!(
        widest, 16,
        "one query covers every job in flight: {status:?}"
    );
    // one query per poll for all jobs: never two closer than the shortest interval (0.2 s,
    // less a little for the wrapper's own start-up), so the rate does not grow with the jobs
    assert!(closest >= 0.15, "status queries {gaps:?} s apart");
    assert!(
        (status.len() as f64) <= wall / 0.2 + 2.0,
        "{} status queries in {wall:.1} s",
        status.len()
    );
}

#[test]
fn a_further_cluster_runs_beside_the_others_and_stops_only_its_own_jobs() {
    let Some((_g, c2)) = private_cluster() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let c3 = Cluster::at(&tmp.path().join("c3"));
    c3.script("slurm_up.sh", &[("SLURM_CLUSTER", "pipetest3")]);
    let name = |c: &Cluster| -> String {
        let o = c.cmd("scontrol").args(["show", "config"]).output().unwrap();
        let t = String::from_utf8_lossy(&o.stdout).to_string();
        t.lines()
            .find(|l| l.starts_with("ClusterName"))
            .and_then(|l| l.split('=').nth(1))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    assert_eq!(name(&c3), "pipetest3");
    assert_ne!(name(&c2), name(&c3));
    // the same pipeline on two clusters at once: each job on its own cluster only
    let (p2, p3) = (Proj::new(TWO), Proj::new(TWO));
    let run = |p: &Proj, c: &Cluster| {
        p.cmd(&["run", "pipelines/p.yaml", "--executor", "slurm"])
            .env("SLURM_CONF", &c.conf)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (d2, d3) = (run(&p2, &c2), run(&p3, &c3));
    for (d, p) in [(d2, &p2), (d3, &p3)] {
        let o = d.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(p.read("results/t/b/b.txt"), "a\n");
    }
    let (n2, n3) = (prefix_of(p2.root()), prefix_of(p3.root()));
    assert_eq!(c2.jobcomp_n(&n2, 2).len(), 2);
    assert_eq!(c3.jobcomp_n(&n3, 2).len(), 2);
    assert!(c2.jobcomp(&n3).is_empty() && c3.jobcomp(&n2).is_empty());
    // stopping the further cluster cancels its jobs, and only its jobs
    let sleeper = |c: &Cluster, tag: &str| -> String {
        let o = c
            .cmd("sbatch")
            .args([
                "--parsable",
                &format!("--job-name=pipe-side-{tag}"),
                "--output=/dev/null",
                "--mem=50",
                "--wrap=sleep 120",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let (j2, _j3) = (sleeper(&c2, "2"), sleeper(&c3, "3"));
    wait_until("both sleepers running", 60, || {
        c2.queued("pipe-side-2").iter().any(|(_, s)| s == "RUNNING")
            && c3.queued("pipe-side-3").iter().any(|(_, s)| s == "RUNNING")
    });
    c3.script("slurm_down.sh", &[]);
    assert!(
        c2.queued("pipe-side-2")
            .iter()
            .any(|(i, s)| *i == j2 && s == "RUNNING"),
        "{:?}",
        c2.queued("pipe-side-2")
    );
    let o = c2.cmd("scancel").arg(&j2).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    // nothing of the stopped cluster is left running
    for f in ["run/slurmctld.pid", "run/slurmd.pid", "munge/munged.pid"] {
        assert!(!c3.base.join(f).exists(), "{f} left behind");
    }
}
