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
