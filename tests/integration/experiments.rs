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
