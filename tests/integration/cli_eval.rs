//! The real `pipe` executable: `eval bleu`, `score`, `generate`.

use crate::support::*;
use pipe::model::{Checkpoint, Weights};

/// `pipe ARGS` (every path given is absolute): (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let d = tempfile::tempdir().unwrap();
    let o = pipe(d.path(), args);
    (code(&o).unwrap_or(-1), stdout(&o), stderr(&o))
}

#[test]
fn eval_bleu_prints_json_and_rejects_mismatched_files() {
    let d = tempfile::tempdir().unwrap();
    let hyp = d.path().join("hyp.txt");
    let r1 = d.path().join("r1.txt");
    let r2 = d.path().join("r2.txt");
    std::fs::write(&hyp, "the cat is on the mat\nhello there world\n").unwrap();
    std::fs::write(&r1, "the cat sat on the mat\nhello world\n").unwrap();
    std::fs::write(&r2, "a cat is on the mat\nwell hello there world\n").unwrap();
    let (code, out, err) = run(&[
        "eval",
        "bleu",
        "--hyp",
        hyp.to_str().unwrap(),
        "--ref",
        r1.to_str().unwrap(),
        "--ref",
        r2.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!((v["score"].as_f64().unwrap() - 85.45740127924681).abs() < 1e-9);
    assert_eq!(v["hyp_len"], 9);
    assert_eq!(v["ref_len"], 8);
    assert_eq!(v["precisions"].as_array().unwrap().len(), 4);
    for k in ["bp", "ratio", "sentence_mean"] {
        assert!(v[k].is_number(), "{k}");
    }
    let short = d.path().join("short.txt");
    std::fs::write(&short, "one line\n").unwrap();
    let (code, _, err) = run(&[
        "eval",
        "bleu",
        "--hyp",
        hyp.to_str().unwrap(),
        "--ref",
        short.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("lines"), "{err}");
    let (code, _, err) = run(&[
        "eval",
        "bleu",
        "--hyp",
        hyp.to_str().unwrap(),
        "--ref",
        r1.to_str().unwrap(),
        "--tokenize",
        "intl",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("--tokenize"), "{err}");
}

#[test]
fn score_uniform_model_gives_vocab_size_perplexity() {
    // All-zero weights: every logit is 0, so each prediction costs exactly ln V.
    let f = fixture(2);
    let cfg = tiny_config(24);
    let zp = f.dir.path().join("zero.safetensors");
    let vocab_blake3 = blake3::hash(&std::fs::read(&f.vocab).unwrap()).to_hex();
    save_checkpoint(&zp, Weights::zeros(&cfg), cfg, vocab_blake3.as_str());
    let text = f.dir.path().join("t.txt");
    // 3 + 22 words; framed 5 and 24 tokens → 4 + 23 = 27 predictions (the second spans two
    // windows of context 16), the blank line is skipped.
    std::fs::write(
        &text,
        "The dog ran!\n\nthere was a little girl she was so small the dog ran home and played to explore a brave explorer he wanted\n",
    )
    .unwrap();
    let (code, out, err) = run(&[
        "score",
        "--checkpoint",
        zp.to_str().unwrap(),
        "--vocab",
        f.vocab.to_str().unwrap(),
        "--text",
        text.to_str().unwrap(),
        "--threads",
        "1",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["tokens"], 27);
    assert!((v["nll"].as_f64().unwrap() - 27.0 * 24f64.ln()).abs() < 1e-3);
    assert!((v["perplexity"].as_f64().unwrap() - 24.0).abs() < 1e-3);
}

#[test]
fn score_random_model_matches_hand_computed_windows() {
    let f = fixture(2);
    let text = f.dir.path().join("t.txt");
    std::fs::write(&text, "there was a little girl she was so small the dog ran home and played to explore a brave explorer\n").unwrap();
    let (code, out, err) = run(&[
        "score",
        "--checkpoint",
        f.ckpt.to_str().unwrap(),
        "--vocab",
        f.vocab.to_str().unwrap(),
        "--text",
        text.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // By hand: framed 22 tokens, context 16 → windows [0, 16) and [15, 22), each a separate
    // input at positions 0…; NLL = Σ (logsumexp(row) − row[target]).
    let ck = Checkpoint::load(&f.ckpt).unwrap();
    let vocab = pipe::text::Vocab::load(&f.vocab).unwrap();
    let mut seq = vec![0u32];
    seq.extend(vocab.encode(&std::fs::read_to_string(&text).unwrap()));
    seq.push(1);
    assert_eq!(seq.len(), 22);
    let mut nll = 0.0f64;
    for (s, e) in [(0usize, 16usize), (15, 22)] {
        let win = &seq[s..e];
        let lg = pipe::decode::forward(&ck.weights, &win[..win.len() - 1], 0, 1);
        for i in 0..win.len() - 1 {
            let row = &lg[i * 24..(i + 1) * 24];
            let m = row.iter().cloned().fold(f32::MIN, f32::max) as f64;
            let lse = m + row.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln();
            nll += lse - row[win[i + 1] as usize] as f64;
        }
    }
    assert_eq!(v["tokens"], 21);
    assert!((v["nll"].as_f64().unwrap() - nll).abs() < 1e-3);
    assert!((v["perplexity"].as_f64().unwrap() - (nll / 21.0).exp()).abs() < 1e-3);
}

#[test]
fn generate_samples_beams_and_refuses_wrong_vocab() {
    let f = fixture(2);
    let ck = f.ckpt.to_str().unwrap();
    let vo = f.vocab.to_str().unwrap();
    let generate = |extra: &[&str]| {
        let mut a = vec![
            "generate",
            "--checkpoint",
            ck,
            "--vocab",
            vo,
            "--prompt",
            "there was a",
        ];
        a.extend_from_slice(extra);
        run(&a)
    };
    let (code, out1, err) = generate(&["--seed", "3", "--max-new", "12"]);
    assert_eq!(code, 0, "{err}");
    let (_, out2, _) = generate(&["--seed", "3", "--max-new", "12"]);
    assert_eq!(out1, out2);
    let n = out1.split_whitespace().count();
    assert!(n <= 12);
    assert!(
        out1.split_whitespace()
            .all(|w| WORDS.contains(&w) || w == "<unk>"),
        "{out1}"
    );
    let (code, out, err) = generate(&["--top-k", "3", "--top-p", "0.9", "--temperature", "1.2"]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("<sos>") && !out.contains("<pad>"));
    let (code, _, err) = generate(&["--beam", "3", "--max-new", "8"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = generate(&["--beam", "3", "--temperature", "0.5"]);
    assert_eq!(code, 2, "{err}");
    let other = f.dir.path().join("other.json");
    std::fs::write(
        &other,
        "{\"tokens\":[\"<sos>\",\"<eos>\",\"<pad>\",\"<unk>\",\"x\"]}",
    )
    .unwrap();
    let (code, _, err) = run(&[
        "generate",
        "--checkpoint",
        ck,
        "--vocab",
        other.to_str().unwrap(),
        "--prompt",
        "a",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("different vocabulary"), "{err}");
}
