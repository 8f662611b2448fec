//! The Slurm executor on the real one-node cluster that `scripts/test.sh` starts (it exports
//! `PIPE_TEST_SLURM=1`); without it the tests print a skip line and return. They drive the
//! real `pipe` binary with `command` stages and share the node, so they run one at a time (with
//! `slurm`: one lock, `support::cluster`).

use crate::support::*;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// This user's queued or running jobs of a project.
fn project_jobs(root: &Path) -> Vec<pipe::slurm::FoundJob> {
    pipe::slurm::find_jobs(&pipe::executor::slurm::job_prefix(root)).unwrap()
}

#[test]
#[ignore = "needs the Slurm test cluster (scripts/test.sh runs it)"]
fn slurm_run_gives_the_local_lock_file() {
    let _node = cluster();
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
#[ignore = "needs the Slurm test cluster (scripts/test.sh runs it)"]
fn failing_job_names_stage_job_id_state_and_log() {
    let _node = cluster();
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
#[ignore = "needs the Slurm test cluster (scripts/test.sh runs it)"]
fn job_cancelled_from_outside_is_reported_cancelled() {
    let _node = cluster();
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

// ---- Resources per stage and per kind; jobs that share no folder with the driver ----------
// (self-contained helpers, prefixed `sa_`)

/// A project folder with `pipelines/p.yaml` and `in.txt`.
fn sa_project(pipeline: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("pipelines")).unwrap();
    std::fs::write(dir.path().join("pipelines/p.yaml"), pipeline).unwrap();
    std::fs::write(dir.path().join("in.txt"), "hello\n").unwrap();
    dir
}

fn sa_pipe(root: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    let mut c = pipe_cmd(root, args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn sa_json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

const SA_RESOURCES: &str = r#"
name: r
defaults:
  command:
    resources: { mem_mb: 700 }
stages:
  a: { kind: command, params: { cmd: "echo a" }, resources: { cpus: 2, time_min: 5 } }
  b: { kind: command, needs: [a], matrix: { w: [1, 2] }, params: { cmd: "echo b" } }
  t: { kind: tokenize, resources: { partition: debug } }
"#;

#[test]
fn resources_layer_kind_default_then_defaults_then_stage() {
    let d = sa_project(SA_RESOURCES);
    let o = sa_pipe(d.path(), &["graph", "pipelines/p.yaml", "--json"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let v = sa_json(&o);
    let res = |id: &str| {
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .unwrap_or_else(|| panic!("{id} in {v}"))["resources"]
            .clone()
    };
    // stage over defaults.<kind> over the built-in light default (1 CPU, 512 MiB, 30 min)
    assert_eq!(
        res("a"),
        serde_json::json!({"cpus": 2, "mem_mb": 700, "time_min": 5})
    );
    assert_eq!(
        res("b@w=1"),
        serde_json::json!({"cpus": 1, "mem_mb": 700, "time_min": 30})
    );
    assert_eq!(res("b@w=2"), res("b@w=1"));
    // a heavy kind asks for more by default
    assert_eq!(
        res("t"),
        serde_json::json!({"cpus": 2, "mem_mb": 2048, "time_min": 120, "partition": "debug"})
    );
    // text form: only with --resources (the executor here is local)
    let plain = sa_pipe(d.path(), &["graph", "pipelines/p.yaml"], &[]);
    assert!(!text(&plain).contains("cpus="), "{}", text(&plain));
    let g = sa_pipe(d.path(), &["graph", "pipelines/p.yaml", "--resources"], &[]);
    assert!(
        String::from_utf8_lossy(&g.stdout)
            .lines()
            .any(|l| l == "a (command)  [cpus=2 mem=700M time=5m]"),
        "{}",
        text(&g)
    );
    // ... and always when the pipeline's executor is Slurm
    let slurm = sa_project(&format!("executor: {{ kind: slurm }}\n{SA_RESOURCES}"));
    let g = sa_pipe(slurm.path(), &["graph", "pipelines/p.yaml"], &[]);
    assert!(
        text(&g).contains("t (tokenize)  [cpus=2 mem=2048M time=120m partition=debug]"),
        "{}",
        text(&g)
    );
    let st = sa_pipe(slurm.path(), &["status", "pipelines/p.yaml"], &[]);
    assert!(
        text(&st).contains("resources: cpus=1 mem=700M time=30m"),
        "{}",
        text(&st)
    );
    let s = sa_pipe(d.path(), &["status", "pipelines/p.yaml", "--json"], &[]);
    let sv = sa_json(&s);
    assert_eq!(sv["stages"][0]["id"], "a");
    assert_eq!(sv["stages"][0]["resources"]["cpus"], 2);
    let st = sa_pipe(
        d.path(),
        &["status", "pipelines/p.yaml", "--resources"],
        &[],
    );
    assert!(
        text(&st).contains("resources: cpus=2 mem=700M time=5m"),
        "{}",
        text(&st)
    );
}

#[test]
fn resources_never_enter_a_fingerprint_or_the_lock() {
    let pl = "name: f\nstages:\n  a: { kind: command, params: { cmd: \"echo x > $PIPE_OUT/x.txt\" }, resources: { cpus: 1 } }\n";
    let d = sa_project(pl);
    let o = sa_pipe(d.path(), &["run", "pipelines/p.yaml"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let lock = std::fs::read_to_string(d.path().join("pipelines/p.lock")).unwrap();
    assert!(!lock.contains("cpus"), "{lock}");
    std::fs::write(
        d.path().join("pipelines/p.yaml"),
        pl.replace(
            "{ cpus: 1 }",
            "{ cpus: 2, mem_mb: 999, time_min: 7, gpus: 0 }",
        ),
    )
    .unwrap();
    let s = sa_pipe(d.path(), &["status", "pipelines/p.yaml"], &[]);
    assert!(text(&s).contains("a  up to date"), "{}", text(&s));
    let o = sa_pipe(d.path(), &["run", "pipelines/p.yaml"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(d.path().join("pipelines/p.lock")).unwrap(),
        lock
    );
}

#[test]
fn bad_resources_are_exit_2_naming_file_line_stage_and_key() {
    let cases: [(&str, &[&str]); 6] = [
        (
            "name: e\nstages:\n  a:\n    kind: command\n    params: { cmd: x }\n    resources: { cpu: 2 }\n",
            &["pipelines/p.yaml:6:", "stage `a`", "unknown resource `cpu`", "did you mean `cpus`?"],
        ),
        (
            "name: e\nstages:\n  a:\n    kind: command\n    params: { cmd: x }\n    resources:\n      mem_mb: lots\n",
            &["pipelines/p.yaml:7:7", "stage `a`", "resource `mem_mb`", "whole number", "lots"],
        ),
        (
            "name: e\nstages:\n  a:\n    kind: command\n    params: { cmd: x }\n    resources: { cpus: 0 }\n",
            &["pipelines/p.yaml:6:", "resource `cpus`", "at least 1"],
        ),
        (
            "name: e\nstages:\n  a:\n    kind: command\n    params: { cmd: x }\n    resources: 4\n",
            &["pipelines/p.yaml:6:5", "stage `a`", "`resources` must be a map"],
        ),
        (
            "name: e\ndefaults:\n  command:\n    resources: { time_mins: 3 }\nstages:\n  a: { kind: command, params: { cmd: x } }\n",
            &["pipelines/p.yaml:4:", "`defaults.command`", "unknown resource `time_mins`", "`time_min`"],
        ),
        (
            "name: e\nstages:\n  a:\n    kind: command\n    params: { cmd: x }\n    resources: { partition: \"a b\" }\n",
            &["pipelines/p.yaml:6:", "resource `partition`"],
        ),
    ];
    for (pl, want) in cases {
        let d = sa_project(pl);
        for cmd in ["graph", "status", "run"] {
            let o = sa_pipe(d.path(), &[cmd, "pipelines/p.yaml"], &[]);
            let t = text(&o);
            assert_eq!(o.status.code(), Some(2), "{cmd}: {t}");
            for w in want {
                assert!(t.contains(w), "{cmd}: `{w}` in: {t}");
            }
        }
    }
    // The old place is refused, naming the new key.
    let d = sa_project(
        "name: e\nexecutor:\n  kind: slurm\n  resources:\n    a: { cpus: 2 }\nstages:\n  a: { kind: command, params: { cmd: x } }\n",
    );
    let o = sa_pipe(d.path(), &["run", "pipelines/p.yaml"], &[]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(
        t.contains("pipelines/p.yaml:4:3")
            && t.contains("`executor.resources`")
            && t.contains("`resources:` key"),
        "{t}"
    );
}

#[test]
fn no_shared_folder_without_a_remote_is_exit_2() {
    let d = sa_project(
        "name: e\nexecutor: { kind: slurm, shared_fs: false }\nstages:\n  a: { kind: command, params: { cmd: x } }\n",
    );
    let o = sa_pipe(d.path(), &["run", "pipelines/p.yaml"], &[]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(
        t.contains("shared_fs: false") && t.contains("PIPE_REMOTE") && t.contains("remote:"),
        "{t}"
    );
    assert!(!d.path().join("pipelines/p.lock").exists());
}

/// The S3 server `scripts/test.sh` started, as the `AWS_*` variables a job inherits, and a
/// remote URL under a prefix no other test uses.
fn sa_s3(name: &str) -> Option<(Vec<(&'static str, String)>, String)> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let endpoint = var("PIPE_TEST_S3")?;
    let env = vec![
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", var("PIPE_TEST_S3_KEY")?),
        ("AWS_SECRET_ACCESS_KEY", var("PIPE_TEST_S3_SECRET")?),
        ("AWS_REGION", "us-east-1".to_string()),
    ];
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let bucket = var("PIPE_TEST_S3_BUCKET").unwrap_or_else(|| "pipe-test".into());
    Some((
        env,
        format!("s3://{bucket}/sa{}-{t}/{name}", std::process::id()),
    ))
}

/// Three `command` stages with a dep file; each appends its working folder to `$SA_PWD_LOG`
/// (outside the outputs, so the lock file does not depend on where it ran).
const SA_DETACHED: &str = r#"
name: nsf
seed: 3
stages:
  a:
    kind: command
    params:
      cmd: "pwd >> \"$SA_PWD_LOG\"; mkdir -p out; cat data/in.txt > out/a.txt; echo '{\"n\": 2}' > $PIPE_OUT/metrics.json"
      deps: [data/in.txt]
      outs: [out/a.txt]
  b:
    kind: command
    needs: [a]
    params:
      cmd: "pwd >> \"$SA_PWD_LOG\"; cat out/a.txt out/a.txt > out/b.txt"
      deps: [out/a.txt]
      outs: [out/b.txt]
  c:
    kind: command
    needs: [b]
    params:
      cmd: "pwd >> \"$SA_PWD_LOG\"; wc -l < out/b.txt > $PIPE_OUT/lines.txt"
"#;

fn sa_detached_project(pipeline: &str) -> tempfile::TempDir {
    let d = sa_project(pipeline);
    std::fs::create_dir_all(d.path().join("data")).unwrap();
    std::fs::write(d.path().join("data/in.txt"), "one\ntwo\n").unwrap();
    d
}

#[test]
#[ignore = "needs the Slurm test cluster (scripts/test.sh runs it)"]
fn jobs_without_a_shared_folder_run_in_private_scratch_folders() {
    let _node = cluster();
    let (mut env, url) = sa_s3("nsf").expect(
        "PIPE_TEST_S3* set: this test needs the S3 test server; run it with scripts/test.sh",
    );
    // The local run, for the lock file to compare with.
    let local = sa_detached_project(SA_DETACHED);
    let local_root = std::fs::canonicalize(local.path()).unwrap();
    let local_pwd = local_root.join("pwd.log");
    let o = sa_pipe(
        &local_root,
        &["run", "pipelines/p.yaml"],
        &[("SA_PWD_LOG", local_pwd.display().to_string())],
    );
    assert!(o.status.success(), "{}", text(&o));

    let d = sa_detached_project(&format!(
        "remote: {url}\nexecutor: {{ kind: slurm, shared_fs: false }}\n{SA_DETACHED}"
    ));
    let root = std::fs::canonicalize(d.path()).unwrap();
    // The jobs' temporary folder (they inherit the driver's environment through sbatch).
    let tmp = tempfile::tempdir().unwrap();
    let tmp_root = std::fs::canonicalize(tmp.path()).unwrap();
    let pwd_log = tmp_root.join("pwd.log");
    env.push(("TMPDIR", tmp_root.display().to_string()));
    env.push(("SA_PWD_LOG", pwd_log.display().to_string()));
    let o = sa_pipe(&root, &["run", "pipelines/p.yaml"], &env);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert_eq!(t.matches("no shared folder)").count(), 3, "{t}");

    // The outputs, materialised in the driver's project as after a local run.
    assert_eq!(
        std::fs::read_to_string(root.join("out/a.txt")).unwrap(),
        "one\ntwo\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("out/b.txt")).unwrap(),
        "one\ntwo\none\ntwo\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("results/nsf/c/lines.txt")).unwrap(),
        "4\n"
    );
    assert!(root.join("results/nsf/logs/c.log").is_file());
    // The lock file is the local run's.
    let lock = std::fs::read_to_string(root.join("pipelines/p.lock")).unwrap();
    assert!(!lock.is_empty());
    assert_eq!(
        lock,
        std::fs::read_to_string(local_root.join("pipelines/p.lock")).unwrap()
    );
    // Each job ran in its own scratch folder under $TMPDIR, not in the project, and removed it.
    let pwds: Vec<String> = std::fs::read_to_string(&pwd_log)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(pwds.len(), 3, "{pwds:?}");
    for p in &pwds {
        assert!(
            p.starts_with(&format!("{}/pipe-job-", tmp_root.display())),
            "{p} (project {})",
            root.display()
        );
        assert!(!Path::new(p).exists(), "scratch folder {p} left behind");
    }
    assert_eq!(
        pwds.iter().collect::<std::collections::BTreeSet<_>>().len(),
        3,
        "{pwds:?}"
    );
    let left: Vec<String> = std::fs::read_dir(&tmp_root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "pwd.log")
        .collect();
    assert!(left.is_empty(), "left in $TMPDIR: {left:?}");
    assert!(project_jobs(&root).is_empty());

    // A second run computes nothing and submits nothing.
    let o = sa_pipe(&root, &["run", "pipelines/p.yaml"], &env);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("Slurm job"), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(&pwd_log).unwrap().lines().count(),
        3
    );
    // A forced stage is one job again; identical outputs leave its downstream alone.
    std::fs::remove_file(root.join("out/b.txt")).unwrap();
    let o = sa_pipe(&root, &["run", "pipelines/p.yaml", "--force", "b"], &env);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert_eq!(t.matches("as Slurm job").count(), 1, "{t}");
    assert_eq!(
        std::fs::read_to_string(&pwd_log).unwrap().lines().count(),
        4
    );
    assert_eq!(
        std::fs::read_to_string(root.join("out/b.txt")).unwrap(),
        "one\ntwo\none\ntwo\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("pipelines/p.lock")).unwrap(),
        lock
    );
    assert_eq!(std::fs::read_dir(&tmp_root).unwrap().count(), 1);

    // A fresh clone of the project with an empty store restores from the remote: no job.
    let clone = sa_detached_project(&format!(
        "remote: {url}\nexecutor: {{ kind: slurm, shared_fs: false }}\n{SA_DETACHED}"
    ));
    let o = sa_pipe(clone.path(), &["run", "pipelines/p.yaml"], &env);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("Slurm job"), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(clone.path().join("out/b.txt")).unwrap(),
        "one\ntwo\none\ntwo\n"
    );
    assert_eq!(
        std::fs::read_to_string(&pwd_log).unwrap().lines().count(),
        4
    );
}

#[test]
#[ignore = "needs the Slurm test cluster (scripts/test.sh runs it)"]
fn failed_job_without_a_shared_folder_brings_its_log_back() {
    let _node = cluster();
    let (mut env, url) = sa_s3("nsf-fail").expect(
        "PIPE_TEST_S3* set: this test needs the S3 test server; run it with scripts/test.sh",
    );
    let d = sa_project(&format!(
        "name: nf\nremote: {url}\nexecutor: {{ kind: slurm, shared_fs: false }}\nstages:\n  bad: {{ kind: command, params: {{ cmd: \"echo boom-$PIPE_STAGE >&2; exit 3\" }} }}\n"
    ));
    let root = std::fs::canonicalize(d.path()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    env.push(("TMPDIR", tmp.path().display().to_string()));
    let o = sa_pipe(&root, &["run", "pipelines/p.yaml"], &env);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("stage `bad` failed") && t.contains("FAILED") && t.contains("from the remote"),
        "{t}"
    );
    let log = std::fs::read_to_string(root.join("results/nf/logs/bad.log")).unwrap();
    assert!(
        log.contains("boom-bad") && log.contains("exited with"),
        "{log}"
    );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
#[ignore = "needs the Slurm test cluster (scripts/test.sh runs it)"]
fn stage_resources_reach_the_job() {
    let _node = cluster();
    let d = sa_project(
        "name: rj\nstages:\n  a:\n    kind: command\n    params: { cmd: \"echo $SLURM_CPUS_PER_TASK $SLURM_MEM_PER_NODE > $PIPE_OUT/r.txt\" }\n    resources: { cpus: 2, mem_mb: 300, time_min: 3 }\n",
    );
    let root = std::fs::canonicalize(d.path()).unwrap();
    let o = sa_pipe(
        &root,
        &["run", "pipelines/p.yaml", "--executor", "slurm"],
        &[],
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("(cpus=2 mem=300M time=3m)"), "{t}");
    assert_eq!(
        std::fs::read_to_string(root.join("results/rj/a/r.txt")).unwrap(),
        "2 300\n"
    );
}

/// `pipe __instance --manifest` directly (no Slurm, a folder remote): a manifest whose
/// fingerprint is not the one the job computes is refused, a tampered object is refused, and
/// the scratch folder is removed either way; the right one runs and pushes its record.
#[test]
fn instance_from_a_manifest_checks_everything_and_cleans_up() {
    use pipe::remote::manifest::{self, JobManifest};
    let d = sa_detached_project(
        "name: m\nstages:\n  a:\n    kind: command\n    params: { cmd: \"pwd > $PIPE_OUT/pwd.txt; cat data/in.txt > $PIPE_OUT/a.txt\", deps: [data/in.txt] }\n",
    );
    let root = std::fs::canonicalize(d.path()).unwrap();
    let remote_dir = tempfile::tempdir().unwrap();
    let url = remote_dir.path().display().to_string();
    let remote = pipe::remote::Remote::open(&url, &root).unwrap();
    let st = sa_json(&sa_pipe(
        &root,
        &["status", "pipelines/p.yaml", "--json"],
        &[],
    ));
    let fp = st["stages"][0]["fingerprint"].as_str().unwrap().to_string();
    let files = ["pipelines/p.yaml", "data/in.txt"]
        .iter()
        .map(|r| manifest::put_file(&remote, &root.join(r), r).unwrap())
        .collect();
    let good = JobManifest {
        pipeline: "pipelines/p.yaml".into(),
        id: "a".into(),
        fingerprint: fp.parse().unwrap(),
        ups: vec![],
        sets: vec![],
        params: None,
        forced: false,
        files,
    };
    let tmp = tempfile::tempdir().unwrap();
    let job = |key: &str| {
        let o = sa_pipe(
            &root,
            &["__instance", "--manifest", key, "--remote", &url],
            &[("TMPDIR", tmp.path().display().to_string())],
        );
        let left = std::fs::read_dir(tmp.path()).unwrap().count();
        assert_eq!(left, 0, "scratch folder left: {}", text(&o));
        o
    };
    // Another fingerprint than the job computes: refused, exit 2.
    let mut wrong = good.clone();
    wrong.fingerprint = "0".repeat(64).parse().unwrap();
    let o = job(&manifest::put(&remote, &wrong).unwrap());
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("refusing to run"), "{}", text(&o));
    assert!(!remote.exists(&format!("runs/{fp}.json")).unwrap());
    // A tampered input object: refused by its blake3.
    let mut tampered = good.clone();
    let real = tampered.files[1].blake3;
    let fake = pipe::digest::Blake3::of(b"other\n");
    let obj = |h: &str| {
        remote_dir
            .path()
            .join(format!("objects/{}/{}", &h[..2], &h[2..]))
    };
    std::fs::create_dir_all(obj(fake.as_str()).parent().unwrap()).unwrap();
    std::fs::write(obj(fake.as_str()), "not other\n").unwrap();
    tampered.files[1].blake3 = fake;
    let o = job(&manifest::put(&remote, &tampered).unwrap());
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("corrupt"), "{}", text(&o));
    // The real one runs in its scratch folder and pushes its record.
    let o = job(&manifest::put(&remote, &good).unwrap());
    assert!(o.status.success(), "{}", text(&o));
    assert!(remote.exists(&format!("runs/{fp}.json")).unwrap());
    assert_ne!(real, fake);
    // Nothing was written into the project (`status` above saved only its stat cache).
    assert!(!root.join("results").exists() && !root.join("cache/runs").exists());
}

#[test]
#[ignore = "needs the Slurm test cluster (scripts/test.sh runs it)"]
fn cancelled_job_without_a_shared_folder_removes_its_scratch_folder() {
    let _node = cluster();
    let (mut env, url) = sa_s3("nsf-cancel").expect(
        "PIPE_TEST_S3* set: this test needs the S3 test server; run it with scripts/test.sh",
    );
    let d = sa_project(&format!(
        "name: nc\nremote: {url}\nexecutor: {{ kind: slurm, shared_fs: false }}\nstages:\n  slow: {{ kind: command, params: {{ cmd: \"sleep 120\" }} }}\n"
    ));
    let root = std::fs::canonicalize(d.path()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    env.push(("TMPDIR", tmp.path().display().to_string()));
    let mut c = pipe_cmd(&root, &["run", "pipelines/p.yaml"]);
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in &env {
        c.env(k, v);
    }
    let child = c.spawn().unwrap();
    // Wait until the job runs in its scratch folder.
    let t0 = Instant::now();
    let scratch = loop {
        let found = std::fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.join("results/nc/logs/slow.log").exists());
        if let Some(p) = found {
            break p;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the job never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let job = project_jobs(&root)
        .into_iter()
        .next()
        .expect("a running job");
    pipe::slurm::cancel(&[job.id]).unwrap();
    let o = child.wait_with_output().unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains(&format!("Slurm job {} CANCELLED", job.id)),
        "{t}"
    );
    // The job removes its folder on SIGTERM; give slurmstepd a moment to finish it.
    let t1 = Instant::now();
    while scratch.exists() && t1.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!scratch.exists(), "{} left behind: {t}", scratch.display());
    assert!(project_jobs(&root).is_empty());
}

// ---------------------------------------------------------------------------------------------
// The issue's cluster behaviours, one test each: ci.yaml's lock file, a 10-width beam sweep
// within the node's CPUs, a time limit, an impossible dependency, kill -9 of the driver and a
// rerun, Ctrl-C, and two drivers at once. Helpers below are used by these tests only.

/// The finished jobs of the shared cluster's `jobcomp/filetxt` file whose name starts with
/// `prefix` (see [`support::jobcomp`]); empty when the file is not known
/// (`PIPE_TEST_SLURM_BASE` unset).
fn jobcomp(prefix: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    match std::env::var_os("PIPE_TEST_SLURM_BASE") {
        Some(base) => crate::support::jobcomp(Path::new(&base), prefix),
        None => Vec::new(),
    }
}

/// Polls `jobcomp` until `n` jobs of the prefix are there (the controller writes a line when a
/// job ends, a moment after squeue shows it finished), for at most 10 s.
fn jobcomp_n(prefix: &str, n: usize) -> Vec<std::collections::BTreeMap<String, String>> {
    let t0 = Instant::now();
    loop {
        let v = jobcomp(prefix);
        if v.len() >= n || t0.elapsed() > Duration::from_secs(10) {
            return v;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The name prefix of every job of a project.
fn prefix_of(root: &Path) -> String {
    pipe::executor::slurm::job_prefix(root)
}

/// The node's CPUs as Slurm counts them.
fn node_cpus() -> usize {
    let o = Command::new("sinfo")
        .args(["-h", "-o", "%c"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()
        .and_then(|l| l.trim().trim_end_matches('+').parse().ok())
        .expect("sinfo shows the node's CPUs")
}

/// `pipe` in a folder, with a download mirror.
fn pipe_in(root: &Path, mirror: &Path, args: &[&str]) -> Output {
    pipe_env(
        root,
        args,
        &[("PIPE_MIRROR", &mirror.display().to_string())],
    )
}

/// A project's lock file as JSON.
fn lock_json(root: &Path, rel: &str) -> serde_json::Value {
    let b = std::fs::read(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    serde_json::from_slice(&b).unwrap()
}

#[test]
#[ignore = "needs the Slurm test cluster (scripts/test.sh runs it)"]
fn ci_yaml_on_slurm_gives_the_local_lock_file() {
    let _node = cluster();
    let mirror = data_mirror();
    let local = tracked_copy();
    let slurm = tracked_copy();
    let (lr, sr) = (
        std::fs::canonicalize(local.path()).unwrap(),
        std::fs::canonicalize(slurm.path()).unwrap(),
    );
    let o = pipe_in(&lr, &mirror, &["run", "pipelines/ci.yaml"]);
    assert!(o.status.success(), "local: {}", text(&o));
    let o = pipe_in(
        &sr,
        &mirror,
        &["run", "pipelines/ci.yaml", "--executor", "slurm"],
    );
    let t = text(&o);
    assert!(o.status.success(), "slurm: {t}");
    let (a, b) = (
        lock_json(&lr, "pipelines/ci.lock"),
        lock_json(&sr, "pipelines/ci.lock"),
    );
    let (sa, sb) = (
        a["stages"].as_object().unwrap(),
        b["stages"].as_object().unwrap(),
    );
    assert_eq!(
        sa.keys().collect::<Vec<_>>(),
        sb.keys().collect::<Vec<_>>(),
        "the same instances"
    );
    // every instance computed as a job of its own
    assert_eq!(t.matches(" as Slurm job ").count(), sa.len(), "{t}");
    // every fingerprint, and outputs and metrics outside the measurement kinds (whose outputs
    // differ between any two runs), as `pipe reproduce` compares
    let mut compared = 0;
    for (id, ea) in sa {
        let eb = &sb[id];
        let kind = ea["kind"].as_str().unwrap();
        assert_eq!(ea["fingerprint"], eb["fingerprint"], "fingerprint of {id}");
        if pipe::compare::measure::is_measurement_kind(kind) {
            continue;
        }
        compared += 1;
        assert_eq!(ea["outputs"], eb["outputs"], "outputs of {id} ({kind})");
        for (k, v) in ea["metrics"].as_object().into_iter().flatten() {
            if !pipe::compare::measure::is_measurement_key(k) {
                assert_eq!(Some(v), eb["metrics"].get(k), "metric {k} of {id}");
            }
        }
    }
    assert!(compared >= 10, "{compared} instances compared");
    // and a second run under Slurm computes nothing
    let o = pipe_in(
        &sr,
        &mirror,
        &["run", "pipelines/ci.yaml", "--executor", "slurm"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("Slurm job"), "{}", text(&o));
}

/// A tiny model (trained locally first) and a 10-width beam sweep of it, one CPU per job, each
/// job long enough (about 0.5-3 s) for the node's schedule to show.
const SWEEP: &str = r#"
name: sweep
seed: 7
defaults:
  beam-eval: { resources: { cpus: 1, mem_mb: 400, time_min: 10 } }
stages:
  data:
    kind: fetch
    params:
      url: https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/TinyStories-train.txt
      bytes: 2097152
      blake3: 7aef14155595b58ed029a831dbb29992fa264a22d19f246c31d0848babc7016f
  tokenize:
    kind: tokenize
    needs: [data]
    params: { format: tinystories, valid_fraction: 0.1, max_documents: 400, min_count: 2 }
  embed:
    kind: embed
    needs: [tokenize]
    params: { method: sgns, dim: 32, epochs: 1 }
  train:
    kind: train
    needs: [tokenize, embed]
    params: { d_model: 32, d_attn: 32, n_heads: 2, d_ff: 64, n_layers: 1, context: 32, batch_size: 16, epochs: 1 }
  beam-eval:
    kind: beam-eval
    needs: [train, tokenize]
    matrix: { beam_width: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] }
    params: { prompts: 20, max_new: 500 }
"#;

#[test]
#[ignore = "needs the Slurm test cluster (scripts/test.sh runs it)"]
fn ten_width_beam_sweep_runs_as_ten_jobs_within_the_node_cpus() {
    let _node = cluster();
    let mirror = data_mirror();
    let p = Proj::new(SWEEP);
    let root = p.root();
    let o = pipe_in(
        root,
        &mirror,
        &["run", "pipelines/p.yaml", "--only", "train"],
    );
    assert!(o.status.success(), "local upstream: {}", text(&o));
    // -j 10: the driver submits all ten at once; the node decides how many run. squeue is
    // sampled meanwhile: the most jobs RUNNING at once, as Slurm saw it.
    let log = root.join("driver.log");
    let mut child = pipe_cmd(
        root,
        &["run", "pipelines/p.yaml", "--executor", "slurm", "-j", "10"],
    )
    .env("PIPE_MIRROR", &mirror)
    .stdout(std::fs::File::create(&log).unwrap())
    .stderr(std::fs::File::create(root.join("driver.err")).unwrap())
    .spawn()
    .unwrap();
    let mut seen = 0;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        let running = project_jobs(root)
            .iter()
            .filter(|j| j.state == pipe::slurm::JobState::Running)
            .count();
        seen = seen.max(running);
        std::thread::sleep(Duration::from_millis(50));
    };
    let t = format!("{}\n{}", p.read("driver.log"), p.read("driver.err"));
    assert!(status.success(), "{t}");
    assert_eq!(t.matches(" as Slurm job ").count(), 10, "{t}");
    assert!(t.contains("cpus=1 mem=400M time=10m"), "{t}");
    assert!(t.contains("sweep: 10 ran, 0 restored, 4 up to date"), "{t}");
    let jobs = jobcomp_n(&prefix_of(root), 10);
    assert_eq!(jobs.len(), 10, "{jobs:?}");
    assert!(
        jobs.iter().all(|j| j["JobState"] == "COMPLETED"),
        "{jobs:?}"
    );
    let (most, cpus) = (max_at_once(&jobs), node_cpus());
    eprintln!(
        "beam sweep: at most {most} of 10 jobs at once (jobcomp times), {seen} (squeue), on {cpus} CPUs"
    );
    assert!(
        most <= cpus && seen <= cpus,
        "{most}/{seen} jobs at once on {cpus} CPUs: {jobs:?}"
    );
    // and they did share the node: more than one at a time
    assert!(
        most.max(seen) >= cpus.min(2),
        "{most}/{seen} at once: {jobs:?}"
    );
    let lock = lock_json(root, "pipelines/p.lock");
    for w in 1..=10 {
        let e = &lock["stages"][format!("beam-eval@beam_width={w}")];
        assert_eq!(e["metrics"]["beam_width"], w, "{e}");
    }
}

#[test]
#[ignore = "needs the Slurm test cluster (scripts/test.sh runs it)"]
fn job_over_its_time_limit_is_reported_timeout() {
    // Slurm's smallest limit is one minute (`--time=0:10` is rounded up to it) and slurmctld
    // checks limits every 30 s: this test takes 60-90 s.
    let _node = cluster();
    let p = Proj::new(
        "name: t\nstages:\n  slow: { kind: command, resources: { time_min: 1 }, params: { cmd: \"sleep 300\" } }\n",
    );
    let t0 = Instant::now();
    let o = p.pipe(&["run", "pipelines/p.yaml", "--executor", "slurm"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("time=1m"), "{t}");
    assert!(
        t.contains("stage `slow` failed") && t.contains(" TIMEOUT") && t.contains("slow.slurm.log"),
        "{t}"
    );
    let s = t0.elapsed().as_secs();
    eprintln!("time limit: TIMEOUT reported after {s} s");
    assert!((55..150).contains(&s), "{s} s");
    assert!(project_jobs(p.root()).is_empty());
}

#[test]
#[ignore = "needs the Slurm test cluster (scripts/test.sh runs it)"]
fn job_whose_dependency_can_never_be_satisfied_is_not_left_pending() {
    let _node = cluster();
    let d = tempfile::tempdir().unwrap();
    let failed = pipe::slurm::submit(&pipe::slurm::JobSpec {
        name: format!("pipe-test-{}-fails", std::process::id()),
        time_min: Some(1),
        log: d.path().join("fails.log"),
        command: vec!["/bin/false".into()],
        ..Default::default()
    })
    .unwrap();
    let fin = pipe::slurm::wait_all(&[failed], |_| {}).unwrap();
    assert_eq!(fin[&failed].state, pipe::slurm::JobState::Failed);
    // the user's own flags: a dependency on the failed job, and Slurm told to keep such a job
    // pending (so that it is the driver that notices)
    let p = Proj::new(&format!(
        "name: d\nexecutor:\n  extra: [\"--dependency=afterok:{failed}\", \"--kill-on-invalid-dep=no\"]\nstages:\n  after: {{ kind: command, params: {{ cmd: \"echo ran >> runs.log\" }} }}\n"
    ));
    let t0 = Instant::now();
    let o = p.pipe(&["run", "pipelines/p.yaml", "--executor", "slurm"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("stage `after` failed")
            && t.contains("CANCELLED")
            && t.contains("DependencyNeverSatisfied"),
        "{t}"
    );
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    assert!(project_jobs(p.root()).is_empty(), "a job left pending");
    assert!(p.runs().is_empty());
}

/// A `pipe run --executor slurm` started in the background in a process group of its own (as a
/// shell starts a foreground job), its output piped.
fn spawn_driver(p: &Proj, extra: &[&str]) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    let mut args = vec!["run", "pipelines/p.yaml", "--executor", "slurm"];
    args.extend_from_slice(extra);
    p.cmd(&args)
        .process_group(0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `n` jobs of the project are in squeue, `running` of them RUNNING (60 s at most).
fn wait_jobs(root: &Path, n: usize, running: usize) -> Vec<pipe::slurm::FoundJob> {
    let t0 = Instant::now();
    loop {
        let v = project_jobs(root);
        let r = v
            .iter()
            .filter(|j| j.state == pipe::slurm::JobState::Running)
            .count();
        if v.len() >= n && r >= running {
            return v;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "wanted {n} jobs ({running} running), have {v:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `kill -SIG -- TARGET`: a pid, or `-PGID` for a whole process group.
fn signal(target: &str, sig: &str) {
    let o = Command::new("kill")
        .args([&format!("-{sig}"), "--", target])
        .output()
        .unwrap();
    assert!(o.status.success(), "kill -{sig} {target}: {}", text(&o));
}

#[test]
#[ignore = "needs the Slurm test cluster (scripts/test.sh runs it)"]
fn killed_driver_rerun_waits_for_its_job_and_submits_no_duplicate() {
    let _node = cluster();
    let p = Proj::new(
        "name: k\nstages:\n  slow: { kind: command, params: { cmd: \"sleep 6; echo slow >> runs.log; echo done > $PIPE_OUT/x.txt\" } }\n",
    );
    let root = p.root();
    let mut first = spawn_driver(&p, &[]);
    let jobs = wait_jobs(root, 1, 1);
    signal(&first.id().to_string(), "KILL");
    let _ = first.wait();
    // the job outlives its driver
    assert_eq!(project_jobs(root), jobs, "the job should still be there");
    let o = p.pipe(&["run", "pipelines/p.yaml", "--executor", "slurm"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains(&format!(
            "waiting     slow (Slurm job {} RUNNING, submitted by an earlier run)",
            jobs[0].id
        )),
        "{t}"
    );
    assert!(!t.contains(" as Slurm job "), "a second submission: {t}");
    assert!(t.contains("k: 1 ran"), "{t}");
    assert_eq!(p.runs(), vec!["slow"]);
    assert_eq!(p.read("results/k/slow/x.txt"), "done\n");
    let done = jobcomp_n(&prefix_of(root), 1);
    assert_eq!(done.len(), 1, "one submission in all: {done:?}");
    assert_eq!(done[0]["JobId"], jobs[0].id.to_string());
    // and nothing is left to do
    let o = p.pipe(&["run", "pipelines/p.yaml", "--executor", "slurm"]);
    assert!(
        o.status.success() && text(&o).contains("k: 0 ran"),
        "{}",
        text(&o)
    );
}

#[test]
#[ignore = "needs the Slurm test cluster (scripts/test.sh runs it)"]
fn ctrl_c_cancels_this_runs_jobs_and_says_so() {
    let _node = cluster();
    // three one-CPU jobs on a two-CPU node: two running, one pending. `&&`: when scancel's
    // SIGTERM reaches the `sleep` a moment before its shell, the shell must not go on to the
    // `echo` (that race between the job's processes is Slurm's signal delivery, noted in
    // docs/NOTES.md; this test is about pipe cancelling every job and saying so).
    let p = Proj::new(
        "name: i\nstages:\n  s:\n    kind: command\n    matrix: { n: [1, 2, 3] }\n    params: { cmd: \"sleep 120 && echo $PIPE_STAGE >> runs.log\" }\n",
    );
    let root = p.root();
    let child = spawn_driver(&p, &["-j", "3"]);
    let jobs = wait_jobs(root, 3, 1);
    let t0 = Instant::now();
    // what a terminal's Ctrl-C does: SIGINT to the whole foreground process group, any
    // `squeue` or `sbatch` the driver is running at that moment included
    signal(&format!("-{}", child.id()), "INT");
    let o = child.wait_with_output().unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(130), "{t}");
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    for j in &jobs {
        assert!(
            t.contains(&format!("(Slurm job {}, scancel)", j.id)),
            "job {} not said cancelled: {t}",
            j.id
        );
    }
    assert!(t.contains("(Ctrl-C); rerun to continue"), "{t}");
    // a cancelled job is COMPLETING for a moment, then gone
    let t1 = Instant::now();
    while !project_jobs(root).is_empty() {
        assert!(
            t1.elapsed() < Duration::from_secs(20),
            "{:?}",
            project_jobs(root)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let done = jobcomp_n(&prefix_of(root), 3);
    assert_eq!(done.len(), 3, "{done:?}");
    assert!(
        done.iter().all(|j| j["JobState"] == "CANCELLED"),
        "{done:?}"
    );
    assert!(p.runs().is_empty());
}

#[test]
#[ignore = "needs the Slurm test cluster (scripts/test.sh runs it)"]
fn two_drivers_never_run_the_same_instance_twice() {
    let _node = cluster();
    let p = Proj::new(
        "name: two\nstages:\n  s:\n    kind: command\n    matrix: { n: [1, 2] }\n    params: { cmd: \"sleep 2; echo $PIPE_STAGE >> runs.log\" }\n  t:\n    kind: command\n    needs: [s]\n    params: { cmd: \"echo t >> runs.log\" }\n",
    );
    let root = p.root();
    let a = spawn_driver(&p, &[]);
    let b = spawn_driver(&p, &[]);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let (ta, tb) = (text(&a), text(&b));
    assert!(a.status.success() && b.status.success(), "{ta}\n---\n{tb}");
    assert_eq!(
        ta.matches(" as Slurm job ").count() + tb.matches(" as Slurm job ").count(),
        3,
        "{ta}\n---\n{tb}"
    );
    assert!(
        ta.contains("waiting for the project lock") || tb.contains("waiting for the project lock"),
        "{ta}\n---\n{tb}"
    );
    assert_eq!(p.runs(), vec!["s@n=1", "s@n=2", "t"]);
    assert_eq!(jobcomp_n(&prefix_of(root), 3).len(), 3);
}

#[test]
#[ignore = "needs the Slurm test cluster (scripts/test.sh runs it)"]
fn rerun_submits_again_when_the_earlier_runs_job_fails() {
    let _node = cluster();
    // fails the first time (after a few seconds), succeeds the second
    let p = Proj::new(
        "name: r\nstages:\n  f: { kind: command, params: { cmd: \"echo try >> runs.log; if [ -e once ]; then echo ok > $PIPE_OUT/x.txt; else touch once; sleep 4; exit 1; fi\" } }\n",
    );
    let root = p.root();
    let mut first = spawn_driver(&p, &[]);
    let jobs = wait_jobs(root, 1, 1);
    signal(&first.id().to_string(), "KILL");
    let _ = first.wait();
    let o = p.pipe(&["run", "pipelines/p.yaml", "--executor", "slurm"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let id = jobs[0].id;
    assert!(
        t.contains(&format!("waiting     f (Slurm job {id} RUNNING"))
            && t.contains(&format!(
                "resubmit    f (Slurm job {id} of an earlier run ended FAILED)"
            )),
        "{t}"
    );
    assert_eq!(t.matches(" as Slurm job ").count(), 1, "{t}");
    assert_eq!(p.runs(), vec!["try", "try"]);
    assert_eq!(p.read("results/r/f/x.txt"), "ok\n");
}
