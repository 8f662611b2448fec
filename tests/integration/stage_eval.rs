//! Every evaluation stage kind on a tiny random model with hand-built stage contexts.

use crate::support::*;
use pipe::stage::{beam_eval::BeamEval, beam_report::BeamReport, infer::Infer, kv_eval::KvEval};
use pipe::stage::{StageKind, Upstream};
use serde_json::json;

fn read_json(p: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn infer_writes_metrics_samples_and_attention_maps() {
    let f = fixture(12);
    let p = params(&Infer, json!({"samples": 6, "max_valid_docs": 0}));
    let c = ctx(f.dir.path(), "infer", "infer", &Infer, p, upstreams(&f));
    Infer.run(&c).unwrap();
    let m = read_json(&c.out_dir.join("metrics.json"));
    for k in [
        "perplexity",
        "perplexity_seed",
        "bleu",
        "bleu_sentence_mean",
    ] {
        let x = m[k].as_f64().unwrap_or_else(|| panic!("{k}"));
        assert!(x.is_finite() && x >= 0.0, "{k} = {x}");
    }
    assert_eq!(m["samples"], 6);
    let ppl = m["perplexity"].as_f64().unwrap();
    assert!(ppl > 1.0 && ppl < 1e4);
    assert!(m["bleu"].as_f64().unwrap() <= 100.0);
    let md = std::fs::read_to_string(c.out_dir.join("samples.md")).unwrap();
    assert_eq!(
        md.lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| doc"))
            .count(),
        6
    );
    for l in 0..2 {
        for s in [
            "there_was_a_brave_explorer_he_wanted_to_explore",
            "there_was_a_little_girl_she_was_so_small",
        ] {
            let path = c.out_dir.join(format!("attention/layer_{l}_{s}.png"));
            let (w, h) = png_size(&path);
            assert!(w > 100 && h > 100);
        }
    }
    // Perplexity equals `pipe score`'s definition over the same documents.
    let ck = pipe::model::Checkpoint::load(&f.ckpt).unwrap();
    let valid = pipe::text::TokenFile::load(&f.tokenize.join("valid")).unwrap();
    let s = pipe::decode::score_documents(&ck.weights, valid.docs(), 1, |_| {});
    assert!((s.perplexity() - ppl).abs() < 1e-9);
    // Same seed, same outputs.
    let c2 = ctx(
        f.dir.path(),
        "infer",
        "infer",
        &Infer,
        c.params.clone(),
        upstreams(&f),
    );
    let _ = std::fs::remove_dir_all(&c.out_dir);
    Infer.run(&c2).unwrap();
    assert_eq!(
        std::fs::read_to_string(c2.out_dir.join("samples.md")).unwrap(),
        md
    );
}

#[test]
fn infer_refuses_checkpoint_of_another_vocabulary() {
    let f = fixture(8);
    std::fs::write(
        &f.vocab,
        "{\"tokens\":[\"<sos>\",\"<eos>\",\"<pad>\",\"<unk>\",\"x\"]}",
    )
    .unwrap();
    let p = params(&Infer, json!({"samples": 2}));
    let c = ctx(f.dir.path(), "infer", "infer", &Infer, p, upstreams(&f));
    let e = format!("{:#}", Infer.run(&c).unwrap_err());
    assert!(e.contains("different vocabulary"), "{e}");
}

#[test]
fn kv_eval_identical_tokens_and_small_logit_diff() {
    let f = fixture(6);
    let p = params(
        &KvEval,
        json!({"batch": 3, "new_tokens": 20, "sweep_new_tokens": [5, 30]}),
    );
    let c = ctx(
        f.dir.path(),
        "kv-eval",
        "kv-eval",
        &KvEval,
        p,
        upstreams(&f),
    );
    KvEval.run(&c).unwrap();
    let m = read_json(&c.out_dir.join("metrics.json"));
    assert_eq!(m["identical"], true);
    assert!(m["max_abs_logit_diff"].as_f64().unwrap() < 1e-4);
    assert!(m.get("speedup").is_none(), "speeds are measurements");
    let meas = read_json(&c.meas_dir.join("measurements.json"));
    assert!(meas["speedup"].as_f64().unwrap() > 0.0);
    let csv = std::fs::read_to_string(c.meas_dir.join("kv_cache.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "new_tokens,batch,prompt_len,mode,run,tokens_per_s,wall_s"
    );
    assert_eq!(lines.count(), 18); // 3 lengths × 2 modes × 3 repeats
    assert_eq!(png_size(&c.meas_dir.join("kv_cache.png")), (900, 560));
    let files = |d: &std::path::Path| {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    assert_eq!(files(&c.out_dir), ["metrics.json"]);
}

/// Runs one beam-eval instance into `root` and returns every output file's bytes by name.
fn beam_eval_outputs(f: &Fixture, root: &std::path::Path, bw: usize) -> Vec<(String, Vec<u8>)> {
    let p = params(
        &BeamEval,
        json!({"beam_width": bw, "prompts": 3, "prompt_len": 4, "max_new": 8}),
    );
    let mut c = ctx(root, "beam-eval", "beam-eval", &BeamEval, p, upstreams(f));
    c.out_dir = root.join("out");
    c.meas_dir = root.join("meas");
    BeamEval.run(&c).unwrap();
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&c.out_dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn beam_eval_outputs_are_byte_identical_across_runs() {
    let f = fixture(8);
    for bw in [0usize, 3] {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (x, y) = (
            beam_eval_outputs(&f, a.path(), bw),
            beam_eval_outputs(&f, b.path(), bw),
        );
        let names: Vec<&str> = x.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, ["metrics.json", "outputs.json", "outputs.md"]);
        assert!(x == y, "beam_width {bw}: two runs wrote different outputs");
        for (name, bytes) in &x {
            let text = String::from_utf8_lossy(bytes);
            assert!(
                !text.contains("tokens_per_s") && !text.contains("tokens/s"),
                "{name} holds a speed"
            );
        }
        assert!(a.path().join("meas/measurements.json").exists());
    }
}

#[test]
fn beam_eval_sweep_and_report() {
    let f = fixture(10);
    let mut ups: Vec<Upstream> = Vec::new();
    for bw in [0usize, 1, 3] {
        let id = format!("beam-eval@beam_width={bw}");
        let p = params(
            &BeamEval,
            json!({"beam_width": bw, "prompts": 3, "prompt_len": 4, "max_new": 8}),
        );
        let c = ctx(
            f.dir.path(),
            &id,
            "beam-eval",
            &BeamEval,
            p.clone(),
            upstreams(&f),
        );
        BeamEval.run(&c).unwrap();
        materialise(&c);
        let m = read_json(&c.out_dir.join("metrics.json"));
        assert_eq!(m["beam_width"], bw);
        assert_eq!(m["method"], if bw == 0 { "sampling" } else { "beam" });
        let b = m["bleu"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&b));
        let meas = read_json(&c.meas_dir.join("measurements.json"));
        assert!(meas["tokens_per_s"].as_f64().unwrap() > 0.0);
        let md = std::fs::read_to_string(c.out_dir.join("outputs.md")).unwrap();
        assert_eq!(md.matches("\n| ").count(), 4); // header + 3 prompts
        ups.push(Upstream {
            params: p,
            fingerprint: bw.to_string(),
            duration_s: Some(0.1),
            ..upstream(
                &id,
                "beam-eval",
                c.out_dir.clone(),
                f.dir.path().join("none"),
            )
        });
    }
    // Width 1 is greedy: same output as `pipe generate`-style greedy decoding on those prompts.
    let p = params(&BeamReport, json!({}));
    let c = ctx(
        f.dir.path(),
        "beam-report",
        "beam-report",
        &BeamReport,
        p,
        ups,
    );
    BeamReport.run(&c).unwrap();
    let csv = std::fs::read_to_string(c.out_dir.join("comparison.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "method,beam_width,bleu,bleu_sentence_mean,tokens_per_s,speed_vs_sampling"
    );
    assert_eq!(lines.len(), 4);
    assert!(lines[1].starts_with("sampling,0,") && lines[1].ends_with(",1.0000"));
    assert!(lines[3].starts_with("beam,3,"));
    let md = std::fs::read_to_string(c.out_dir.join("comparison.md")).unwrap();
    assert!(md.contains("| beam 3 |"));
    assert_eq!(png_size(&c.out_dir.join("comparison.png")), (800, 500));
}

#[test]
fn params_are_checked_with_named_keys() {
    let bad = |k: &dyn StageKind, v: serde_json::Value| {
        let mut p = params(k, json!({}));
        for (a, b) in v.as_object().unwrap() {
            p[a] = b.clone();
        }
        k.check(&p).unwrap_err()
    };
    assert!(bad(&Infer, json!({"samples": 0})).contains("samples"));
    assert!(bad(&Infer, json!({"bogus": 1})).contains("bogus"));
    assert!(bad(&KvEval, json!({"batch": 0})).contains("batch"));
    assert!(bad(&BeamEval, json!({"alpha": -1.0})).contains("alpha"));
    assert!(bad(&BeamEval, json!({"temperature": -1.0})).contains("temperature"));
}

#[test]
fn beam_report_shows_one_column_per_swept_key() {
    let f = fixture(8);
    let mut ups: Vec<Upstream> = Vec::new();
    for alpha in [0.0f32, 1.0] {
        let id = format!("beam-eval@alpha={alpha}@beam_width=2");
        let p = params(
            &BeamEval,
            json!({"beam_width": 2, "alpha": alpha, "prompts": 2, "prompt_len": 4, "max_new": 6}),
        );
        let c = ctx(
            f.dir.path(),
            &id,
            "beam-eval",
            &BeamEval,
            p.clone(),
            upstreams(&f),
        );
        BeamEval.run(&c).unwrap();
        materialise(&c);
        ups.push(Upstream {
            params: p,
            fingerprint: alpha.to_string(),
            ..upstream(
                &id,
                "beam-eval",
                c.out_dir.clone(),
                f.dir.path().join("none"),
            )
        });
    }
    let c = ctx(
        f.dir.path(),
        "beam-report",
        "beam-report",
        &BeamReport,
        params(&BeamReport, json!({})),
        ups,
    );
    BeamReport.run(&c).unwrap();
    let csv = std::fs::read_to_string(c.out_dir.join("comparison.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "method,beam_width,alpha,bleu,bleu_sentence_mean,tokens_per_s,speed_vs_sampling"
    );
    assert!(
        lines[1].starts_with("beam,2,0,") && lines[2].starts_with("beam,2,1,"),
        "{csv}"
    );
    let md = std::fs::read_to_string(c.out_dir.join("comparison.md")).unwrap();
    assert!(
        md.contains("| beam 2, alpha 0 |") && md.contains("| beam 2, alpha 1 |"),
        "{md}"
    );
    assert_eq!(png_size(&c.out_dir.join("speed.png")), (800, 500));
}
