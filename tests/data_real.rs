//! Manual check on the real development data (ignored by default; needs ../shared/data):
//! fetch through the mirror, tokenize and SGNS at 300 dimensions, printing the timings.
//! `cargo test --release --test data_real -- --ignored --nocapture`

mod common;
use common::CtxBuilder;
use pipe::progress::Reporter;
use pipe::stage::{embed::Embed, fetch::Fetch, tokenize::Tokenize, StageCtx, StageKind, Upstream};
use std::path::Path;
use std::time::Instant;

fn defaults(k: &dyn StageKind) -> serde_json::Value {
    serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(k.info().defaults_yaml).unwrap())
        .unwrap()
}

fn ctx(
    root: &Path,
    k: &dyn StageKind,
    id: &str,
    params: serde_json::Value,
    up: Vec<Upstream>,
) -> StageCtx {
    let mut p = defaults(k);
    for (key, v) in params.as_object().unwrap() {
        p[key] = v.clone();
    }
    k.check(&p).unwrap();
    let out = root.join(id);
    std::fs::create_dir_all(&out).unwrap();
    CtxBuilder::new(root, k)
        .id(id)
        .pipeline("real", 100)
        .params(p)
        .upstream(up)
        .out_dir(out)
        .ckpt_dir(root.join("ckpt"))
        .meas_dir(root.join("meas"))
        .threads(2)
        .reporter(Reporter::new(id, None, true).unwrap())
        .build()
}

fn up(c: &StageCtx) -> Upstream {
    Upstream {
        id: c.id.clone(),
        stage: c.stage.clone(),
        kind: c.kind.clone(),
        results: c.out_dir.clone(),
        checkpoints: c.ckpt_dir.clone(),
        params: c.params.clone(),
        fingerprint: "0".into(),
        duration_s: None,
    }
}

#[test]
#[ignore]
fn tinystories_head_through_mirror_tokenize_and_sgns() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    let data = if data.exists() {
        data
    } else {
        Path::new("/work/shared/data").to_path_buf()
    };
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let mut f = ctx(
        dir.path(),
        &Fetch,
        "data",
        serde_json::json!({
        "url": "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/TinyStories-train.txt",
        "bytes": 2097152,
        "blake3": "7aef14155595b58ed029a831dbb29992fa264a22d19f246c31d0848babc7016f"}),
        vec![],
    );
    f.mirrors = vec![data.clone()];
    Fetch.run(&f).unwrap();
    eprintln!("fetch (mirror): {:.2} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let tk = ctx(
        dir.path(),
        &Tokenize,
        "tokenize",
        serde_json::json!({"valid_fraction": 0.1}),
        vec![up(&f)],
    );
    Tokenize.run(&tk).unwrap();
    eprintln!("tokenize: {:.3} s", t.elapsed().as_secs_f64());
    eprintln!(
        "{}",
        std::fs::read_to_string(tk.out_dir.join("stats.json")).unwrap()
    );
    let t = Instant::now();
    let e = ctx(
        dir.path(),
        &Embed,
        "embed",
        {
            let mut p = serde_json::json!({"method": "sgns", "dim": 300});
            for k in ["shards", "epochs", "round_tokens"] {
                if let Ok(v) = std::env::var(format!("SGNS_{}", k.to_uppercase())) {
                    p[k] = serde_json::json!(v.parse::<u64>().unwrap());
                }
            }
            p
        },
        vec![up(&tk)],
    );
    Embed.run(&e).unwrap();
    eprintln!("sgns 300d: {:.1} s", t.elapsed().as_secs_f64());
    eprintln!(
        "{}",
        std::fs::read_to_string(e.out_dir.join("coverage.json")).unwrap()
    );
    // Nearest neighbours of a few words, as a sanity check.
    let v = pipe::text::Vocab::load(&tk.out_dir.join("vocab.json")).unwrap();
    let w =
        pipe::model::checkpoint::read_tensors(&e.out_dir.join("embedding.safetensors")).unwrap();
    let (shape, m) = &w["tok_emb.weight"];
    let d = shape[1];
    let row = |i: usize| &m[i * d..(i + 1) * d];
    let norm = |a: &[f32]| a.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-9);
    for word in ["dog", "happy", "mom", "red", "ran"] {
        let i = v.id(word) as usize;
        let mut sims: Vec<(f32, usize)> = (4..v.len())
            .filter(|&j| j != i)
            .map(|j| {
                let s: f32 = row(i).iter().zip(row(j)).map(|(a, b)| a * b).sum();
                (s / (norm(row(i)) * norm(row(j))), j)
            })
            .collect();
        sims.sort_by(|a, b| b.0.total_cmp(&a.0));
        let near: Vec<&str> = sims[..6].iter().map(|&(_, j)| v.token(j as u32)).collect();
        eprintln!("{word}: {near:?}");
    }
    let t = Instant::now();
    let g = ctx(
        dir.path(),
        &Embed,
        "glove",
        serde_json::json!({"method": "vectors", "dim": 50,
        "path": data.join("vectors/glove.6B.50d.top100k.vec.gz").to_string_lossy()}),
        vec![up(&tk)],
    );
    Embed.run(&g).unwrap();
    eprintln!("glove 50d load: {:.2} s", t.elapsed().as_secs_f64());
    eprintln!(
        "{}",
        std::fs::read_to_string(g.out_dir.join("coverage.json")).unwrap()
    );
}
