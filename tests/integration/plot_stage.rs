//! The `plot` stage kind on generated train outputs: draws both figures, rejects bad params and
//! names the missing file.

use crate::support::*;
use pipe::stage::{plot::Plot, StageCtx, StageKind, Upstream};
use std::path::{Path, PathBuf};

fn defaults() -> serde_json::Value {
    params(&Plot, serde_json::json!({}))
}

fn train_upstream(results: PathBuf) -> Upstream {
    Upstream {
        params: serde_json::json!({"epoch": 3}),
        fingerprint: "ab".repeat(32),
        duration_s: Some(12.5),
        ..upstream(
            "train@epoch=3",
            "train",
            results.clone(),
            results.join("ckpt"),
        )
    }
}

fn ctx(root: &Path, upstream: Vec<Upstream>, params: serde_json::Value) -> StageCtx {
    CtxBuilder::new(root, &Plot)
        .pipeline("test", 1)
        .params(params)
        .upstream(upstream)
        .flat()
        .build()
}

/// Writes train's cumulative metrics.csv (3 epochs × 40 steps) and epochs.csv.
fn write_train_outputs(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut m = String::from("step,epoch,train_loss,lr\n");
    for step in 1..=120u32 {
        let epoch = (step - 1) / 40 + 1;
        let loss =
            2.2 + 4.0 * (-(step as f64) / 25.0).exp() + 0.1 * ((step * 7 % 11) as f64 / 11.0);
        m += &format!("{step},{epoch},{loss:.4},0.0003\n");
    }
    std::fs::write(dir.join("metrics.csv"), m).unwrap();
    std::fs::write(
        dir.join("epochs.csv"),
        "epoch,train_loss,val_loss,val_perplexity\n1,2.509,2.124,8.41\n2,2.366,2.05,7.77\n3,2.307,2.01,7.49\n",
    )
    .unwrap();
}

#[test]
fn draws_training_curves_from_train_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let train_dir = tmp.path().join("results/train");
    write_train_outputs(&train_dir);
    let params = defaults();
    Plot.check(&params).unwrap();
    let c = ctx(tmp.path(), vec![train_upstream(train_dir)], params);
    Plot.run(&c).unwrap();
    assert_eq!(
        png_size(&c.out_dir.join("training_curves.png")),
        (1400, 560)
    );
    let svg = std::fs::read_to_string(c.out_dir.join("training_curves.svg")).unwrap();
    for text in [
        "Training curves (train)",
        "Validation perplexity",
        "7.49",
        "EMA 0.9",
        "epoch",
    ] {
        assert!(svg.contains(text), "`{text}` missing from the SVG");
    }
    if let Some(keep) = std::env::var_os("PIPE_PLOT_OUT") {
        std::fs::copy(
            c.out_dir.join("training_curves.png"),
            Path::new(&keep).join("stage_training_curves.png"),
        )
        .unwrap();
    }
}

#[test]
fn bad_params_name_the_key() {
    let mut p = defaults();
    p["smoothing"] = serde_json::json!(1.5);
    assert!(Plot.check(&p).unwrap_err().contains("smoothing"));
    let mut p = defaults();
    p["width"] = serde_json::json!(10);
    assert!(Plot.check(&p).unwrap_err().contains("width"));
    let mut p = defaults();
    p["smoothin"] = serde_json::json!(0.5);
    assert!(Plot.check(&p).unwrap_err().contains("smoothin"));
}

#[test]
fn missing_inputs_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let c = ctx(tmp.path(), vec![], defaults());
    let e = Plot.run(&c).unwrap_err().to_string();
    assert!(e.contains("train"), "{e}");
    let empty = tmp.path().join("results/train");
    std::fs::create_dir_all(&empty).unwrap();
    let c = ctx(tmp.path(), vec![train_upstream(empty)], defaults());
    let e = format!("{:#}", Plot.run(&c).unwrap_err());
    assert!(e.contains("metrics.csv"), "{e}");
}

#[test]
fn diverged_validation_still_draws() {
    let tmp = tempfile::tempdir().unwrap();
    let train_dir = tmp.path().join("results/train");
    write_train_outputs(&train_dir);
    std::fs::write(
        train_dir.join("epochs.csv"),
        "epoch,train_loss,val_loss,val_perplexity\n1,NaN,NaN,NaN\n",
    )
    .unwrap();
    let c = ctx(tmp.path(), vec![train_upstream(train_dir)], defaults());
    Plot.run(&c).unwrap();
    let svg = std::fs::read_to_string(c.out_dir.join("training_curves.svg")).unwrap();
    assert!(svg.contains("no finite values to draw"));
}
