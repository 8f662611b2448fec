//! Engine integration tests: drive the real `pipe` binary in temp folders with `command`
//! stages running `sh -c`. Each stage appends its id to `runs.log`, so a test can tell which
//! stages really ran (restores and up-to-date stages do not write there).

use crate::support::*;
use std::path::Path;

#[test]
fn first_run_runs_all_second_run_nothing() {
    let p = Proj::new(CHAIN);
    assert_eq!(p.run_ok(&[]), vec!["a", "b@w=1", "b@w=2", "c", "d"]);
    assert_eq!(p.read("results/demo/c/c.txt"), "hello\n1\nhello\n2\n");
    assert!(p.root().join("results/demo/logs/a.log").is_file());
    assert!(p.run_ok(&[]).is_empty());
    let lock = p.read("pipelines/p.lock");
    assert!(lock.contains("\"score\": 1.5"), "{lock}");
    assert!(lock.contains("\"b@w=2\""));
    let st = p.pipe(&["status", "pipelines/p.yaml", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let ids: Vec<&str> = v["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["a", "b@w=1", "b@w=2", "c", "d"]);
    assert!(v["stages"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["state"] == "up-to-date"));
}

#[test]
fn changed_param_reruns_exactly_dependents_and_back_restores() {
    let p = Proj::new(CHAIN);
    p.run_ok(&[]);
    // Change b's command for every instance: b and c rerun, a and d do not.
    let st = p.pipe(&[
        "status",
        "pipelines/p.yaml",
        "--set",
        "b.cmd=echo $PIPE_STAGE >> runs.log; echo x > out/b_${w}.txt",
    ]);
    let s = stdout(&st);
    assert!(s.contains("b@w=1") && s.contains("param cmd:"), "{s}");
    assert!(s.contains("upstream b@w=1 will run"), "{s}");
    let set = "b.cmd=echo $PIPE_STAGE >> runs.log; echo x > out/b_${w}.txt";
    assert_eq!(p.run_ok(&["--set", set]), vec!["b@w=1", "b@w=2", "c"]);
    assert_eq!(p.read("results/demo/c/c.txt"), "x\nx\n");
    // And back: everything restored from the store, nothing runs.
    assert!(p.run_ok(&[]).is_empty());
    assert_eq!(p.read("results/demo/c/c.txt"), "hello\n1\nhello\n2\n");
    assert_eq!(p.read("out/b_1.txt"), "hello\n1\n");
}

#[test]
fn early_cutoff_when_outputs_do_not_change() {
    let p = Proj::new(CHAIN);
    p.run_ok(&[]);
    // Forcing a rebuilds a with identical output: b and c are not rerun.
    assert_eq!(p.run_ok(&["--force", "a"]), vec!["a"]);
}

#[test]
fn input_change_reruns_and_touch_does_not() {
    let p = Proj::new(CHAIN);
    p.run_ok(&[]);
    // Same content, new mtime (set, not waited for): nothing runs.
    let before = std::fs::metadata(p.path("in.txt"))
        .unwrap()
        .modified()
        .unwrap();
    p.write("in.txt", "hello\n");
    let f = std::fs::File::options()
        .write(true)
        .open(p.path("in.txt"))
        .unwrap();
    f.set_modified(before + std::time::Duration::from_secs(5))
        .unwrap();
    drop(f);
    assert_ne!(
        std::fs::metadata(p.path("in.txt"))
            .unwrap()
            .modified()
            .unwrap(),
        before
    );
    assert!(p.run_ok(&[]).is_empty());
    p.write("in.txt", "bye\n");
    let st = stdout(&p.pipe(&["status", "pipelines/p.yaml"]));
    assert!(st.contains("input in.txt changed"), "{st}");
    assert_eq!(p.run_ok(&[]), vec!["a", "b@w=1", "b@w=2", "c"]);
}

#[test]
fn deleted_results_are_restored_without_running() {
    let p = Proj::new(CHAIN);
    p.run_ok(&[]);
    std::fs::remove_dir_all(p.root().join("results")).unwrap();
    std::fs::remove_dir_all(p.root().join("out")).unwrap();
    let st = stdout(&p.pipe(&["status", "pipelines/p.yaml"]));
    assert!(
        st.contains("results/demo/a/metrics.json is missing"),
        "{st}"
    );
    assert!(st.contains("out/b_1.txt is missing"), "{st}");
    assert!(st.contains("a      will restore: "), "{st}");
    assert!(
        st.contains("0 will run, 5 will be restored from the store"),
        "{st}"
    );
    let o = p.pipe(&["run", "pipelines/p.yaml"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("0 ran, 5 restored"), "{}", stdout(&o));
    assert!(p.take_runs().is_empty());
    assert_eq!(p.read("results/demo/c/c.txt"), "hello\n1\nhello\n2\n");
    assert_eq!(p.read("out/a.txt"), "hello\n");
}

#[test]
fn corrupted_object_is_detected_and_rerun() {
    let p = Proj::new(CHAIN);
    p.run_ok(&[]);
    let obj = p.object_of(b"d\n");
    assert!(obj.is_file());
    std::fs::remove_dir_all(p.root().join("results")).unwrap();
    writable(&obj);
    std::fs::write(&obj, "X\n").unwrap();
    let o = p.pipe(&["run", "pipelines/p.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("corrupt"), "{}", stderr(&o));
    assert_eq!(p.take_runs(), vec!["d"]);
    assert_eq!(p.read("results/demo/d/d.txt"), "d\n");
    assert_eq!(std::fs::read(&obj).unwrap(), b"d\n");
}

#[test]
fn status_verify_rehashes() {
    let p = Proj::new(CHAIN);
    p.run_ok(&[]);
    let obj = p.object_of(b"d\n");
    writable(&obj);
    std::fs::write(&obj, "X\n").unwrap();
    // The edit changed the object's stat: even a plain status sees it.
    let st = stdout(&p.pipe(&["status", "pipelines/p.yaml"]));
    let d = st.lines().find(|l| l.starts_with("d ")).unwrap();
    assert!(
        d.contains("will restore: the stored copy of results/demo/d/d.txt is corrupt"),
        "{st}"
    );
    // --verify reports the same and changes nothing.
    let before = p.snapshot();
    let st = stdout(&p.pipe(&["status", "pipelines/p.yaml", "--verify"]));
    assert!(
        st.contains("the stored copy of results/demo/d/d.txt is corrupt"),
        "{st}"
    );
    assert_eq!(before, p.snapshot());
    // A plain run repairs the store from the intact working file, running nothing.
    assert!(p.run_ok(&[]).is_empty());
    assert_eq!(std::fs::read(&obj).unwrap(), b"d\n");
}

#[test]
fn failing_stage_exits_1_names_log_and_keeps_others() {
    let pl = r#"
name: f
stages:
  ok1: { kind: command, params: { cmd: "echo ok1 >> runs.log" } }
  bad: { kind: command, needs: [ok1], params: { cmd: "echo bad >> runs.log; echo boom >&2; exit 3" } }
  after: { kind: command, needs: [bad], params: { cmd: "echo after >> runs.log" } }
  other: { kind: command, params: { cmd: "echo other >> runs.log" } }
"#;
    let p = Proj::new(pl);
    let o = p.pipe(&["run", "pipelines/p.yaml", "--keep-going", "-j", "1"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("stage `bad` failed") && e.contains("results/f/logs/bad.log"),
        "{e}"
    );
    assert!(p.read("results/f/logs/bad.log").contains("boom"));
    assert!(stdout(&o).contains("1 skipped (after)"), "{}", stdout(&o));
    assert_eq!(p.take_runs(), vec!["bad", "ok1", "other"]);
    // Successes are cached: only the failing stage is tried again.
    let o = p.pipe(&["run", "pipelines/p.yaml", "--keep-going"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(p.take_runs(), vec!["bad"]);
}

#[test]
fn missing_declared_output_fails_the_stage() {
    let pl = "stages:\n  a: { kind: command, params: { cmd: \"true\", outs: [o.txt] } }\n";
    let p = Proj::new(pl);
    let o = p.pipe(&["run", "pipelines/p.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("declared output `o.txt` was not created"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn frozen_and_dry_run() {
    let p = Proj::new(CHAIN);
    let o = p.pipe(&["run", "pipelines/p.yaml", "--dry-run"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("new stage"));
    assert!(!p.root().join("results").exists());
    let o = p.pipe(&["run", "pipelines/p.yaml", "--frozen"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--frozen"), "{}", stderr(&o));
    assert!(p.take_runs().is_empty());
    p.run_ok(&[]);
    assert!(p.run_ok(&["--frozen"]).is_empty());
}

#[test]
fn only_runs_the_stage_and_its_upstream() {
    let p = Proj::new(CHAIN);
    assert_eq!(p.run_ok(&["--only", "b@w=2"]), vec!["a", "b@w=2"]);
    assert_eq!(p.run_ok(&[]), vec!["b@w=1", "c", "d"]);
}

#[test]
fn lock_file_has_no_stale_entries() {
    let p = Proj::new(CHAIN);
    p.run_ok(&[]);
    assert!(p.read("pipelines/p.lock").contains("\"d\""));
    let pl = CHAIN.replace("  d:\n    kind: command\n    params:\n      cmd: \"echo d >> runs.log; echo d > $PIPE_OUT/d.txt\"\n", "");
    p.write("pipelines/p.yaml", &pl);
    assert!(p.run_ok(&[]).is_empty());
    let lock = p.read("pipelines/p.lock");
    assert!(!lock.contains("\"d\""), "{lock}");
}

#[test]
fn clean_removes_results_and_unreferenced_objects() {
    let p = Proj::new(CHAIN);
    p.run_ok(&[]);
    // The pipeline file changes (a run with `--set` would leave the lock file as it was).
    let edited = CHAIN.replace("echo d > $PIPE_OUT/d.txt", "echo other > $PIPE_OUT/d.txt");
    p.write("pipelines/p.yaml", &edited);
    p.run_ok(&[]);
    // Every run is an experiment, and an experiment's runs are referenced: the first run's
    // outputs go once its experiment is deleted.
    let o = p.pipe(&["clean", "--cache", "--unreferenced"]);
    assert!(o.status.success());
    assert!(p.object_of(b"d\n").exists());
    std::fs::remove_dir_all(p.root().join("cache/experiments")).unwrap();
    let o = p.pipe(&["clean", "--cache", "--unreferenced", "--dry-run"]);
    let s = stdout(&o);
    let h = blake3::hash(b"d\n").to_hex().to_string();
    assert!(s.contains(&h[2..]), "{s}");
    assert!(p.object_of(b"d\n").exists());
    let o = p.pipe(&["clean", "--cache", "--unreferenced"]);
    assert!(o.status.success());
    assert!(!p.object_of(b"d\n").exists());
    let o = p.pipe(&["clean", "pipelines/p.yaml"]);
    assert!(o.status.success());
    assert!(!p.root().join("results/demo").exists());
    // The lock still references the current runs: restored, not run.
    let o = p.pipe(&["run", "pipelines/p.yaml"]);
    assert!(stdout(&o).contains("0 ran"), "{}", stdout(&o));
}

/// A command that logs `name`, writes its shell's pid to `<name>.pid`, touches `<name>.started`
/// and then waits for the file `go` (at most two minutes, then exits 9) before writing its
/// output: tests decide when it finishes, no clock does.
fn gated(name: &str) -> String {
    format!(
        "echo {name} >> runs.log; echo $$ > {name}.pid; touch {name}.started; i=0; while [ ! -e go ]; do i=$((i+1)); [ $i -gt 2400 ] && exit 9; sleep 0.05; done; echo s > $PIPE_OUT/s.txt"
    )
}

/// Whether process `pid` is running (a zombie counts as gone).
fn running(pid: i32) -> bool {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = s.rfind(')').and_then(|i| s[i + 2..].chars().next());
    !matches!(state, Some('Z') | Some('X') | None)
}

#[test]
fn kill_9_then_rerun_needs_no_unlock() {
    let pl = format!(
        r#"
name: k
stages:
  a: {{ kind: command, params: {{ cmd: "echo a >> runs.log; echo a > $PIPE_OUT/a.txt" }} }}
  slow: {{ kind: command, needs: [a], params: {{ cmd: "{}" }} }}
  c: {{ kind: command, needs: [slow], params: {{ cmd: "echo c >> runs.log" }} }}
"#,
        gated("slow")
    );
    let p = Proj::new(&pl);
    let mut child = p
        .cmd(&["run", "pipelines/p.yaml"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until("slow started", 120, || p.path("slow.started").exists());
    let sh: i32 = p.read("slow.pid").trim().parse().unwrap();
    child.kill().unwrap(); // SIGKILL, while slow waits for `go`
    child.wait().unwrap();
    // The stage's process group dies with pipe; nothing of the killed run is left to write.
    wait_until("the killed run's command is gone", 60, || !running(sh));
    assert!(!p.path("results/k/slow/s.txt").exists());
    assert_eq!(p.take_runs(), vec!["a", "slow"]);
    p.write("go", "");
    assert_eq!(p.run_ok(&[]), vec!["c", "slow"]);
}

#[test]
fn concurrent_runs_wait_for_the_lock() {
    let pl = format!(
        "name: cc\nstages:\n  slow: {{ kind: command, params: {{ cmd: \"{}\" }} }}\n",
        gated("slow")
    );
    let p = Proj::new(&pl);
    let c1 = p
        .cmd(&["run", "pipelines/p.yaml"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until("slow started", 120, || p.path("slow.started").exists());
    // c1 holds the lock until `go` exists.
    let busy = p.pipe(&["run", "pipelines/p.yaml", "--no-wait"]);
    assert_eq!(busy.status.code(), Some(1));
    assert!(
        stderr(&busy).contains(&format!("pid {}", c1.id())),
        "{}",
        stderr(&busy)
    );
    // A second run without --no-wait says it waits, and does.
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut c2 = p
        .cmd(&["run", "pipelines/p.yaml"])
        .stdout(std::process::Stdio::piped())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let said = format!("waiting for the project lock held by pid {}", c1.id());
    wait_until("the second run waits for the lock", 120, || {
        if let Some(st) = c2.try_wait().unwrap() {
            panic!(
                "the second run ended ({st}) while the first held the lock: {}",
                std::fs::read_to_string(log.path()).unwrap_or_default()
            );
        }
        std::fs::read_to_string(log.path())
            .unwrap_or_default()
            .contains(&said)
    });
    p.write("go", "");
    let o = c1.wait_with_output().unwrap();
    assert!(o.status.success());
    let waited = c2.wait_with_output().unwrap();
    assert!(waited.status.success());
    assert!(
        stdout(&waited).contains("0 ran, 0 restored, 1 up to date"),
        "{}",
        stdout(&waited)
    );
    assert_eq!(p.take_runs(), vec!["slow"]);
}

#[test]
fn matrix_ids_env_and_substitution() {
    let pl = r#"
name: m
seed: 3
stages:
  s:
    kind: command
    matrix: { width: [5, 1], mode: [beam] }
    params: { cmd: "echo $PIPE_PARAMS > $PIPE_OUT/p.json; echo $PIPE_STAGE $PIPE_SEED > $PIPE_OUT/env.txt; echo ${width} > o_${width}.txt", outs: ["o_${width}.txt"] }
  t: { kind: command, needs: [s], params: { cmd: "true" } }
"#;
    let p = Proj::new(pl);
    let g = stdout(&p.pipe(&["graph", "pipelines/p.yaml"]));
    assert_eq!(
        g,
        "s@mode=beam,width=1 (command)\ns@mode=beam,width=5 (command)\nt (command) <- s@mode=beam,width=1, s@mode=beam,width=5\n"
    );
    p.run_ok(&[]);
    let v: serde_json::Value =
        serde_json::from_str(&p.read("results/m/s@mode=beam,width=5/p.json")).unwrap();
    assert_eq!(v["width"], 5);
    assert_eq!(v["outs"][0], "o_5.txt");
    assert_eq!(p.read("o_5.txt"), "5\n");
    let env = p.read("results/m/s@mode=beam,width=5/env.txt");
    assert!(env.starts_with("s@mode=beam,width=5 "), "{env}");
    let dot = stdout(&p.pipe(&["graph", "pipelines/p.yaml", "--format", "dot"]));
    assert!(
        dot.contains("label = \"s@mode=beam,width=1\\lcommand\""),
        "{dot}"
    );
    assert!(dot.contains("0 -> 2") && dot.contains("1 -> 2"), "{dot}");
    let mm = stdout(&p.pipe(&["graph", "pipelines/p.yaml", "--format", "mermaid"]));
    assert!(mm.starts_with("flowchart LR") && mm.contains("-->"), "{mm}");
}

#[test]
fn per_epoch_expansion() {
    let pl = r#"
name: e
stages:
  prep: { kind: tokenize }
  train: { kind: train, needs: [prep], params: { epochs: 3 } }
  after: { kind: command, needs: [train], params: { cmd: "true" } }
"#;
    let p = Proj::new(pl);
    // A project-local defaults file adds keys to the built-in train defaults.
    p.write("stages/train.yaml", "epochs: 1 # number of epochs\n");
    let g = p.pipe(&["graph", "pipelines/p.yaml"]);
    assert_eq!(
        stdout(&g),
        "prep (tokenize)\ntrain@epoch=1 (train) <- prep\ntrain@epoch=2 (train) <- train@epoch=1, prep\ntrain@epoch=3 (train) <- train@epoch=2, prep\nafter (command) <- train@epoch=3\n",
        "{}",
        stderr(&g)
    );
}

/// Each layer beats the one below it.
#[test]
fn layering_order() {
    let pl = r#"
name: l
defaults:
  command: { k2: defaults, k3: defaults, k4: defaults, k5: defaults, k6: defaults, k7: defaults }
stages:
  s:
    kind: command
    matrix: { k4: [matrix] }
    params: { cmd: "echo $PIPE_PARAMS > $PIPE_OUT/p.json", k3: params, k5: params, k6: params, k7: params }
"#;
    let p = Proj::new(pl);
    p.write(
        "stages/command.yaml",
        "k1: kindfile\nk2: kindfile\nk3: kindfile\nk4: kindfile\nk5: kindfile\nk6: kindfile\nk7: kindfile\n",
    );
    p.write("pf.yaml", "s: { k5: file, k6: file, k7: file }\n");
    let o = p
        .cmd(&[
            "run",
            "pipelines/p.yaml",
            "--params",
            "pf.yaml",
            "--set",
            "s.k7=set",
        ])
        .env("PIPE_S__K6", "env")
        .env("PIPE_S__K7", "env")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_str(&p.read("results/l/s@k4=matrix/p.json")).unwrap();
    for (k, want) in [
        ("k1", "kindfile"),
        ("k2", "defaults"),
        ("k3", "params"),
        ("k4", "matrix"),
        ("k5", "file"),
        ("k6", "env"),
        ("k7", "set"),
    ] {
        assert_eq!(v[k], want, "{k} in {v}");
    }
    assert_eq!(
        v["deps"],
        serde_json::json!([]),
        "built-in defaults stay under the local file"
    );
}

/// Every bad input exits 2 with one sentence and changes nothing on disk.
#[test]
fn bad_inputs_exit_2_and_change_nothing() {
    let good = "name: b\nstages:\n  a: { kind: command, params: { cmd: \"true\" } }\n  b: { kind: command, needs: [a], params: { cmd: \"true\" } }\n";
    let cases: Vec<(&str, String, Vec<&str>, Vec<&str>)> = vec![
        ("yaml syntax", "name: b\nstages:\n  a: { kind: command\n".into(), vec![], vec!["p.yaml:", "invalid pipeline YAML"]),
        ("unknown kind", "stages:\n  a: { kind: comand }\n".into(), vec![], vec!["p.yaml:2:", "stage `a`", "unknown kind `comand`", "did you mean `command`?"]),
        ("unknown param", "stages:\n  a:\n    kind: command\n    params: { cmd: x, dep: [] }\n".into(), vec![], vec!["p.yaml:4:", "stage `a`", "unknown parameter `dep`", "did you mean `deps`?"]),
        ("wrong type", "stages:\n  a: { kind: command, params: { cmd: [1, 2] } }\n".into(), vec![], vec!["p.yaml:2:", "stage `a`", "parameter `cmd`", "invalid type"]),
        ("missing needs", "stages:\n  a: { kind: command, needs: [zz], params: { cmd: x } }\n".into(), vec![], vec!["p.yaml:2:", "stage `a`", "`zz`"]),
        ("cycle", "stages:\n  a: { kind: command, needs: [b], params: { cmd: x } }\n  b: { kind: command, needs: [a], params: { cmd: x } }\n".into(), vec![], vec!["cycle", "a → b → a"]),
        ("duplicate ids", "stages:\n  a: { kind: command, matrix: { w: [1, \"1\"] }, params: { cmd: x } }\n".into(), vec![], vec!["stage `a`", "same id `a@w=1`"]),
        ("empty matrix", "stages:\n  a: { kind: command, matrix: { w: [] }, params: { cmd: x } }\n".into(), vec![], vec!["stage `a`", "matrix key `w` has no values"]),
        ("set missing stage", good.into(), vec!["--set", "zz.cmd=1"], vec!["--set zz.cmd=1", "no stage `zz`"]),
        ("set missing key", good.into(), vec!["--set", "a.cmdd=1"], vec!["--set a.cmdd", "unknown parameter `cmdd`", "did you mean `cmd`?"]),
        ("matrix key of a builtin kind", "stages:\n  a: { kind: train, matrix: { nope: [1] } }\n".into(), vec![], vec!["stage `a`", "matrix key `nope`"]),
    ];
    for (what, text, extra, needles) in cases {
        let p = Proj::new(&text);
        let before = p.snapshot();
        let mut args = vec!["run", "pipelines/p.yaml"];
        args.extend(extra.iter().copied());
        let o = p.pipe(&args);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{what}: {e}");
        assert_eq!(e.trim_end().lines().count(), 1, "{what}: one line: {e}");
        for n in needles {
            assert!(e.contains(n), "{what}: `{n}` not in: {e}");
        }
        assert_eq!(p.snapshot(), before, "{what}: disk changed");
    }
}

/// Raising `epochs` keeps the fingerprints of the existing epochs: only the new epoch (and
/// what needs the last epoch) would run.
#[test]
fn epochs_are_not_in_epoch_fingerprints() {
    let p = Proj::new("stages:\n  tok: { kind: tokenize }\n  train: { kind: train, needs: [tok], params: { epochs: 3 } }\n  after: { kind: command, needs: [train], params: { cmd: x } }\n");
    p.write("stages/train.yaml", "epochs: 1 # number of epochs\n");
    let ov = pipe::config::Overrides::default();
    let three = pipe::project::Project::load(p.root(), Path::new("pipelines/p.yaml"), &ov).unwrap();
    let ov4 = pipe::config::Overrides {
        sets: vec!["train.epochs=4".into()],
        ..Default::default()
    };
    let four = pipe::project::Project::load(p.root(), Path::new("pipelines/p.yaml"), &ov4).unwrap();
    assert_eq!(four.pipeline.nodes.len(), 6);
    let fp = |proj: &pipe::project::Project, i: usize| {
        let n = &proj.pipeline.nodes[i + 1];
        assert_eq!(n.params["epoch"], (i + 1) as u64);
        proj.key(n, vec![], &[]).0.fingerprint()
    };
    for i in 0..3 {
        assert_eq!(fp(&three, i), fp(&four, i), "epoch {}", i + 1);
    }
    assert_eq!(four.pipeline.nodes[5].needs, vec!["train@epoch=4"]);
}

#[test]
fn output_folders_are_cached_and_replaced_wholesale() {
    let pl = r#"
name: f
stages:
  a:
    kind: command
    params:
      cmd: "echo a >> runs.log; mkdir -p od; for i in $(seq ${n}); do echo $i > od/f$i.txt; done"
      outs: [od]
    matrix: { n: [2] }
"#;
    let p = Proj::new(pl);
    p.run_ok(&[]);
    assert_eq!(p.read("od/f2.txt"), "2\n");
    p.write("pipelines/p.yaml", &pl.replace("[2]", "[3]"));
    assert_eq!(p.run_ok(&[]), vec!["a"]);
    assert_eq!(p.read("od/f3.txt"), "3\n");
    p.write("pipelines/p.yaml", pl);
    assert!(p.run_ok(&[]).is_empty());
    assert!(!p.root().join("od/f3.txt").exists(), "stale file kept");
    assert_eq!(p.read("od/f1.txt"), "1\n");
}

/// `a` writes the value of its parameter `v` into out; `b` copies it.
const FLIP: &str = r#"
name: flip
stages:
  a:
    kind: command
    params:
      cmd: "echo a >> runs.log; echo value A > $PIPE_OUT/x.txt"
  b:
    kind: command
    needs: [a]
    params:
      cmd: "echo b >> runs.log; cat results/flip/a/x.txt > $PIPE_OUT/y.txt"
"#;

fn with_v(pipeline: &str, v: &str) -> String {
    pipeline.replace("value A", &format!("value {v}"))
}

#[test]
fn a_value_changed_and_changed_back_restores_every_output() {
    let p = Proj::new(FLIP);
    p.run_ok(&[]);
    p.write("pipelines/p.yaml", &with_v(FLIP, "B"));
    assert_eq!(p.run_ok(&[]), vec!["a", "b"]);
    assert_eq!(p.read("results/flip/b/y.txt"), "value B\n");
    p.write("pipelines/p.yaml", FLIP);
    // Back to A: both restored from the store, nothing recomputed, every output A's.
    let st = stdout(&p.pipe(&["status", "pipelines/p.yaml"]));
    assert!(
        st.contains("results/flip/a/x.txt differs from the stored output"),
        "{st}"
    );
    assert!(p.run_ok(&[]).is_empty());
    let clean = Proj::new(FLIP);
    clean.run_ok(&[]);
    assert_eq!(outputs_of(p.root()), outputs_of(clean.root()));
    let st = stdout(&p.pipe(&["status", "pipelines/p.yaml"]));
    assert!(st.contains("2 up to date, 0 will run"), "{st}");
}

#[test]
fn an_edited_result_never_changes_the_store_and_is_restored() {
    let p = Proj::new(FLIP);
    p.run_ok(&[]);
    let x = p.root().join("results/flip/a/x.txt");
    let good = std::fs::read(&x).unwrap();
    let obj = p.object_of(&good);
    // Edit in place, same size (as root the file mode would not stop it).
    let mut edited = good.clone();
    edited[0] ^= 0x20;
    std::fs::write(&x, &edited).unwrap();
    assert_eq!(std::fs::read(&obj).unwrap(), good, "the store changed");
    let st = stdout(&p.pipe(&["status", "pipelines/p.yaml"]));
    assert!(
        st.contains("a  will restore: results/flip/a/x.txt differs"),
        "{st}"
    );
    assert!(p.run_ok(&[]).is_empty());
    assert_eq!(std::fs::read(&x).unwrap(), good);
    // A file the run did not produce is removed from the results folder.
    p.write("results/flip/a/junk.txt", "junk");
    assert!(p.run_ok(&[]).is_empty());
    assert!(!p.root().join("results/flip/a/junk.txt").exists());
}

#[test]
fn corrupt_objects_are_warned_once_never_used_and_repaired() {
    for damage in ["flip", "truncate", "dir"] {
        let p = Proj::new(CHAIN);
        p.run_ok(&[]);
        let obj = p.object_of(b"d\n");
        writable(&obj);
        match damage {
            "flip" => std::fs::write(&obj, b"e\n").unwrap(),
            "truncate" => std::fs::write(&obj, b"").unwrap(),
            _ => {
                std::fs::remove_file(&obj).unwrap();
                std::fs::create_dir(&obj).unwrap();
            }
        }
        // The working copy is gone too: the stage must recompute, never use the bad object.
        std::fs::remove_dir_all(p.root().join("results/demo/d")).unwrap();
        let o = p.pipe(&["run", "pipelines/p.yaml"]);
        assert!(o.status.success(), "{damage}: {}", stderr(&o));
        let e = stderr(&o);
        assert_eq!(e.matches("is corrupt").count(), 1, "{damage}: {e}");
        assert_eq!(p.take_runs(), vec!["d"], "{damage}");
        assert_eq!(p.read("results/demo/d/d.txt"), "d\n", "{damage}");
        assert_eq!(std::fs::read(&obj).unwrap(), b"d\n", "{damage}");
        assert!(
            p.root()
                .join("cache/quarantine")
                .read_dir()
                .unwrap()
                .count()
                >= 1
        );
        assert!(p.run_ok(&[]).is_empty(), "{damage}");
    }
}

#[test]
fn force_with_identical_outputs_runs_nothing_downstream() {
    let p = Proj::new(CHAIN);
    p.run_ok(&[]);
    assert_eq!(p.run_ok(&["--force", "a"]), vec!["a"]);
}

#[test]
fn frozen_passes_when_only_restores_are_needed() {
    let p = Proj::new(CHAIN);
    p.run_ok(&[]);
    std::fs::remove_dir_all(p.root().join("results/demo/c")).unwrap();
    assert!(p.run_ok(&["--frozen"]).is_empty());
    assert_eq!(p.read("results/demo/c/c.txt"), "hello\n1\nhello\n2\n");
    p.write("in.txt", "changed\n");
    let o = p.pipe(&["run", "pipelines/p.yaml", "--frozen"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("a (input in.txt changed)"), "{e}");
    assert!(e.contains("commit pipelines/p.lock"), "{e}");
}

#[test]
fn a_conflicted_lock_file_is_an_error_and_gc_refuses() {
    let p = Proj::new(CHAIN);
    p.run_ok(&[]);
    let lock = p.read("pipelines/p.lock");
    p.write(
        "pipelines/p.lock",
        &format!("<<<<<<< HEAD\n{lock}=======\n{lock}>>>>>>> other\n"),
    );
    let before = p.snapshot();
    let o = p.pipe(&["status", "pipelines/p.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("pipelines/p.lock:1:1"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("merge-conflict"), "{}", stderr(&o));
    let o = p.pipe(&["clean", "--cache", "--unreferenced"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("refuses"), "{}", stderr(&o));
    assert_eq!(before.len(), p.snapshot().len());
    assert!(p.root().join("cache/objects").read_dir().unwrap().count() > 0);
}

#[test]
fn a_restored_stage_has_its_log_and_a_line_saying_so() {
    let p = Proj::new(CHAIN);
    p.run_ok(&[]);
    assert!(p.read("results/demo/logs/d.log").contains("done in"));
    std::fs::remove_dir_all(p.root().join("results")).unwrap();
    assert!(p.run_ok(&[]).is_empty());
    let log = p.read("results/demo/logs/d.log");
    assert!(log.contains("done in"), "{log}");
    assert!(log.contains("restored from the store at"), "{log}");
}

#[test]
fn planted_links_are_refused_never_followed() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("keep.txt"), "keep").unwrap();
    // results/ as a link to an outside folder.
    let p = Proj::new(CHAIN);
    std::os::unix::fs::symlink(outside.path(), p.root().join("results")).unwrap();
    let o = p.pipe(&["run", "pipelines/p.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("symbolic link"), "{}", stderr(&o));
    assert_eq!(outside.path().read_dir().unwrap().count(), 1);
    // pipe clean removes the link, never its target.
    std::fs::remove_file(p.root().join("results")).unwrap();
    std::fs::create_dir(p.root().join("results")).unwrap();
    std::os::unix::fs::symlink(outside.path(), p.root().join("results/demo")).unwrap();
    let o = p.pipe(&["clean", "pipelines/p.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!p.root().join("results/demo").exists());
    assert_eq!(
        std::fs::read_to_string(outside.path().join("keep.txt")).unwrap(),
        "keep"
    );
    // cache/lock as a link: refused, its target not truncated.
    let q = Proj::new(CHAIN);
    std::fs::create_dir_all(q.root().join("cache")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("keep.txt"), q.root().join("cache/lock"))
        .unwrap();
    let o = q.pipe(&["run", "pipelines/p.yaml"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("symbolic link"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(outside.path().join("keep.txt")).unwrap(),
        "keep"
    );
}

#[test]
fn run_pull_from_a_folder_remote_computes_nothing() {
    let remote = tempfile::tempdir().unwrap();
    let url = remote.path().display().to_string();
    let a = Proj::new(CHAIN);
    a.run_ok(&["--push", "--remote", &url]);
    // A fresh clone: the committed lock file, an empty store.
    let b = Proj::new(CHAIN);
    b.write("pipelines/p.lock", &a.read("pipelines/p.lock"));
    let o = b.pipe(&[
        "run",
        "pipelines/p.yaml",
        "--pull",
        "--remote",
        &url,
        "--frozen",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(b.take_runs().is_empty());
    assert_eq!(outputs_of(a.root()), outputs_of(b.root()));
    assert_eq!(b.read("out/b_2.txt"), a.read("out/b_2.txt"));
    // A corrupt object on the remote is named and never used: that stage computes.
    let c = Proj::new(CHAIN);
    c.write("pipelines/p.lock", &a.read("pipelines/p.lock"));
    let h = blake3::hash(b"d\n").to_hex().to_string();
    let mut hit = None;
    for e in walk(remote.path()) {
        if e.to_string_lossy().contains(&h[2..]) {
            hit = Some(e);
        }
    }
    let obj = hit.expect("the remote holds d's output");
    writable(&obj);
    std::fs::write(&obj, b"X\n").unwrap();
    let o = c.pipe(&["run", "pipelines/p.yaml", "--pull", "--remote", &url]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("corrupt"), "{}", stderr(&o));
    assert_eq!(c.take_runs(), vec!["d"]);
    assert_eq!(c.read("results/demo/d/d.txt"), "d\n");
}
