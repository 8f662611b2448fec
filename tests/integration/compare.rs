//! Run comparison end to end: `metrics show/diff`, `params diff`, `exp show` and `reproduce`
//! driven through the real `pipe` binary in temp folders with small `command` pipelines (and
//! real `git` repositories made in them).

use crate::support::*;

/// A `train` stage whose metrics come from its matrix value, an `eval` stage after it, and a
/// `noisy` stage copying files that are not declared inputs (so a test can change what it
/// writes without changing its fingerprint).
fn pipeline(lr: &str) -> String {
    format!(
        r#"name: p
seed: 1
stages:
  train:
    kind: command
    matrix: {{ lr: [{lr}] }}
    params:
      cmd: "echo '{{\"loss\": 1${{lr}}, \"tokens_per_s\": 100}}' > $PIPE_OUT/metrics.json; echo ${{lr}} > $PIPE_OUT/w.txt"
  eval:
    kind: command
    needs: [train]
    params:
      cmd: "echo '{{\"acc\": 0.6}}' > $PIPE_OUT/metrics.json"
  noisy:
    kind: command
    params:
      cmd: "cp noise.json $PIPE_OUT/metrics.json; cp w.bin $PIPE_OUT/w.safetensors"
"#
    )
}

/// A one-tensor F32 safetensors file.
fn safetensors(values: &[f32]) -> Vec<u8> {
    let n = values.len() * 4;
    let mut h = format!(
        r#"{{"w":{{"dtype":"F32","shape":[{}],"data_offsets":[0,{n}]}}}}"#,
        values.len()
    )
    .into_bytes();
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// The project of [`pipeline`] at `lr`, with `noise.json` and `w.bin` (a one-tensor file).
fn project(lr: &str) -> Proj {
    let p = Proj::empty();
    p.write("pipelines/p.yaml", &pipeline(lr));
    p.write("noise.json", r#"{"loss": 1.0, "wall_s": 3.0}"#);
    std::fs::write(p.path("w.bin"), safetensors(&[1.0, 2.0, 3.0])).unwrap();
    p
}

/// Commits the pipelines folder (pipeline and lock file).
fn commit(p: &Proj, msg: &str) {
    p.git(&["add", "-A", "pipelines"]);
    p.git(&["commit", "-q", "-m", msg]);
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn metrics_show_table_and_json() {
    let p = project("0.1");
    p.run_ok(&[]);
    let t = p.ok(&["metrics", "show", "pipelines/p.yaml"]);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["Stage", "Metric", "Value"]
    );
    assert!(
        t.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["eval", "acc", "0.6"]),
        "{t}"
    );
    assert!(
        t.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["train@lr=0.1", "loss", "10.1"]),
        "{t}"
    );
    // The bare pipeline name finds the same lock file.
    let j = json(&p.ok(&["metrics", "show", "p", "--json"]));
    assert_eq!(j["stages"]["eval"]["acc"], serde_json::json!(0.6));
    assert_eq!(j["stages"]["train@lr=0.1"]["loss"], serde_json::json!(10.1));
    assert_eq!(
        j["stages"]["train@lr=0.1"]["tokens_per_s"],
        serde_json::json!(100)
    );
    assert_eq!(j["stages"].as_object().unwrap().len(), 3);
}

#[test]
fn metrics_show_without_lock_is_exit_2() {
    let p = project("0.1");
    let e = p.expect_err(&["metrics", "show", "pipelines/p.yaml"], 2);
    assert!(e.contains("pipelines/p.lock: no lock file"), "{e}");
    p.write("pipelines/p.lock", "{\n<<<<<<< HEAD\n");
    let e = p.expect_err(&["metrics", "show", "pipelines/p.yaml"], 2);
    assert!(e.contains("pipelines/p.lock:2:"), "{e}");
}

#[test]
fn diff_against_a_git_revision() {
    let p = project("0.1");
    p.git(&["init", "-q"]);
    p.run_ok(&[]);
    commit(&p, "lr 0.1");
    // Nothing changed since HEAD.
    let t = p.ok(&["metrics", "diff", "pipelines/p.yaml"]);
    assert!(t.contains("no metric differs"), "{t}");
    // Edit the matrix value and rerun: the workspace differs from HEAD.
    p.write("pipelines/p.yaml", &pipeline("0.3"));
    p.run_ok(&[]);
    let t = p.ok(&["metrics", "diff", "pipelines/p.yaml"]);
    assert!(
        t.starts_with("HEAD:pipelines/p.lock → pipelines/p.lock (workspace)\n"),
        "{t}"
    );
    let row = t
        .lines()
        .find(|l| l.contains(" loss "))
        .expect("a loss row");
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        ["train@lr=0.3", "loss", "10.1", "10.3", "+0.2", "(+1.98%)"]
    );
    assert!(!t.contains("acc"), "unchanged metrics are hidden: {t}");
    assert!(!t.contains("tokens_per_s"), "{t}");
    let all = p.ok(&["metrics", "diff", "pipelines/p.yaml", "--all"]);
    assert!(
        all.lines()
            .any(|l| l.contains("acc") && l.contains("unchanged")),
        "{all}"
    );
    let j = json(&p.ok(&["metrics", "diff", "pipelines/p.yaml", "--json"]));
    assert_eq!(
        j,
        serde_json::json!([{"stage": "train@lr=0.3", "key": "loss", "old": 10.1, "new": 10.3}])
    );
    let pd = json(&p.ok(&["params", "diff", "pipelines/p.yaml", "--json"]));
    let keys: Vec<&str> = pd
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["cmd", "lr"]);
    assert_eq!(pd[1]["old"], serde_json::json!(0.1));
    assert_eq!(pd[1]["new"], serde_json::json!(0.3));
    let pt = p.ok(&["params", "diff", "pipelines/p.yaml"]);
    let row = pt.lines().find(|l| l.contains(" lr ")).expect("an lr row");
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        ["train@lr=0.3", "lr", "0.1", "0.3", "+0.2", "(+200.00%)"]
    );
    // A second commit: HEAD now matches, HEAD~1 still shows the change.
    commit(&p, "lr 0.3");
    let t = p.ok(&["metrics", "diff", "pipelines/p.yaml", "--rev", "HEAD"]);
    assert!(t.contains("no metric differs"), "{t}");
    let j = json(&p.ok(&[
        "metrics",
        "diff",
        "pipelines/p.yaml",
        "--rev",
        "HEAD~1",
        "--json",
    ]));
    assert_eq!(j.as_array().unwrap().len(), 1);
    assert_eq!(j[0]["old"], serde_json::json!(10.1));
    let e = p.expect_err(
        &["metrics", "diff", "pipelines/p.yaml", "--rev", "nosuchrev"],
        2,
    );
    assert!(e.contains("unknown revision `nosuchrev`"), "{e}");
}

#[test]
fn diff_against_another_lock_file() {
    let p = project("0.1");
    p.run_ok(&[]);
    std::fs::copy(p.root().join("pipelines/p.lock"), p.root().join("old.lock")).unwrap();
    p.write("pipelines/p.yaml", &pipeline("0.25"));
    p.run_ok(&[]);
    let t = p.ok(&[
        "metrics",
        "diff",
        "pipelines/p.yaml",
        "--against",
        "old.lock",
    ]);
    assert!(
        t.starts_with("old.lock → pipelines/p.lock (workspace)"),
        "{t}"
    );
    let row = t
        .lines()
        .find(|l| l.contains(" loss "))
        .expect("a loss row");
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        [
            "train@lr=0.25",
            "loss",
            "10.1",
            "10.25",
            "+0.15",
            "(+1.49%)"
        ]
    );
    let j = json(&p.ok(&[
        "params",
        "diff",
        "p",
        "--against",
        "old.lock",
        "--all",
        "--json",
    ]));
    // --all lists every parameter of every stage, changed or not.
    assert!(j
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["stage"] == "eval" && r["key"] == "cmd"));
}

#[test]
fn rev_outside_git_is_exit_2() {
    let p = project("0.1");
    p.run_ok(&[]);
    for args in [
        &["metrics", "diff", "pipelines/p.yaml"][..],
        &["metrics", "diff", "pipelines/p.yaml", "--rev", "HEAD"],
        &["params", "diff", "pipelines/p.yaml", "--rev", "HEAD"],
    ] {
        let e = p.expect_err(args, 2);
        assert!(e.contains("not inside a git repository"), "{e}");
        assert!(e.contains("--against"), "{e}");
    }
}

#[test]
fn exp_show_lists_every_experiment() {
    let p = project("0.1");
    p.run_ok(&[]);
    p.write("pipelines/p.yaml", &pipeline("0.3"));
    p.run_ok(&[]);
    // One row per run of the pipeline; the parameter that varies is a column.
    let t = p.ok(&["exp", "show", "pipelines/p.yaml"]);
    let header = t.lines().nth(1).unwrap();
    for col in ["experiment", "status", "train.lr", "train.loss", "eval.acc"] {
        assert!(header.contains(col), "{col} in {t}");
    }
    assert!(!header.contains("train.cmd"), "{t}");
    let j = json(&p.ok(&[
        "exp",
        "show",
        "p",
        "--json",
        "--sort",
        "train.loss",
        "--desc",
    ]));
    let rows = j["experiments"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["params"]["train.lr"], serde_json::json!(0.3));
    assert_eq!(rows[0]["metrics"]["train.loss"], serde_json::json!(10.3));
    assert_eq!(rows[1]["metrics"]["eval.acc"], serde_json::json!(0.6));
    let csv = p.ok(&[
        "exp",
        "show",
        "pipelines/p.yaml",
        "--csv",
        "--sort",
        "train.lr",
    ]);
    let mut r = csv::Reader::from_reader(csv.as_bytes());
    let h: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    let col = |n: &str| {
        h.iter()
            .position(|x| x == n)
            .unwrap_or_else(|| panic!("{n} in {h:?}"))
    };
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
    assert_eq!(
        (&rows[0][col("train.lr")], &rows[0][col("train.loss")]),
        ("0.1", "10.1")
    );
    assert_eq!(&rows[1][col("train.lr")], "0.3");
    let e = p.expect_err(&["exp", "show", "p", "--sort", "nosuch"], 2);
    assert!(
        e.contains("--sort nosuch: no such column") && e.contains("train.loss"),
        "{e}"
    );
}

#[test]
fn reproduce_identical_is_exit_0() {
    let p = project("0.1");
    p.run_ok(&[]);
    let t = p.ok(&["reproduce", "pipelines/p.yaml"]);
    for id in ["eval", "noisy", "train@lr=0.1"] {
        assert!(
            t.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == [id, "identical"]),
            "{t}"
        );
    }
    assert!(
        t.contains("p: 3 identical, 0 equal within tolerance"),
        "{t}"
    );
    // The scratch copy is gone, and the workspace is untouched.
    assert!(!t.contains("kept"));
    assert!(p.read("pipelines/p.lock").contains("train@lr=0.1"));
}

#[test]
fn reproduce_fails_on_a_tampered_lock_naming_the_stage() {
    let p = project("0.1");
    p.run_ok(&[]);
    let mut lock = json(&p.read("pipelines/p.lock"));
    lock["stages"]["eval"]["outputs"]["results/p/eval/metrics.json"] =
        serde_json::json!("0".repeat(64));
    p.write(
        "pipelines/p.lock",
        &serde_json::to_string_pretty(&lock).unwrap(),
    );
    let o = p.pipe(&["reproduce", "pipelines/p.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    let line = out
        .lines()
        .find(|l| l.starts_with("eval "))
        .expect("an eval line");
    assert!(
        line.contains("DIFFERENT: results/p/eval/metrics.json differs"),
        "{line}"
    );
    assert!(line.contains("could not be compared"), "{line}");
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["noisy", "identical"]),
        "{out}"
    );
    assert!(err.contains("does not reproduce: eval differs"), "{err}");
}

#[test]
fn reproduce_compares_metrics_and_tensors_with_tolerance() {
    let p = project("0.1");
    p.run_ok(&[]);
    // What `noisy` copies changes without changing its fingerprint: the committed objects are
    // in the local store, so contents are compared.
    p.write("noise.json", r#"{"loss": 1.0000000001, "wall_s": 9.0}"#);
    std::fs::write(p.root().join("w.bin"), safetensors(&[1.0, 2.00001, 3.0])).unwrap();
    let t = p.ok(&["reproduce", "pipelines/p.yaml"]);
    let line = t
        .lines()
        .find(|l| l.starts_with("noisy "))
        .expect("a noisy line");
    assert!(line.contains("equal within tolerance"), "{line}");
    assert!(
        line.contains("results/p/noisy/metrics.json: largest relative difference 1.0e-10"),
        "{line}"
    );
    assert!(
        line.contains("results/p/noisy/w.safetensors: 1 tensor(s) differ within tolerance"),
        "{line}"
    );
    assert!(t.contains("1 equal within tolerance"), "{t}");
    // Only a measurement moved: not a failure either.
    p.write("noise.json", r#"{"loss": 1.0, "wall_s": 9.0}"#);
    std::fs::write(p.root().join("w.bin"), safetensors(&[1.0, 2.0, 3.0])).unwrap();
    let t = p.ok(&["reproduce", "pipelines/p.yaml"]);
    let line = t
        .lines()
        .find(|l| l.starts_with("noisy "))
        .expect("a noisy line");
    assert!(
        line.ends_with(
            "identical apart from measurements (speeds, times) in results/p/noisy/metrics.json"
        ),
        "{line}"
    );
    // Beyond tolerance: exit 1 naming the stage, the file and the element.
    std::fs::write(p.root().join("w.bin"), safetensors(&[1.0, 2.5, 3.0])).unwrap();
    let o = p.pipe(&["reproduce", "pipelines/p.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    let line = out
        .lines()
        .find(|l| l.starts_with("noisy "))
        .expect("a noisy line");
    assert!(
        line.contains("DIFFERENT: results/p/noisy/w.safetensors: tensor `w`: 1 of 3 elements beyond tolerance"),
        "{line}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("noisy differs"));
    p.write("noise.json", r#"{"loss": 1.5, "wall_s": 9.0}"#);
    std::fs::write(p.root().join("w.bin"), safetensors(&[1.0, 2.0, 3.0])).unwrap();
    let o = p.pipe(&["reproduce", "pipelines/p.yaml", "--keep"]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("results/p/noisy/metrics.json: `loss`: 1 → 1.5"),
        "{out}"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    let kept = err
        .lines()
        .find_map(|l| l.strip_prefix("reproduce: scratch copy kept in "))
        .expect("the kept folder is named");
    assert!(std::path::Path::new(kept)
        .join("pipelines/p.lock")
        .is_file());
    std::fs::remove_dir_all(kept).unwrap();
}
