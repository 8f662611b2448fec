//! Load-time checks, driving the real `pipe` binary: stage order and cycles, upstream kinds,
//! confined outputs and `deps`, safe ids, values blamed on their real source, one name per
//! pipeline, and `pipe graph` output. Every rejected case exits 2 with one line and leaves the
//! project and a sibling "outside" folder byte-identical.

use crate::support::*;

/// A temp folder holding `proj/` (the project, with `.git`, sources and a pipeline) and
/// `outside/` (a sibling standing in for the rest of the machine); [`Proj::snapshot`] covers both.
fn project(pipeline: &str) -> Proj {
    let p = Proj::nested("proj");
    p.write("pipelines/p.yaml", pipeline);
    p.write(".git/HEAD", "ref: refs/heads/main\n");
    p.write("src/main.rs", "fn main() {}\n");
    p.write("cache/keep", "store\n");
    p.write("results/x/keep", "result\n");
    p.write("in.txt", "hello\n");
    write(&p.tmp().join("outside/victim/keep.txt"), "precious\n");
    p
}

/// Runs `pipe run pipelines/p.yaml ARGS` with `env`; asserts exit 2, one line, every needle,
/// none of the `absent` strings, and nothing changed on disk.
fn rejected(
    p: &Proj,
    what: &str,
    args: &[&str],
    env: &[(&str, &str)],
    needles: &[&str],
    absent: &[&str],
) {
    let before = p.snapshot();
    let mut all = vec!["run", "pipelines/p.yaml"];
    all.extend_from_slice(args);
    let mut c = p.cmd(&all);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{what}: {e}");
    assert_eq!(e.trim_end().lines().count(), 1, "{what}: one line: {e}");
    for n in needles {
        assert!(e.contains(n), "{what}: `{n}` not in: {e}");
    }
    for n in absent {
        assert!(!e.contains(n), "{what}: `{n}` should not be in: {e}");
    }
    assert!(p.snapshot() == before, "{what}: disk changed");
}

fn reject(what: &str, pipeline: &str, needles: &[&str]) {
    let p = project(pipeline);
    rejected(&p, what, &[], &[], needles, &[]);
}

#[test]
fn forward_needs_work_and_run_in_order() {
    let p = project(
        "name: f\nstages:\n  b: { kind: command, needs: [a], params: { cmd: \"cat a.txt > b.txt\", deps: [], outs: [b.txt] } }\n  a: { kind: command, params: { cmd: \"echo A > a.txt\", outs: [a.txt] } }\n",
    );
    let g = p.pipe(&["graph", "pipelines/p.yaml"]);
    assert_eq!(
        stdout(&g),
        "a (command)\nb (command) <- a\n",
        "{}",
        stderr(&g)
    );
    let o = p.pipe(&["run", "pipelines/p.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(p.root().join("b.txt")).unwrap(),
        "A\n"
    );
}

#[test]
fn cycles_are_shown_as_paths() {
    reject(
        "cycle",
        "stages:\n  x: { kind: command, params: { cmd: x } }\n  a: { kind: command, needs: [b], params: { cmd: x } }\n  b: { kind: command, needs: [a, x], params: { cmd: x } }\n",
        &["p.yaml:3:", "stage `a`", "cycle", "a → b → a"],
    );
    reject(
        "self",
        "stages:\n  a: { kind: command, needs: [a], params: { cmd: x } }\n",
        &["p.yaml:2:", "a → a"],
    );
}

#[test]
fn a_missing_upstream_kind_is_found_at_load() {
    reject(
        "plot without train",
        "stages:\n  prep: { kind: command, params: { cmd: x } }\n  plot:\n    kind: plot\n    needs: [prep]\n",
        &["p.yaml:5:", "stage `plot`", "`train`", "`prep` (command)"],
    );
    reject(
        "plot without needs",
        "stages:\n  plot: { kind: plot }\n",
        &["p.yaml:2:", "stage `plot`", "`train`"],
    );
}

#[test]
fn outputs_are_confined() {
    let cases: [(&str, &[&str]); 9] = [
        (".", &["project root"]),
        ("./", &["project root"]),
        (".git", &["`.git`"]),
        ("src/.git/x", &["`.git`"]),
        ("cache", &["`cache/`"]),
        ("results/x", &["`results/`"]),
        ("checkpoints/a", &["`checkpoints/`"]),
        ("pipelines/p.yaml", &["`pipelines/`"]),
        ("./results/", &["`results/`"]),
    ];
    for (out, needles) in cases {
        let pl = format!(
            "stages:\n  a:\n    kind: command\n    params: {{ cmd: \"rm -rf {out}\", outs: [\"{out}\"] }}\n"
        );
        let mut n = vec!["p.yaml:4:", "stage `a`"];
        n.extend_from_slice(needles);
        let out_needle = format!("`{out}`");
        n.push(&out_needle);
        reject(&format!("outs {out}"), &pl, &n);
    }
    for out in ["../x", "/tmp/x", "../outside/victim"] {
        let pl = format!(
            "stages:\n  a: {{ kind: command, params: {{ cmd: \"rm -rf {out}\", outs: [\"{out}\"] }} }}\n"
        );
        reject(
            &format!("outs {out}"),
            &pl,
            &["p.yaml:2:", "stage `a`", out],
        );
    }
}

#[test]
fn a_pipeline_file_outside_pipelines_is_protected() {
    let p = project("stages:\n  a: { kind: command, params: { cmd: x } }\n");
    p.write(
        "conf/q.yaml",
        "stages:\n  a: { kind: command, params: { cmd: \"rm -rf conf\", outs: [conf] } }\n",
    );
    let before = p.snapshot();
    let o = p.pipe(&["run", "conf/q.yaml"]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("conf/q.yaml"), "{e}");
    assert!(p.snapshot() == before);
}

#[test]
fn outputs_never_overlap() {
    reject(
        "same output",
        "stages:\n  a: { kind: command, params: { cmd: x, outs: [out.txt] } }\n  b: { kind: command, params: { cmd: x, outs: [./out.txt] } }\n",
        &["p.yaml:3:", "stages `a` and `b`", "out.txt", "p.yaml:2:"],
    );
    reject(
        "nested output",
        "stages:\n  a: { kind: command, params: { cmd: x, outs: [out/x.txt] } }\n  b: { kind: command, params: { cmd: x, outs: [out/] } }\n",
        &["stages `", "`a`", "`b`", "out/x.txt", "overlapping"],
    );
    reject(
        "matrix instances sharing an output",
        "stages:\n  a: { kind: command, matrix: { w: [1, 2] }, params: { cmd: x, outs: [o.txt] } }\n",
        &["`a@w=1` and `a@w=2`", "o.txt"],
    );
}

#[test]
fn deps_never_name_pipes_own_folders() {
    for (dep, needle) in [
        (".", "project root"),
        ("cache", "`cache/`"),
        ("results/ci", "`results/`"),
        ("./checkpoints", "`checkpoints/`"),
    ] {
        let pl = format!(
            "stages:\n  a:\n    kind: command\n    params: {{ cmd: x, deps: [\"{dep}\"] }}\n"
        );
        reject(
            &format!("deps {dep}"),
            &pl,
            &["p.yaml:4:", "stage `a`", needle, "dependency"],
        );
    }
}

#[test]
fn matrix_values_and_stage_names_are_safe() {
    reject(
        "matrix value with a path",
        "stages:\n  a:\n    kind: command\n    matrix: { p: [x, \"x/../../outside/victim\"] }\n    params: { cmd: \"echo > $PIPE_OUT/f\" }\n",
        &["p.yaml:4:", "stage `a`", "matrix key `p`", "`x/../../outside/victim`", "path separator"],
    );
    reject(
        "matrix value with a newline",
        "stages:\n  a: { kind: command, matrix: { p: [\"a\\nb\"] }, params: { cmd: x } }\n",
        &["stage `a`", "matrix key `p`", "a\\nb", "control character"],
    );
    reject(
        "stage ..",
        "stages:\n  ..: { kind: command, params: { cmd: x } }\n",
        &["p.yaml:2:", "stage `..`", "`.` or `..`"],
    );
    reject(
        "stage .",
        "stages:\n  .: { kind: command, params: { cmd: x } }\n",
        &["p.yaml:2:", "stage `.`", "`.` or `..`"],
    );
    reject(
        "stage with a newline",
        "stages:\n  \"a\\nb\": { kind: command, params: { cmd: x } }\n",
        &["stage `a\\nb`", "control character"],
    );
    let long = "s".repeat(300);
    reject(
        "300-character name",
        &format!("stages:\n  {long}: {{ kind: command, params: {{ cmd: x }} }}\n"),
        &["p.yaml:2:", "longer than 200 bytes"],
    );
    // A long matrix value makes an id over the limit even when each part is fine.
    let v = "v".repeat(150);
    reject(
        "long id",
        &format!("stages:\n  stage_{v}: {{ kind: command, matrix: {{ k: [{v}] }}, params: {{ cmd: x }} }}\n"),
        &["p.yaml:2:", "instance id", "at most 200 bytes"],
    );
}

#[test]
fn symlinked_parent_folders_are_refused() {
    let p = project("stages:\n  a: { kind: command, params: { cmd: \"echo x > ext/out.txt\", outs: [ext/out.txt] } }\n");
    std::os::unix::fs::symlink(p.tmp().join("outside/victim"), p.root().join("ext")).unwrap();
    rejected(
        &p,
        "symlinked parent",
        &[],
        &[],
        &["stage `a`", "`ext`", "symbolic link"],
        &[],
    );
}

const TRAIN: &str = "stages:\n  tok: { kind: tokenize }\n  x:\n    kind: train\n    needs: [tok]\n    params: { epochs: 1, lr: 0.001 }\n";

#[test]
fn bad_values_are_blamed_on_their_source() {
    let p = project(TRAIN);
    rejected(
        &p,
        "--set",
        &["--set", "x.lr=abc"],
        &[],
        &["--set x.lr=abc:", "stage `x@epoch=1`", "`lr`"],
        &["p.yaml"],
    );
    rejected(
        &p,
        "env",
        &[],
        &[("PIPE_X__LR", "abc")],
        &["PIPE_X__LR=abc:", "`lr`"],
        &["p.yaml"],
    );
    p.write("pf.yaml", "# overrides\nx:\n  lr: abc\n");
    rejected(
        &p,
        "--params",
        &["--params", "pf.yaml"],
        &[],
        &["pf.yaml:3:3:", "`lr`"],
        &["p.yaml"],
    );
    rejected(
        &p,
        "--set nan",
        &["--set", "x.lr=.nan"],
        &[],
        &["--set x.lr=.nan:", "must be a finite number"],
        &["p.yaml", "null"],
    );
    rejected(
        &p,
        "unknown env key",
        &[],
        &[("PIPE_X__LRR", "1")],
        &[
            "PIPE_X__LRR=1:",
            "unknown parameter `lrr`",
            "did you mean `lr`?",
        ],
        &[],
    );
    let p = project(&TRAIN.replace("lr: 0.001", "lr: .nan"));
    rejected(
        &p,
        ".nan",
        &[],
        &[],
        &["p.yaml:6:", "`lr` must be a finite number (got .nan)"],
        &["null"],
    );
    let p = project(&TRAIN.replace("lr: 0.001", "lr: -.inf"));
    rejected(
        &p,
        "-.inf",
        &[],
        &[],
        &["p.yaml:6:", "must be a finite number"],
        &[],
    );
    // A value from the pipeline file is still blamed on its line.
    let p = project(&TRAIN.replace("lr: 0.001", "lr: abc"));
    rejected(&p, "file", &[], &[], &["p.yaml:6:", "`lr`"], &[]);
}

#[test]
fn suggestions_only_for_close_names() {
    let p = project("stages:\n  train: { kind: command, params: { cmd: x } }\n  tokenize: { kind: command, params: { cmd: x } }\n");
    rejected(
        &p,
        "--only nosuch",
        &["--only", "nosuch"],
        &[],
        &["nosuch"],
        &["did you mean"],
    );
    rejected(
        &p,
        "--only trian",
        &["--only", "trian"],
        &[],
        &["did you mean `train`?"],
        &[],
    );
    rejected(
        &p,
        "--set nosuch",
        &["--set", "nosuch.cmd=1"],
        &[],
        &["no stage `nosuch`"],
        &["did you mean"],
    );
}

#[test]
fn two_files_claiming_one_name() {
    let p = project("name: n\nstages:\n  a: { kind: command, params: { cmd: x } }\n");
    p.write(
        "pipelines/q.yml",
        "# copy\nname: \"n\"  # same\nstages:\n  a: { kind: command, params: { cmd: y } }\n",
    );
    rejected(
        &p,
        "same name",
        &[],
        &[],
        &["pipelines/p.yaml", "pipelines/q.yml", "`n`"],
        &[],
    );
    // By default a file's name is its stem.
    let p = project("name: q\nstages:\n  a: { kind: command, params: { cmd: x } }\n");
    p.write(
        "pipelines/q.yaml",
        "stages:\n  a: { kind: command, params: { cmd: y } }\n",
    );
    rejected(&p, "stem", &[], &[], &["pipelines/q.yaml", "`q`"], &[]);
    // A params file beside the pipelines is not a pipeline.
    let p = project("name: q\nstages:\n  a: { kind: command, params: { cmd: \"true\" } }\n");
    p.write("pipelines/q.yaml", "a: { cmd: y }\n");
    let o = p.pipe(&["graph", "pipelines/p.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn graph_formats() {
    let p = project("name: g\nstages:\n  fetch: { kind: command, params: { cmd: x } }\n  use: { kind: command, needs: [fetch], matrix: { w: [10, 5] }, params: { cmd: x } }\n");
    let dot = stdout(&p.pipe(&["graph", "pipelines/p.yaml", "--format", "dot"]));
    assert!(dot.starts_with("digraph {"), "{dot}");
    assert!(
        dot.contains("rankdir=\"LR\"") || dot.contains("rankdir=LR"),
        "{dot}"
    );
    assert!(dot.contains("label = \"fetch\\lcommand\""), "{dot}");
    assert!(!dot.contains("\\\\"), "no doubled backslash: {dot}");
    assert!(dot.contains("0 -> 1") && dot.contains("0 -> 2"), "{dot}");
    let o = p.pipe(&["graph", "pipelines/p.yaml", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["pipeline"], "g");
    let ids: Vec<&str> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["fetch", "use@w=5", "use@w=10"]);
    assert_eq!(v["nodes"][1]["stage"], "use");
    assert_eq!(v["nodes"][1]["kind"], "command");
    assert_eq!(
        v["edges"][0],
        serde_json::json!({"from": "fetch", "to": "use@w=5"})
    );
    assert_eq!(v["edges"].as_array().unwrap().len(), 2);
    let same = p.pipe(&["graph", "pipelines/p.yaml", "--format", "json"]);
    assert_eq!(same.stdout, o.stdout);
}
