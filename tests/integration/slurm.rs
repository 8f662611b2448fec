//! Slurm client tests on the real one-node cluster that `scripts/test.sh` starts (it exports
//! `PIPE_TEST_SLURM=1`); without it they print a skip line and return. The tests share the
//! node's two CPUs, so they run one at a time (with `slurm_exec`: one lock, `support::cluster`).
//! The time-limit test takes about a minute: Slurm's smallest limit is one minute.

use crate::support::cluster;
use pipe::slurm::{self, JobSpec, JobState};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A job name no other test run uses.
fn name(tag: &str) -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("pipe-test-{}-{t}-{tag}", std::process::id())
}

fn spec(dir: &Path, tag: &str, script: &str) -> JobSpec {
    JobSpec {
        name: name(tag),
        cpus: Some(1),
        mem_mb: Some(100),
        time_min: Some(5),
        log: dir.join(format!("{tag}-%j.log")),
        workdir: Some(dir.to_path_buf()),
        command: vec!["/bin/sh".into(), "-c".into(), script.into()],
        ..Default::default()
    }
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Waits until a job reaches `state` (or any terminal state), for at most `limit`.
fn wait_for_state(id: u64, state: JobState, limit: Duration) -> slurm::JobStatus {
    let t0 = Instant::now();
    let mut p = slurm::Poller::new();
    loop {
        p.poll(&[id]).unwrap();
        let st = p.status(id).cloned().unwrap();
        if st.state == state || st.state.is_terminal() || t0.elapsed() > limit {
            return st;
        }
        p.pause();
    }
}

#[test]
fn job_that_succeeds_and_its_overhead() {
    let Some(_node) = cluster() else { return };
    let d = tempfile::tempdir().unwrap();
    let s = spec(
        d.path(),
        "ok",
        "date +%s.%N > start; echo hello from $SLURM_JOB_ID; date +%s.%N > end",
    );
    let submitted = now_s();
    let id = slurm::submit(&s).unwrap();
    let fin = slurm::wait_all(&[id], |_| {}).unwrap();
    let noticed = now_s();
    let st = &fin[&id];
    assert_eq!(st.state, JobState::Completed, "{st:?}");
    assert_eq!(st.exit_code, Some(0));
    let log = std::fs::read_to_string(d.path().join(format!("ok-{id}.log"))).unwrap();
    assert!(log.contains(&format!("hello from {id}")), "{log}");
    let read = |f: &str| -> f64 {
        std::fs::read_to_string(d.path().join(f))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    eprintln!(
        "slurm overhead: submit->start {:.2} s, finish->noticed {:.2} s",
        read("start") - submitted,
        noticed - read("end")
    );
}

#[test]
fn job_that_fails_and_a_dependent_that_can_never_run() {
    let Some(_node) = cluster() else { return };
    let d = tempfile::tempdir().unwrap();
    let id = slurm::submit(&spec(d.path(), "bad", "echo boom >&2; exit 3")).unwrap();
    let mut dep = spec(d.path(), "dep", "true");
    dep.after_ok = vec![id];
    let dep_id = slurm::submit(&dep).unwrap();
    let fin = slurm::wait_all(&[id, dep_id], |_| {}).unwrap();
    assert_eq!(fin[&id].state, JobState::Failed, "{:?}", fin[&id]);
    assert_eq!(fin[&id].exit_code, Some(3));
    // --kill-on-invalid-dep=yes: never left pending
    assert_eq!(
        fin[&dep_id].state,
        JobState::Cancelled,
        "{:?}",
        fin[&dep_id]
    );
    let log = std::fs::read_to_string(d.path().join(format!("bad-{id}.log"))).unwrap();
    assert!(log.contains("boom"));
}

#[test]
fn job_cancelled_from_outside_and_found_by_name() {
    let Some(_node) = cluster() else { return };
    let d = tempfile::tempdir().unwrap();
    let s = spec(d.path(), "cancel", "sleep 120");
    let id = slurm::submit(&s).unwrap();
    let st = wait_for_state(id, JobState::Running, Duration::from_secs(30));
    assert_eq!(st.state, JobState::Running, "{st:?}");
    let prefix = &s.name[..s.name.len() - "cancel".len()];
    let found = slurm::find_jobs(prefix).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].id, &found[0].name), (id, &s.name));
    let o = std::process::Command::new("scancel")
        .arg(id.to_string())
        .output()
        .unwrap();
    assert!(o.status.success());
    let fin = slurm::wait_all(&[id], |_| {}).unwrap();
    assert_eq!(fin[&id].state, JobState::Cancelled, "{:?}", fin[&id]);
    assert!(slurm::find_jobs(prefix).unwrap().is_empty());
    // cancelling a finished job is not an error
    slurm::cancel(&[id]).unwrap();
}

#[test]
fn job_over_its_time_limit_times_out() {
    let Some(_node) = cluster() else { return };
    let d = tempfile::tempdir().unwrap();
    let mut s = spec(d.path(), "slow", "sleep 300");
    s.time_min = Some(1);
    let id = slurm::submit(&s).unwrap();
    let t0 = Instant::now();
    let fin = slurm::wait_all(&[id], |_| {}).unwrap();
    assert_eq!(fin[&id].state, JobState::Timeout, "{:?}", fin[&id]);
    eprintln!(
        "time-limit test: TIMEOUT after {:.0} s",
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn two_single_cpu_jobs_run_at_once() {
    let Some(_node) = cluster() else { return };
    let d = tempfile::tempdir().unwrap();
    // each job waits (at most 30 s) until both have started: only if they overlap do both pass
    let script = |me: &str, other: &str| {
        format!("touch {me}; i=0; while [ ! -e {other} ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; [ -e {other} ]")
    };
    let a = slurm::submit(&spec(d.path(), "a", &script("a.started", "b.started"))).unwrap();
    let b = slurm::submit(&spec(d.path(), "b", &script("b.started", "a.started"))).unwrap();
    let fin = slurm::wait_all(&[a, b], |_| {}).unwrap();
    for id in [a, b] {
        assert_eq!(fin[&id].state, JobState::Completed, "{:?}", fin[&id]);
    }
}

#[test]
fn query_of_an_unknown_job_does_not_hang() {
    let Some(_node) = cluster() else { return };
    let st = slurm::query(&[999_999_999]).unwrap();
    assert_eq!(st[&999_999_999].state, JobState::Other("UNKNOWN".into()));
}

#[test]
fn job_array_elements_run_their_own_commands_and_fail_on_their_own() {
    let Some(_node) = cluster() else { return };
    let d = tempfile::tempdir().unwrap();
    let task = |i: u32, script: &str| slurm::Task {
        command: vec!["/bin/sh".into(), "-c".into(), script.into()],
        log: Some(d.path().join(format!("logs/e{i}.log"))),
    };
    let a = slurm::ArraySpec {
        job: spec(d.path(), "arr", "unused"),
        tasks: vec![
            task(0, "echo zero"),
            task(1, "echo one; exit 3"),
            task(2, "echo two"),
        ],
        limit: Some(2),
    };
    let id = slurm::submit_array(&a).unwrap();
    let elems: Vec<slurm::JobRef> = (0..3).map(|t| slurm::JobRef::element(id, t)).collect();
    let fin = slurm::wait_all(&elems, |_| {}).unwrap();
    let state = |t: usize| fin[&elems[t]].state.clone();
    assert_eq!(
        (state(0), state(1), state(2)),
        (JobState::Completed, JobState::Failed, JobState::Completed),
        "{fin:?}"
    );
    assert_eq!(fin[&elems[1]].exit_code, Some(3));
    for (t, want) in [(0, "zero"), (1, "one"), (2, "two")] {
        let log = std::fs::read_to_string(d.path().join(format!("logs/e{t}.log"))).unwrap();
        assert_eq!(log.trim(), want);
    }
    // each element has a job id of its own once it ran
    let raws: std::collections::BTreeSet<u64> = fin.values().map(|s| s.raw).collect();
    assert_eq!(raws.len(), 3, "{fin:?}");
}
