//! The experiment loop (issue 18): the same prompts for every decoding method, `--set` of a
//! matrix key, `command` stages with parameters, named experiments (`exp show/diff/apply/remove`,
//! the queue), `plots diff`, and addressing a pipeline from anywhere.

use crate::support::*;
use serde_json::Value;
use std::path::Path;

fn json_of(p: &Path) -> Value {
    let t = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&t).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The held-out documents a decoding stage continued (its `outputs.json`).
fn docs_of(dir: &Path) -> Vec<u64> {
    json_of(&dir.join("outputs.json"))["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["doc"].as_u64().unwrap())
        .collect()
}

#[test]
fn ci_yaml_decodes_the_same_prompts_with_sampling_and_every_beam_width() {
    let Some(mirror) = data_mirror() else { return };
    let copy = tracked_copy();
    let root = std::fs::canonicalize(copy.path()).unwrap();
    let m = mirror.display().to_string();
    let o = pipe_env(
        &root,
        &[
            "run",
            "pipelines/ci.yaml",
            "--only",
            "sampling",
            "--only",
            "beam-eval",
            "--only",
            "infer",
        ],
        &[("PIPE_MIRROR", &m)],
    );
    assert!(o.status.success(), "{}", text(&o));
    let res = root.join("results/ci");
    let sampling = docs_of(&res.join("sampling"));
    assert_eq!(sampling.len(), 5);
    let yaml = std::fs::read_to_string(root.join("pipelines/ci.yaml")).unwrap();
    assert!(
        yaml.contains("matrix: { beam_width: [1, 3] }"),
        "ci.yaml changed: update the widths"
    );
    for w in [1, 3] {
        let beam = docs_of(&res.join(format!("beam-eval@beam_width={w}")));
        assert_eq!(
            beam, sampling,
            "beam width {w} continued other documents than sampling"
        );
    }
    // infer continues more documents (shorter prompts): the beams' documents among them.
    let md = std::fs::read_to_string(res.join("infer/samples.md")).unwrap();
    let infer_docs: Vec<u64> = md
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| doc"))
        .filter_map(|l| l[2..].split(' ').next()?.parse().ok())
        .collect();
    assert_eq!(infer_docs.len(), 20);
    for d in &sampling {
        assert!(
            infer_docs.contains(d),
            "doc {d} not among infer's {infer_docs:?}"
        );
    }
    // A run with overrides is an experiment: the committed lock file stays byte-identical.
    let lock = std::fs::read(root.join("pipelines/ci.lock")).unwrap();
    let o = pipe_env(
        &root,
        &[
            "run",
            "pipelines/ci.yaml",
            "--only",
            "infer",
            "--set",
            "infer.samples=10",
        ],
        &[("PIPE_MIRROR", &m)],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(root.join("pipelines/ci.lock")).unwrap(), lock);
}

/// `p.yaml` of a stage `s` swept over `lr` that writes what it saw.
const SWEPT: &str = r#"
name: demo
seed: 7
stages:
  s:
    kind: command
    matrix: { lr: [0.1] }
    params:
      cmd: "echo ${lr} > $PIPE_OUT/o.txt; printf '%s' \"$PIPE_PARAMS\" > $PIPE_OUT/params.json"
"#;

#[test]
fn set_of_a_matrix_key_runs_exactly_that_point() {
    let p = Proj::new(SWEPT);
    p.ok(&["run", "pipelines/p.yaml", "--set", "s.lr=0.5"]);
    let dir = p.path("results/demo/s@lr=0.5");
    assert_eq!(std::fs::read_to_string(dir.join("o.txt")).unwrap(), "0.5\n");
    assert_eq!(json_of(&dir.join("params.json"))["lr"], 0.5);
    assert!(!p.path("results/demo/s@lr=0.1").exists());
    let st = p.ok(&["status", "pipelines/p.yaml", "--set", "s.lr=0.5"]);
    assert!(st.contains("s@lr=0.5") && !st.contains("lr=0.1"), "{st}");
    // The environment and a params file are overrides too.
    let o = pipe_env(
        p.root(),
        &["status", "pipelines/p.yaml", "--json"],
        &[("PIPE_S__LR", "0.7")],
    );
    assert!(stdout(&o).contains("s@lr=0.7"), "{}", text(&o));
    // A list is not one point: exit 2 naming the matrix and how to change it.
    let e = p.expect_err(&["run", "pipelines/p.yaml", "--set", "s.lr=[0.1, 0.2]"], 2);
    assert!(
        e.contains("--set s.lr=[0.1, 0.2]") && e.contains("matrix"),
        "{e}"
    );
    assert!(e.contains("p.yaml:7"), "{e}");
}

/// A command stage `train` with parameters of its own reading its upstream's folder.
const USER_PARAMS: &str = r#"
name: demo
seed: 7
stages:
  prep:
    kind: command
    params:
      cmd: "echo 3 > $PIPE_OUT/n.txt"
  train:
    kind: command
    needs: [prep]
    params:
      lr: 0.1
      layers: 2
      cmd: "mkdir -p out; n=$(cat $PIPE_IN_PREP/n.txt); printf '{\"loss\": %s, \"n\": %s}' $(awk \"BEGIN { print 1 / (${lr} * 10 + ${layers}) }\") $n > out/m.json; printf 'step,loss\n1,2\n2,1.5\n' > out/curve.csv; printf '%s' \"$PIPE_PARAMS\" > $PIPE_OUT/params.json; printf '%s' \"$PIPE_INPUTS\" > $PIPE_OUT/inputs.json"
      outs: [out]
      metrics: [out/m.json]
      plots: [{ file: out/curve.csv, x: step, y: [loss] }]
"#;

#[test]
fn command_stages_take_parameters_metrics_and_plots() {
    let p = Proj::new(USER_PARAMS);
    p.ok(&["run", "pipelines/p.yaml"]);
    let res = p.path("results/demo/train");
    let m = json_of(&res.join("metrics.json"));
    assert_eq!(m["n"], 3, "PIPE_IN_PREP: {m}");
    assert!(
        (m["loss"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-5,
        "{m}"
    );
    assert_eq!(json_of(&res.join("params.json"))["lr"], 0.1);
    let inputs = json_of(&res.join("inputs.json"));
    assert_eq!(inputs["prep"]["results"], "results/demo/prep");
    let plots = json_of(&res.join("plots.json"));
    assert_eq!(plots[0]["x"], "step");
    assert!(res.join(plots[0]["csv"].as_str().unwrap()).is_file());
    // Headline metrics of the lock file.
    let show = p.ok(&["metrics", "show", "pipelines/p.yaml", "--json"]);
    let show: Value = serde_json::from_str(&show).unwrap();
    assert_eq!(show["stages"]["train"]["n"], 3);
    std::fs::copy(p.path("pipelines/p.lock"), p.path("before.lock")).unwrap();

    // `--set` of a user parameter: fingerprinted, substituted, in PIPE_PARAMS.
    p.ok(&["run", "pipelines/p.yaml", "--set", "train.lr=0.2"]);
    let m = json_of(&res.join("metrics.json"));
    assert!((m["loss"].as_f64().unwrap() - 0.25).abs() < 1e-5, "{m}");
    assert_eq!(json_of(&res.join("params.json"))["lr"], 0.2);

    // A matrix sweeps it.
    let swept = USER_PARAMS.replace("      lr: 0.1\n", "").replace(
        "    needs: [prep]\n",
        "    needs: [prep]\n    matrix: { lr: [0.3, 0.4] }\n",
    );
    // Two instances cannot share `outs`: each writes its own folder.
    let swept = swept
        .replace("[out/m.json]", "[\"out_${lr}/m.json\"]")
        .replace("file: out/curve.csv", "file: \"out_${lr}/curve.csv\"")
        .replace("out/", "out_${lr}/")
        .replace("[out]", "[\"out_${lr}\"]")
        .replace("-p out;", "-p out_${lr};");
    p.write("pipelines/p.yaml", &swept);
    p.ok(&["run", "pipelines/p.yaml"]);
    for (lr, loss) in [("0.3", 0.2), ("0.4", 1.0 / 6.0)] {
        let m = json_of(&p.path(&format!("results/demo/train@lr={lr}/metrics.json")));
        assert!(
            (m["loss"].as_f64().unwrap() - loss).abs() < 1e-5,
            "{lr}: {m}"
        );
    }
    let d = p.ok(&[
        "params",
        "diff",
        "pipelines/p.yaml",
        "--against",
        "before.lock",
        "--json",
    ]);
    let d: Value = serde_json::from_str(&d).unwrap();
    assert!(
        d.as_array()
            .unwrap()
            .iter()
            .any(|r| r["key"] == "lr" && r["stage"] == "train@lr=0.4" && r["new"] == 0.4),
        "{d}"
    );

    // Each run is an experiment: the one with `--set train.lr=0.2` has its row.
    let show = p.ok(&["exp", "show", "--json"]);
    let show: Value = serde_json::from_str(&show).unwrap();
    let rows = show["experiments"].as_array().unwrap();
    assert!(
        rows.iter().any(|r| r["params"]["train.lr"] == 0.2
            && (r["metrics"]["train.loss"].as_f64().unwrap() - 0.25).abs() < 1e-5),
        "{show}"
    );

    // Overrides may only set declared keys; near misses of the kind's keys are refused.
    let e = p.expect_err(&["run", "pipelines/p.yaml", "--set", "train.layer=3"], 2);
    assert!(e.contains("`layer`") && e.contains("`layers`"), "{e}");
    p.write(
        "pipelines/p.yaml",
        &USER_PARAMS.replace("outs: [out]", "out: [out]"),
    );
    let e = p.expect_err(&["run", "pipelines/p.yaml"], 2);
    assert!(
        e.contains("unknown parameter `out`") && e.contains("`outs`"),
        "{e}"
    );
}

/// A tiny language-model study: tokenize → train (2 epochs) → infer.
const TINY: &str = r#"# A tiny study.
name: tiny
seed: 3
stages:
  tokenize:
    kind: tokenize
    params: { path: stories.txt, format: text, valid_fraction: 0.2 }
  train:
    kind: train
    needs: [tokenize]
    params:
      d_model: 16
      d_attn: 16
      n_heads: 2
      d_ff: 32
      n_layers: 1
      context: 16
      batch_size: 4
      epochs: 2
      lr: 0.01   # the learning rate
      freeze_embeddings: false
  infer:
    kind: infer
    needs: [train, tokenize]
    params: { samples: 2, attention_sentences: [] }
"#;

/// `pipelines/p.yaml` = [`TINY`] and 60 generated stories.
fn tiny() -> Proj {
    let p = Proj::new(TINY);
    let words = [
        "the", "cat", "dog", "sat", "ran", "on", "a", "mat", "home", "big", "small", "red",
    ];
    let mut text = String::new();
    let mut x: u64 = 7;
    for _ in 0..60 {
        for i in 0..12 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            text.push_str(words[(x >> 33) as usize % words.len()]);
            text.push(if i == 11 { '\n' } else { ' ' });
        }
        text.push('\n');
    }
    p.write("stories.txt", &text);
    p
}

fn rows_of(p: &Proj, args: &[&str]) -> Vec<Value> {
    let o = p.ok(args);
    let v: Value = serde_json::from_str(&o).unwrap_or_else(|e| panic!("{e}: {o}"));
    v["experiments"].as_array().unwrap().clone()
}

#[test]
fn named_experiments_are_shown_diffed_applied_and_plotted() {
    let p = tiny();
    p.ok(&["run", "pipelines/p.yaml", "-n", "base"]);
    let lock = p.read("pipelines/p.lock");
    p.ok(&[
        "run",
        "pipelines/p.yaml",
        "-n",
        "fast",
        "--set",
        "train.lr=0.05",
    ]);
    p.ok(&[
        "run",
        "pipelines/p.yaml",
        "-n",
        "slow",
        "--set",
        "train.lr=0.001",
    ]);
    let rows = rows_of(&p, &["exp", "show", "--json", "--sort", "train.lr"]);
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["slow", "base", "fast"], "{rows:?}");
    for (r, lr) in rows.iter().zip([0.001, 0.01, 0.05]) {
        assert_eq!(r["params"]["train.lr"], lr, "{r}");
        assert!(
            r["metrics"]["infer.perplexity"].as_f64().unwrap() > 1.0,
            "{r}"
        );
        assert!(r["metrics"]["train.val_loss"].is_number(), "{r}");
        assert_eq!(r["status"], "done");
    }
    assert_eq!(rows[2]["overrides"][0]["origin"], "--set train.lr=0.05");
    // Filters, and the text table.
    let f = rows_of(&p, &["exp", "show", "--json", "--filter", "train.lr<0.01"]);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["name"], "slow");
    let t = p.ok(&["exp", "show", "pipelines/p.yaml"]);
    assert!(
        t.contains("train.lr") && t.contains("infer.perplexity") && t.contains("fast"),
        "{t}"
    );
    let d = p.ok(&["exp", "diff", "base", "fast"]);
    assert!(
        d.contains("train.lr") && d.contains("0.05") && !d.contains("--set"),
        "{d}"
    );

    // plots diff: one overlay per curve, both names in the legend.
    let o = p.ok(&["plots", "diff", "base", "fast", "--out", "plots"]);
    assert!(o.contains("base_vs_fast_val_loss.svg"), "{o}");
    let svg = p.read("plots/base_vs_fast_train_loss.svg");
    assert!(
        svg.contains("base") && svg.contains("fast") && svg.contains("train.lr=0.05"),
        "{svg}"
    );
    assert!(png_size(&p.path("plots/base_vs_fast_val_perplexity.png")).0 > 100);

    // apply: the file edited in place (comments kept), results restored, nothing computed.
    p.run_ok(&[]);
    let o = p.pipe(&["exp", "apply", "fast"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("0 ran"), "{}", text(&o));
    let yaml = p.read("pipelines/p.yaml");
    assert!(
        yaml.contains("      lr: 0.05   # the learning rate\n"),
        "{yaml}"
    );
    assert!(yaml.starts_with("# A tiny study.\n"));
    p.ok(&["run", "pipelines/p.yaml", "--frozen"]);
    assert_ne!(p.read("pipelines/p.lock"), lock);
    let rows = rows_of(&p, &["exp", "show", "--json"]);
    assert_eq!(rows.len(), 3, "one row per experiment: {rows:?}");
    p.ok(&["exp", "remove", "slow"]);
    assert_eq!(rows_of(&p, &["exp", "show", "--json"]).len(), 2);
    let e = p.expect_err(&["exp", "remove", "slw"], 2);
    assert!(
        e.contains("did you mean `slow`?") || e.contains("base"),
        "{e}"
    );
}

#[test]
fn queued_experiments_run_two_at_a_time_and_leave_the_workspace_as_it_was() {
    let p = tiny();
    p.ok(&["run", "pipelines/p.yaml"]);
    let lock = p.read("pipelines/p.lock");
    let before = p.snapshot();
    p.ok(&[
        "exp",
        "run",
        "--queue",
        "-n",
        "q1",
        "--set",
        "train.lr=0.02",
    ]);
    p.write("q2.yaml", "train: { lr: 0.03 }\n");
    p.ok(&["exp", "run", "--queue", "-n", "q2", "--params", "q2.yaml"]);
    std::fs::remove_file(p.path("q2.yaml")).unwrap();
    let rows = rows_of(&p, &["exp", "show", "--json"]);
    let queued: Vec<&Value> = rows.iter().filter(|r| r["status"] == "queued").collect();
    assert_eq!(queued.len(), 2, "{rows:?}");
    let o = p.pipe(&["exp", "run", "--run-all", "-j", "2"]);
    assert!(o.status.success(), "{}", text(&o));
    // Two at a time: each one's lines carry its name.
    let err = stderr(&o);
    assert!(err.contains("[q1] ") && err.contains("[q2] "), "{err}");
    let rows = rows_of(&p, &["exp", "show", "--json", "--filter", "name~q"]);
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (r, lr) in rows.iter().zip([0.02, 0.03]) {
        assert_eq!(r["status"], "done", "{r}");
        assert_eq!(r["params"]["train.lr"], lr);
        assert!(r["metrics"]["infer.perplexity"].is_number(), "{r}");
    }
    assert_ne!(rows[0]["metrics"], rows[1]["metrics"]);
    // The workspace as it was: lock, results and checkpoints untouched, no scratch copy left.
    assert_eq!(p.read("pipelines/p.lock"), lock);
    let store = p.path("cache");
    let now: Vec<_> = p
        .snapshot()
        .into_iter()
        .filter(|(path, _)| !path.starts_with(&store))
        .collect();
    let was: Vec<_> = before
        .into_iter()
        .filter(|(path, _)| !path.starts_with(&store))
        .collect();
    assert_eq!(now, was);
    let left: Vec<String> = std::fs::read_dir(p.path("cache/experiments/.run"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lock")
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // Their results are in the project's store: applying one computes nothing.
    let o = p.pipe(&["exp", "apply", "q2"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("0 ran"), "{}", text(&o));
}

/// A stage that sleeps `t` seconds, then writes `t`.
const SLEEPY: &str = r#"
name: sleepy
stages:
  s:
    kind: command
    params:
      t: 0
      cmd: "sleep ${t}; echo ${t} > $PIPE_OUT/t.txt"
"#;

/// Whether a process runs in `dir` (its current folder there or below, even deleted).
fn sleeping(dir: &Path) -> bool {
    let dir = dir.display().to_string();
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        std::fs::read_link(e.path().join("cwd"))
            .is_ok_and(|c| c.display().to_string().starts_with(&dir))
    })
}

/// The status `exp show --json` gives experiment `name`.
fn status_of(p: &Proj, name: &str) -> String {
    rows_of(p, &["exp", "show", "--json"])
        .iter()
        .find(|r| r["name"] == name)
        .map(|r| r["status"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

#[test]
fn stopping_the_queue_loses_no_finished_experiment() {
    let p = Proj::new(SLEEPY);
    p.ok(&["run"]);
    let results = p.read("results/sleepy/s/t.txt");
    p.ok(&["exp", "run", "--queue", "-n", "a1", "--set", "s.t=0"]);
    p.ok(&["exp", "run", "--queue", "-n", "b2", "--set", "s.t=300"]);
    for signal in [libc::SIGTERM, libc::SIGKILL] {
        let child = p
            .cmd(&["exp", "run", "--run-all"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        wait_until("b2 running", 120, || status_of(&p, "b2") == "running");
        assert_eq!(status_of(&p, "a1"), "done");
        // b2's stage is sleeping in its scratch copy.
        let scratch = p.path(&format!("cache/experiments/.run/{}-b2", child.id()));
        wait_until("b2's stage started", 60, || {
            scratch.join("cache/tmp").is_dir()
        });
        // SAFETY: kill sends a signal to the child this test started.
        unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        let out = child.wait_with_output().unwrap();
        if signal == libc::SIGTERM {
            assert_eq!(out.status.code(), Some(143));
        }
        // a1 is recorded, b2 is queued again, its scratch copy removed, nothing left running.
        wait_until("b2's scratch copy removed", 30, || !scratch.exists());
        assert_eq!(status_of(&p, "a1"), "done");
        assert_eq!(status_of(&p, "b2"), "queued");
        wait_until("the stage's sleep gone", 30, || !sleeping(&scratch));
    }
    assert_eq!(p.read("results/sleepy/s/t.txt"), results);
}

#[test]
fn metrics_params_and_exp_find_the_project_from_a_subfolder() {
    let p = Proj::new(CHAIN);
    p.ok(&["run"]);
    std::fs::create_dir_all(p.path("sub/deeper")).unwrap();
    let sub = p.path("sub/deeper");
    let o = pipe(&sub, &["metrics", "show"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        stdout(&o).contains("score") && stdout(&o).contains("1.5"),
        "{}",
        stdout(&o)
    );
    for args in [
        &["metrics", "show", "p"][..],
        &["metrics", "show", "pipelines/p.lock"],
        &["status", "p"],
        &["exp", "show", "p"],
        &["params", "diff", "p", "--against", "../../pipelines/p.lock"],
    ] {
        let o = pipe(&sub, args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
    }
    let o = pipe(
        p.tmp().parent().unwrap(),
        &["-C", p.root().to_str().unwrap(), "metrics", "show"],
    );
    assert!(
        o.status.success() && stdout(&o).contains("score"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_pipeline_of_command_stages_gets_a_useful_report() {
    let pl = USER_PARAMS.to_string() + "  report:\n    kind: report\n    needs: [prep, train]\n";
    let p = Proj::new(&pl);
    p.ok(&["run", "pipelines/p.yaml", "-n", "a"]);
    p.ok(&[
        "run",
        "pipelines/p.yaml",
        "-n",
        "b",
        "--set",
        "train.lr=0.2",
    ]);
    let html = p.read("results/demo/report/index.html");
    // The stage's metrics and its declared curve, no empty study sections, no literal backticks.
    assert!(html.contains("Stage <code>train</code>"), "{html}");
    assert!(
        html.contains(">loss<") && html.contains("0.25"),
        "metrics table"
    );
    assert!(html.contains("data:image/png;base64,"), "the declared plot");
    assert!(!html.contains("Attention maps") && !html.contains("KV cache"));
    let text_only: String =
        html.split("<style>").next().unwrap().to_string() + html.split("</style>").nth(1).unwrap();
    assert!(!text_only.contains('`'), "literal backticks");
    // report.compare overlays experiments, and so does `--compare`.
    p.ok(&["run", "pipelines/p.yaml", "--set", "report.compare=[a, b]"]);
    let html = p.read("results/demo/report/index.html");
    assert!(
        html.contains("Experiments compared") && html.contains("of experiments a, b"),
        "{html}"
    );
    p.ok(&["run", "pipelines/p.yaml", "--compare", "b,a"]);
    let html = p.read("results/demo/report/index.html");
    assert!(html.contains("of experiments b, a"), "{html}");
    let e = p.expect_err(&["run", "pipelines/p.yaml", "--compare", "a,c"], 2);
    assert!(e.contains("no experiment `c`"), "{e}");
    p.write("pipelines/p.yaml", USER_PARAMS);
    let e = p.expect_err(&["run", "pipelines/p.yaml", "--compare", "a"], 2);
    assert!(e.contains("no `report` stage"), "{e}");
}
