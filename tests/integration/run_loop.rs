//! The run loop as a user sees it: a run with overrides never rewrites the lock file, the JSON
//! summary, `--dry-run` saying "may run" below a forced stage, `needs` order, upstream outputs
//! listed in `deps`, stray checkpoint files, the markers of unfinished attempts (interrupted
//! only for the fingerprint that was, a log never keeping an old failure), and the mode of
//! placed checkpoints.

use crate::support::*;
use std::os::unix::fs::PermissionsExt;

/// `d`'s command with other output: a change of `d` only.
const SET_D: &str = "d.cmd=echo d >> runs.log; echo other > $PIPE_OUT/d.txt";

#[test]
fn a_run_with_overrides_leaves_the_lock_file_byte_identical() {
    let p = Proj::new(CHAIN);
    p.run_ok(&[]);
    let lock = std::fs::read(p.path("pipelines/p.lock")).unwrap();
    // --set: d runs, its results are in place and recorded, the lock file is untouched.
    let o = p.pipe(&["run", "pipelines/p.yaml", "--set", SET_D]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(p.take_runs(), vec!["d"]);
    assert_eq!(p.read("results/demo/d/d.txt"), "other\n");
    assert!(
        stderr(&o).contains("pipelines/p.lock not updated: this run has overrides (--set d.cmd="),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(p.path("pipelines/p.lock")).unwrap(), lock);
    // --params FILE and PIPE_<STAGE>__<KEY> are overrides too.
    p.write(
        "over.yaml",
        "d: { cmd: \"echo d >> runs.log; echo third > $PIPE_OUT/d.txt\" }\n",
    );
    p.ok(&["run", "pipelines/p.yaml", "--params", "over.yaml"]);
    assert_eq!(p.take_runs(), vec!["d"]);
    assert_eq!(std::fs::read(p.path("pipelines/p.lock")).unwrap(), lock);
    let o = pipe_env(
        p.root(),
        &["run", "pipelines/p.yaml"],
        &[(
            "PIPE_D__CMD",
            "echo d >> runs.log; echo fourth > $PIPE_OUT/d.txt",
        )],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(p.take_runs(), vec!["d"]);
    assert_eq!(p.read("results/demo/d/d.txt"), "fourth\n");
    assert_eq!(std::fs::read(p.path("pipelines/p.lock")).unwrap(), lock);
    // The run without overrides restores what the lock file describes, and keeps it.
    assert!(p.run_ok(&[]).is_empty());
    assert_eq!(p.read("results/demo/d/d.txt"), "d\n");
    assert_eq!(std::fs::read(p.path("pipelines/p.lock")).unwrap(), lock);
}

#[test]
fn run_json_is_the_summary_of_the_run() {
    let p = Proj::new(CHAIN);
    p.run_ok(&[]);
    let out = p.ok(&["run", "pipelines/p.yaml", "--json", "--set", SET_D]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["pipeline"], "demo");
    assert_eq!(v["file"], "pipelines/p.yaml");
    assert_eq!(v["overrides"][0], format!("--set {SET_D}"));
    assert_eq!(
        (v["ran"].as_u64(), v["up_to_date"].as_u64()),
        (Some(1), Some(4))
    );
    assert_eq!(v["lock"]["written"], false);
    let stages = v["stages"].as_array().unwrap();
    let ids: Vec<&str> = stages.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["a", "b@w=1", "b@w=2", "c", "d"]);
    let d = &stages[4];
    assert_eq!(
        (d["state"].as_str(), d["stage"].as_str()),
        (Some("ran"), Some("d"))
    );
    assert!(d["seconds"].as_f64().is_some());
    // Every instance's fingerprint: what `status --json` reports for it with the same override.
    let st = p.ok(&["status", "pipelines/p.yaml", "--json", "--set", SET_D]);
    let sv: serde_json::Value = serde_json::from_str(&st).unwrap();
    for (s, t) in stages.iter().zip(sv["stages"].as_array().unwrap()) {
        assert_eq!(s["fingerprint"], t["fingerprint"], "{}", s["id"]);
        assert_eq!(s["fingerprint"].as_str().map(str::len), Some(64));
    }
}

#[test]
fn dry_run_says_may_run_below_a_forced_stage() {
    let p = Proj::new(CHAIN);
    p.run_ok(&[]);
    let s = p.ok(&["run", "pipelines/p.yaml", "--dry-run", "--force", "a"]);
    let line = |id: &str| {
        s.lines()
            .find(|l| l.starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("no line for {id}: {s}"))
            .to_string()
    };
    assert!(line("a").contains("will run: forced"), "{s}");
    assert!(
        line("b@w=1").contains("may run: upstream a is forced"),
        "{s}"
    );
    assert!(line("c").contains("may run: upstream b@w=1 may run"), "{s}");
    assert!(line("d").contains("up to date"), "{s}");
    assert!(s.contains("1 will run, 3 may run"), "{s}");
    // And indeed: a's outputs come out identical, nothing below it runs.
    assert_eq!(p.run_ok(&["--force", "a"]), vec!["a"]);
    // A forced stage whose dependents would run anyway says so.
    let set = "c.cmd=echo c >> runs.log; echo new > $PIPE_OUT/c.txt";
    let s = p.ok(&[
        "run",
        "pipelines/p.yaml",
        "--dry-run",
        "--force",
        "a",
        "--set",
        set,
    ]);
    assert!(
        s.lines()
            .any(|l| l.starts_with("c ") && l.contains("will run: param cmd")),
        "{s}"
    );
}

#[test]
fn reordering_needs_changes_no_fingerprint() {
    let yaml = |needs: &str| {
        format!(
            "name: r\nstages:\n  a: {{ kind: command, params: {{ cmd: \"echo a > $PIPE_OUT/a.txt\" }} }}\n  \
             b: {{ kind: command, params: {{ cmd: \"echo b > $PIPE_OUT/b.txt\" }} }}\n  \
             c: {{ kind: command, needs: [{needs}], params: {{ cmd: \"echo c >> runs.log; ls $PIPE_OUT > /dev/null\" }} }}\n"
        )
    };
    let p = Proj::new(&yaml("a, b"));
    assert_eq!(p.run_ok(&[]), vec!["c"]);
    p.write("pipelines/p.yaml", &yaml("b, a"));
    let s = p.ok(&["status", "pipelines/p.yaml"]);
    assert!(s.contains("r: 3 up to date, 0 will run"), "{s}");
    assert!(p.run_ok(&[]).is_empty());
}

/// b lists a's output `out/a.txt` in its `deps`: after an edit of that file, status and run
/// agree that a is restored and b is up to date (the run restores a before b reads it).
#[test]
fn upstream_outputs_in_deps_status_and_run_agree() {
    let p = Proj::new(CHAIN);
    p.run_ok(&[]);
    p.write("out/a.txt", "edited\n");
    let s = p.ok(&["status", "pipelines/p.yaml"]);
    let line = |id: &str| {
        s.lines()
            .find(|l| l.starts_with(&format!("{id} ")))
            .unwrap_or("")
    };
    assert!(line("a").contains("will restore: out/a.txt differs"), "{s}");
    assert!(line("b@w=1").contains("up to date"), "{s}");
    p.ok(&["run", "pipelines/p.yaml", "--frozen"]);
    assert!(p.take_runs().is_empty());
    assert_eq!(p.read("out/a.txt"), "hello\n");
}

#[test]
fn stray_checkpoint_files_are_reported_and_removed() {
    let p = Proj::new(
        "name: k\nstages:\n  t: { kind: command, params: { cmd: \"echo w > $PIPE_CKPT/w.txt\" } }\n",
    );
    p.run_ok(&[]);
    p.write("checkpoints/k/t/epoch_4.bin", "stale\n");
    let s = p.ok(&["status", "pipelines/p.yaml"]);
    assert!(
        s.contains("t  will restore: checkpoints/k/t/epoch_4.bin is not an output"),
        "{s}"
    );
    let o = p.pipe(&["run", "pipelines/p.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("removed checkpoints/k/t/epoch_4.bin"),
        "{}",
        stderr(&o)
    );
    assert!(!p.path("checkpoints/k/t/epoch_4.bin").exists());
    assert_eq!(p.read("checkpoints/k/t/w.txt"), "w\n");
    assert!(p
        .ok(&["status", "pipelines/p.yaml"])
        .contains("1 up to date"));
}

#[test]
fn a_log_never_keeps_an_old_failure_once_up_to_date() {
    let p = Proj::new(CHAIN);
    p.run_ok(&[]);
    let o = p.pipe(&[
        "run",
        "pipelines/p.yaml",
        "--set",
        "d.cmd=echo broken; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(p.read("results/demo/logs/d.log").contains("exit status: 3"));
    // Back to the file's value: d is up to date, and its log is its run's again.
    assert!(p.run_ok(&[]).is_empty());
    let log = p.read("results/demo/logs/d.log");
    assert!(
        !log.contains("broken") && !log.contains("exit status"),
        "{log}"
    );
    assert!(log.contains("restored from the store"), "{log}");
    assert!(p
        .path("cache/interrupted")
        .read_dir()
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn placed_checkpoints_have_the_same_mode_computed_or_restored() {
    let p = Proj::new(
        "name: m\nstages:\n  t: { kind: command, params: { cmd: \"umask 077; echo w > $PIPE_CKPT/w.bin; echo r > $PIPE_OUT/r.txt\" } }\n",
    );
    p.run_ok(&[]);
    let mode = |rel: &str| std::fs::metadata(p.path(rel)).unwrap().permissions().mode() & 0o777;
    let computed = (mode("checkpoints/m/t/w.bin"), mode("results/m/t/r.txt"));
    std::fs::remove_dir_all(p.path("checkpoints")).unwrap();
    std::fs::remove_dir_all(p.path("results/m/t")).unwrap();
    assert!(p.run_ok(&[]).is_empty());
    let restored = (mode("checkpoints/m/t/w.bin"), mode("results/m/t/r.txt"));
    assert_eq!(computed, restored);
    assert_eq!(computed.0, computed.1);
}
