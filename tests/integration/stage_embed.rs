//! Integration tests of the `embed` stage kind and the embedding library: pretrained vectors in
//! every supported layout, and SGNS on a generated corpus.

use crate::support::*;
use pipe::embedding::{load_vectors, train_sgns, SgnsConfig};
use pipe::stage::embed::Embed;
use pipe::stage::{StageCtx, StageKind, Upstream};
use pipe::text::{TokenFile, Vocab, PAD};
use std::io::Write;
use std::path::Path;

fn vocab() -> Vocab {
    Vocab::from_words(["the", "cat", "dog", "zebra"].map(String::from))
}

const VECS: &str = "the 0.1 0.2 0.3\nCat 1 2 3\ncat 4 5 6 \nfish 7 8 9\nDog -1 -2 -3\n";

fn check_loaded(path: &Path) {
    let v = vocab();
    let l = load_vectors(path, &v, 5).unwrap();
    let e = &l.embedding;
    assert_eq!(e.dim, 3);
    assert_eq!(l.file_words, 5);
    assert_eq!(e.row(4), &[0.1, 0.2, 0.3]);
    assert_eq!(e.row(5), &[4.0, 5.0, 6.0], "exact match beats case-folded");
    assert_eq!(
        e.row(6),
        &[-1.0, -2.0, -3.0],
        "case-folded match used when no exact one"
    );
    assert_eq!(e.row(PAD as usize), &[0.0, 0.0, 0.0]);
    assert_eq!(
        e.has_vector,
        vec![false, false, false, false, true, true, true, false]
    );
    // Missing words get seeded N(0,1) rows: not zero, reproducible, seed-dependent.
    assert!(e.row(7).iter().any(|&x| x != 0.0));
    assert_eq!(load_vectors(path, &v, 5).unwrap().embedding, l.embedding);
    assert_ne!(
        load_vectors(path, &v, 6).unwrap().embedding.row(7),
        e.row(7)
    );
}

#[test]
fn vectors_plain_with_and_without_header_gz_and_zip() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("a.txt");
    std::fs::write(&plain, VECS).unwrap();
    check_loaded(&plain);
    let header = dir.path().join("b.vec");
    std::fs::write(&header, format!("5 3\n{VECS}")).unwrap();
    check_loaded(&header);
    let gz = dir.path().join("c.vec.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    enc.write_all(format!("5 3\n{VECS}").as_bytes()).unwrap();
    enc.finish().unwrap();
    check_loaded(&gz);
    let zp = dir.path().join("d.zip");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&zp).unwrap());
    let o = zip::write::SimpleFileOptions::default();
    z.start_file("README", o).unwrap();
    z.write_all(b"not vectors").unwrap();
    z.start_file("wiki.vec", o).unwrap();
    z.write_all(VECS.as_bytes()).unwrap();
    z.finish().unwrap();
    check_loaded(&zp);
}

#[test]
fn vectors_errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.vec");
    std::fs::write(&p, "2 3\nthe 1 2 3\ncat 1 2\n").unwrap();
    let e = load_vectors(&p, &vocab(), 1).unwrap_err().to_string();
    assert!(e.contains("bad.vec:3") && e.contains("expected 3"), "{e}");
    std::fs::write(&p, "the 1 x 3\n").unwrap();
    let e = load_vectors(&p, &vocab(), 1).unwrap_err().to_string();
    assert!(e.contains("bad.vec:1") && e.contains("`x`"), "{e}");
    std::fs::write(&p, "\n").unwrap();
    let e = load_vectors(&p, &vocab(), 1).unwrap_err().to_string();
    assert!(e.contains("no word vectors"), "{e}");
    let e = load_vectors(&dir.path().join("none.vec"), &vocab(), 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("none.vec"), "{e}");
}

/// A generated corpus where words of group A co-occur only with each other, and so do words of
/// group B: SGNS must put same-group words closer (cosine) than cross-group words.
fn grouped_corpus(docs: usize) -> (TokenFile, usize) {
    // ids 4..14 group A, 14..24 group B.
    let mut t = TokenFile::new();
    let mut x = 99u64;
    for d in 0..docs {
        let base = if d % 2 == 0 { 4 } else { 14 };
        let doc: Vec<u32> = (0..30)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                base + ((x >> 33) % 10) as u32
            })
            .collect();
        t.push_doc(&doc);
    }
    (t, 24)
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    let d: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    d / (n(a) * n(b))
}

#[test]
fn sgns_puts_cooccurring_words_closer_and_is_deterministic() {
    let (t, v) = grouped_corpus(400);
    let cfg = SgnsConfig {
        dim: 16,
        epochs: 3,
        // Every one of the 20 words is "frequent" here: sub-sampling would drop most tokens.
        subsample: 0.0,
        seed: 7,
        shards: 3,
        round_tokens: 500,
        ..Default::default()
    };
    let mut calls = 0;
    let e = train_sgns(&t, v, &cfg, &mut |done, total| {
        calls += 1;
        assert!(done <= total);
    });
    assert!(calls >= 3);
    let (mut same, mut cross, mut ns, mut nc) = (0f32, 0f32, 0, 0);
    for a in 4..24 {
        for b in (a + 1)..24 {
            let c = cos(e.row(a), e.row(b));
            if (a < 14) == (b < 14) {
                same += c;
                ns += 1;
            } else {
                cross += c;
                nc += 1;
            }
        }
    }
    let (same, cross) = (same / ns as f32, cross / nc as f32);
    assert!(
        same > cross + 0.3,
        "same-group {same} vs cross-group {cross}"
    );
    assert_eq!(e.row(PAD as usize), &[0.0; 16]);
    assert!(
        e.has_vector[0] && e.has_vector[1],
        "framing trains <sos>/<eos>"
    );
    assert!(!e.has_vector[3] && e.has_vector[4]);
    // Deterministic whatever the thread count.
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let e1 = one.install(|| train_sgns(&t, v, &cfg, &mut |_, _| {}));
    assert_eq!(e1, e);
    let e2 = train_sgns(
        &t,
        v,
        &SgnsConfig {
            seed: 8,
            ..cfg.clone()
        },
        &mut |_, _| {},
    );
    assert_ne!(e2, e);
}

fn tokenize_upstream(root: &Path) -> Upstream {
    let up = root.join("tok");
    std::fs::create_dir_all(&up).unwrap();
    let v = Vocab::from_words((0..20).map(|i| format!("w{i}")));
    std::fs::write(up.join("vocab.json"), v.to_json()).unwrap();
    let (t, _) = grouped_corpus(60);
    t.save(&up.join("train")).unwrap();
    upstream("tokenize", "tokenize", up, root.join("none"))
}

/// A context for `embed` with `overrides`, its output folder `root/out` emptied first.
fn ctx(root: &Path, overrides: serde_json::Value, ups: Vec<Upstream>) -> StageCtx {
    let _ = std::fs::remove_dir_all(root.join("out"));
    CtxBuilder::new(root, &Embed)
        .pipeline("t", 1)
        .overrides(&Embed, overrides)
        .upstream(ups)
        .flat()
        .threads(2)
        .build()
}

#[test]
fn stage_sgns_and_vectors_write_embedding_and_coverage() {
    let dir = tempfile::tempdir().unwrap();
    let up = tokenize_upstream(dir.path());
    let c = ctx(
        dir.path(),
        serde_json::json!({"method": "sgns", "dim": 8, "epochs": 1}),
        vec![up.clone()],
    );
    Embed.run(&c).unwrap();
    let t =
        pipe::model::checkpoint::read_tensors(&c.out_dir.join("embedding.safetensors")).unwrap();
    let (shape, data) = &t["tok_emb.weight"];
    assert_eq!(shape, &vec![24, 8]);
    assert!(data[16..24].iter().all(|&x| x == 0.0));
    let cov: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(c.out_dir.join("coverage.json")).unwrap())
            .unwrap();
    assert_eq!(cov["method"], "sgns");
    assert_eq!(cov["types_total"], 20);
    assert_eq!(cov["types_coverage"], 1.0);
    assert_eq!(cov["tokens_coverage"], 1.0);

    // vectors from `path`, via an upstream fetch stage, and a dimension mismatch.
    std::fs::write(dir.path().join("v.vec"), "2 4\nw0 1 2 3 4\nw5 1 1 1 1\n").unwrap();
    let c = ctx(
        dir.path(),
        serde_json::json!({"method": "vectors", "dim": 4, "path": "v.vec"}),
        vec![up.clone()],
    );
    assert_eq!(
        Embed.external_inputs(&c.params),
        vec![std::path::PathBuf::from("v.vec")]
    );
    Embed.run(&c).unwrap();
    let cov: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(c.out_dir.join("coverage.json")).unwrap())
            .unwrap();
    assert_eq!(cov["types_covered"], 2);
    assert!((cov["types_coverage"].as_f64().unwrap() - 0.1).abs() < 1e-12);
    assert_eq!(cov["tokens_total"], 1800);
    assert!(cov["tokens_covered"].as_u64().unwrap() > 0);
    let fetch = dir.path().join("f");
    std::fs::create_dir_all(&fetch).unwrap();
    std::fs::copy(dir.path().join("v.vec"), fetch.join("v.vec")).unwrap();
    std::fs::write(
        fetch.join("fetch.json"),
        r#"{"file": "v.vec", "bytes": 0, "blake3": "x", "source": "v.vec"}"#,
    )
    .unwrap();
    let fu = Upstream {
        id: "vecs".into(),
        stage: "vecs".into(),
        kind: "fetch".into(),
        results: fetch,
        ..up.clone()
    };
    let c = ctx(
        dir.path(),
        serde_json::json!({"method": "vectors", "dim": 4}),
        vec![up.clone(), fu],
    );
    Embed.run(&c).unwrap();
    let c = ctx(
        dir.path(),
        serde_json::json!({"method": "vectors", "dim": 300, "path": "v.vec"}),
        vec![up.clone()],
    );
    let e = Embed.run(&c).unwrap_err().to_string();
    assert!(
        e.contains("4 dimensions") && e.contains("`dim` is 300"),
        "{e}"
    );
    let c = ctx(
        dir.path(),
        serde_json::json!({"method": "vectors", "dim": 4}),
        vec![up.clone()],
    );
    let e = Embed.run(&c).unwrap_err().to_string();
    assert!(e.contains("fetch") && e.contains("`path`"), "{e}");
    let c = ctx(dir.path(), serde_json::json!({"method": "sgns"}), vec![]);
    assert!(Embed.run(&c).unwrap_err().to_string().contains("tokenize"));
    let mut p = c.params.clone();
    p["method"] = serde_json::json!("glove");
    assert!(Embed.check(&p).unwrap_err().contains("glove"));
    p["method"] = serde_json::json!("sgns");
    p["window"] = serde_json::json!(0);
    assert!(Embed.check(&p).unwrap_err().contains("`window`"));
}
