//! The `train` stage run through a hand-built StageCtx on tiny generated tokenize/embed outputs:
//! two chained epoch nodes equal one two-epoch run, and the error cases.

use crate::support::*;
use pipe::model::checkpoint::write_tensors;
use pipe::model::Checkpoint;
use pipe::stage::{train::Train, StageCtx, StageKind, Upstream};
use pipe::text::{TokenFile, Vocab};
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};

pub const V: usize = 30;
pub const DIM: usize = 16;

pub fn params(epoch: Option<usize>) -> serde_json::Value {
    let defaults: serde_yaml::Value =
        serde_yaml::from_str(include_str!("../../stages/train.yaml")).unwrap();
    let mut p = serde_json::to_value(defaults).unwrap();
    let over = serde_json::json!({
        "d_model": DIM, "d_attn": 16, "n_heads": 2, "d_ff": 24, "n_layers": 1,
        "context": 8, "batch_size": 4, "lr": 0.003, "epochs": 2, "eval_batch_size": 3,
    });
    for (k, v) in over.as_object().unwrap() {
        p[k] = v.clone();
    }
    if let Some(e) = epoch {
        p["epoch"] = serde_json::json!(e);
    }
    p
}

/// Writes tokenize outputs (vocab of V tokens, train/valid docs) and an embedding of `dim`
/// columns and `rows` rows under `root`.
pub fn inputs(root: &Path, dim: usize, rows: usize) -> (Upstream, Upstream) {
    let tok = root.join("results/tokenize");
    std::fs::create_dir_all(&tok).unwrap();
    let mut tokens: Vec<String> = ["<sos>", "<eos>", "<pad>", "<unk>"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    tokens.extend((4..V).map(|i| format!("w{i}")));
    let vocab = Vocab::from_tokens(tokens).unwrap();
    std::fs::write(tok.join("vocab.json"), vocab.to_json()).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    for (name, n) in [("train", 18), ("valid", 5)] {
        let mut f = TokenFile::new();
        for _ in 0..n {
            let len = rng.gen_range(3..12);
            let d: Vec<u32> = (0..len).map(|_| rng.gen_range(4..V as u32)).collect();
            f.push_doc(&d);
        }
        f.save(&tok.join(name)).unwrap();
    }
    let emb = root.join("results/embed");
    std::fs::create_dir_all(&emb).unwrap();
    let data: Vec<f32> = (0..rows * dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
    write_tensors(
        &emb.join("embedding.safetensors"),
        &[("tok_emb.weight".into(), vec![rows, dim], &data)],
    )
    .unwrap();
    let up = |stage: &str, dir: PathBuf| Upstream {
        fingerprint: String::new(),
        ..upstream(stage, stage, dir, root.join("none"))
    };
    (up("tokenize", tok), up("embed", emb))
}

pub fn ctx(root: &Path, id: &str, params: serde_json::Value, upstream: Vec<Upstream>) -> StageCtx {
    CtxBuilder::new(root, &Train)
        .id(id)
        .pipeline("p", 5)
        .params(params)
        .upstream(upstream)
        .ckpt_dir(root.join("ckpt").join(id))
        .build()
}

fn node_upstream(root: &Path, id: &str, epoch: usize) -> Upstream {
    Upstream {
        params: params(Some(epoch)),
        fingerprint: String::new(),
        ..upstream(
            id,
            "train",
            root.join("results").join(id),
            root.join("ckpt").join(id),
        )
    }
}

#[test]
fn two_epoch_nodes_equal_one_run_and_write_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (tok, emb) = inputs(root, DIM, V);
    Train.check(&params(Some(1))).unwrap();
    Train
        .run(&ctx(
            root,
            "train@epoch=1",
            params(Some(1)),
            vec![tok.clone(), emb.clone()],
        ))
        .unwrap();
    let prev = node_upstream(root, "train@epoch=1", 1);
    Train
        .run(&ctx(
            root,
            "train@epoch=2",
            params(Some(2)),
            vec![prev.clone(), tok.clone(), emb.clone()],
        ))
        .unwrap();
    Train
        .run(&ctx(
            root,
            "whole",
            params(None),
            vec![tok.clone(), emb.clone()],
        ))
        .unwrap();
    let a = std::fs::read(root.join("ckpt/train@epoch=2/epoch_2.safetensors")).unwrap();
    let b = std::fs::read(root.join("ckpt/whole/epoch_2.safetensors")).unwrap();
    assert!(
        a == b,
        "epoch-by-epoch checkpoint differs from the one-run checkpoint"
    );
    for f in [
        "epoch_2.optim.safetensors",
        "epoch_2.optim.json",
        "epoch_2.json",
    ] {
        assert!(root.join("ckpt/train@epoch=2").join(f).exists(), "{f}");
    }
    // Frozen embeddings are the embed stage's.
    let ck = Checkpoint::load(&root.join("ckpt/train@epoch=2/epoch_2.safetensors")).unwrap();
    let e =
        pipe::model::checkpoint::read_tensors(&root.join("results/embed/embedding.safetensors"))
            .unwrap();
    assert_eq!(ck.weights.tok_emb, e["tok_emb.weight"].1);
    assert_eq!(ck.meta.epoch, 2);
    assert!(ck.meta.metrics.contains_key("val_perplexity"));
    // Cumulative metrics.
    let out = root.join("results/train@epoch=2");
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "step,epoch,train_loss,lr");
    let steps = 2 * 18usize.div_ceil(4);
    assert_eq!(lines.len(), 1 + steps);
    assert!(lines[steps].starts_with(&format!("{steps},2,")));
    let whole_csv = std::fs::read_to_string(root.join("results/whole/metrics.csv")).unwrap();
    assert_eq!(csv, whole_csv);
    // Speeds are measurements of the node: this epoch's steps only.
    let speed = std::fs::read_to_string(root.join("meas/train@epoch=2/speed.csv")).unwrap();
    assert_eq!(speed.lines().next().unwrap(), "step,epoch,tokens_per_s");
    assert_eq!(speed.lines().count(), 1 + steps / 2);
    let meas: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("meas/train@epoch=2/measurements.json")).unwrap(),
    )
    .unwrap();
    assert!(meas["tokens_per_s"].as_f64().unwrap() > 0.0);
    let ep = std::fs::read_to_string(out.join("epochs.csv")).unwrap();
    assert_eq!(ep.lines().count(), 3);
    assert_eq!(
        ep.lines().next().unwrap(),
        "epoch,train_loss,val_loss,val_perplexity"
    );
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(m["epoch"], 2);
    for k in ["train_loss", "val_loss", "val_perplexity", "steps"] {
        assert!(m.get(k).is_some(), "{k}");
    }
    assert!(m.get("tokens_per_s").is_none(), "speeds are measurements");
    assert!(!ck.meta.metrics.contains_key("tokens_per_s"));
    let vl = m["val_loss"].as_f64().unwrap();
    assert!((m["val_perplexity"].as_f64().unwrap() - vl.exp()).abs() < 1e-6);
}

#[test]
fn embedding_dimension_mismatch_names_both_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let (tok, emb) = inputs(dir.path(), 12, V);
    let err = Train
        .run(&ctx(
            dir.path(),
            "train@epoch=1",
            params(Some(1)),
            vec![tok, emb],
        ))
        .unwrap_err()
        .to_string();
    assert!(err.contains("12") && err.contains("16"), "{err}");
}

#[test]
fn embedding_vocabulary_mismatch_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (tok, emb) = inputs(dir.path(), DIM, V + 3);
    let err = Train
        .run(&ctx(
            dir.path(),
            "train@epoch=1",
            params(Some(1)),
            vec![tok, emb],
        ))
        .unwrap_err()
        .to_string();
    assert!(err.contains("33") && err.contains("30"), "{err}");
}

#[test]
fn checkpoint_with_another_vocabulary_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (tok, emb) = inputs(root, DIM, V);
    Train
        .run(&ctx(
            root,
            "train@epoch=1",
            params(Some(1)),
            vec![tok.clone(), emb.clone()],
        ))
        .unwrap();
    // Same size, different words: a different vocabulary hash.
    let mut tokens: Vec<String> = ["<sos>", "<eos>", "<pad>", "<unk>"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    tokens.extend((4..V).map(|i| format!("x{i}")));
    std::fs::write(
        tok.results.join("vocab.json"),
        Vocab::from_tokens(tokens).unwrap().to_json(),
    )
    .unwrap();
    let prev = node_upstream(root, "train@epoch=1", 1);
    let err = Train
        .run(&ctx(
            root,
            "train@epoch=2",
            params(Some(2)),
            vec![prev, tok, emb],
        ))
        .unwrap_err()
        .to_string();
    assert!(err.contains("different vocabulary"), "{err}");
}

#[test]
fn nan_loss_names_the_step_and_bad_params_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (tok, emb) = inputs(dir.path(), DIM, V);
    let mut p = params(None);
    p["lr"] = serde_json::json!(1e30);
    p["grad_clip"] = serde_json::Value::Null;
    p["epochs"] = serde_json::json!(2);
    let err = Train
        .run(&ctx(dir.path(), "train", p, vec![tok, emb]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("at step"), "{err}");
    let mut p = params(Some(1));
    p["schedule"] = serde_json::json!("cosine");
    assert!(Train.check(&p).unwrap_err().contains("schedule_epochs"));
    let mut p = params(Some(1));
    p["n_heads"] = serde_json::json!(3);
    assert!(Train.check(&p).unwrap_err().contains("n_heads"));
    let mut p = params(Some(1));
    p["bogus"] = serde_json::json!(1);
    assert!(Train.check(&p).unwrap_err().contains("bogus"));
}

#[test]
fn a_context_that_cannot_fit_is_a_clear_error_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let (tok, emb) = inputs(dir.path(), DIM, V);
    let mut p = params(Some(1));
    p["context"] = serde_json::json!(1_000_000);
    let err = Train
        .run(&ctx(dir.path(), "train@epoch=1", p, vec![tok, emb]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("needs about") && err.contains("available"),
        "{err}"
    );
    assert!(!dir
        .path()
        .join("ckpt")
        .join("train@epoch=1")
        .join("epoch_1.safetensors")
        .exists());
}
