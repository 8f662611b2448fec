//! Integration tests of the `tokenize` stage kind (built without the engine) and of the
//! streaming corpus library on generated data.

use crate::support::*;
use pipe::stage::tokenize::Tokenize;
use pipe::stage::{StageCtx, StageKind, Upstream};
use pipe::text::{TokenFile, Vocab};
use std::io::Write;
use std::path::Path;

fn defaults() -> serde_json::Value {
    params(&Tokenize, serde_json::json!({}))
}

/// A context for `tokenize` with `overrides`, two threads, outputs in `root/out`.
fn ctx(root: &Path, overrides: serde_json::Value, ups: Vec<Upstream>) -> StageCtx {
    CtxBuilder::new(root, &Tokenize)
        .pipeline("t", 1)
        .overrides(&Tokenize, overrides)
        .upstream(ups)
        .flat()
        .threads(2)
        .build()
}

fn stats(c: &StageCtx) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(c.out_dir.join("stats.json")).unwrap()).unwrap()
}

#[test]
fn tinystories_vocab_order_split_and_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..200 {
        text.push_str(&format!(
            "The cat sat. The dog ran {}!\n\nEnd.\n<|endoftext|>\n",
            i % 3
        ));
    }
    std::fs::write(dir.path().join("c.txt"), &text).unwrap();
    let c = ctx(
        dir.path(),
        serde_json::json!({"path": "c.txt", "valid_fraction": 0.2}),
        vec![],
    );
    Tokenize.run(&c).unwrap();
    let v = Vocab::load(&c.out_dir.join("vocab.json")).unwrap();
    // the: 2 per doc; cat, dog, end, ran, sat: 1 per doc (ties alphabetical); then the digits.
    assert_eq!(
        &v.tokens()[..10],
        &["<sos>", "<eos>", "<pad>", "<unk>", "the", "cat", "dog", "end", "ran", "sat"]
    );
    let train = TokenFile::load(&c.out_dir.join("train")).unwrap();
    // The digits are ordered by their count in the TRAIN split, ties alphabetical.
    let count = |t: &str| train.ids.iter().filter(|&&i| i == v.id(t)).count();
    let mut digits = ["0", "1", "2"];
    digits.sort_by(|a, b| count(b).cmp(&count(a)).then(a.cmp(b)));
    assert_eq!(&v.tokens()[10..], &digits[..]);
    let valid = TokenFile::load(&c.out_dir.join("valid")).unwrap();
    assert_eq!(train.n_docs() + valid.n_docs(), 200);
    assert!((20..60).contains(&valid.n_docs()), "{}", valid.n_docs());
    assert_eq!(v.decode(train.doc(0)).split(' ').count(), 8);
    assert!(!train.ids.contains(&0) && !train.ids.contains(&1));
    let s = stats(&c);
    assert_eq!(s["format"], "tinystories");
    assert_eq!(
        s["train"]["documents"].as_u64().unwrap() as usize,
        train.n_docs()
    );
    assert_eq!(
        s["valid"]["tokens"].as_u64().unwrap() as usize,
        valid.ids.len()
    );
    assert_eq!(s["vocab_size"], 13);
    // Same seed → same split; outputs byte-identical.
    let dir2 = tempfile::tempdir().unwrap();
    std::fs::write(dir2.path().join("c.txt"), &text).unwrap();
    let c2 = ctx(
        dir2.path(),
        serde_json::json!({"path": "c.txt", "valid_fraction": 0.2}),
        vec![],
    );
    Tokenize.run(&c2).unwrap();
    for f in [
        "vocab.json",
        "train.ids",
        "train.offsets",
        "valid.ids",
        "stats.json",
    ] {
        assert_eq!(
            std::fs::read(c.out_dir.join(f)).unwrap(),
            std::fs::read(c2.out_dir.join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn formats_auto_detection_and_separate_validation_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.jsonl"),
        "{\"text\": \"Alpha beta.\"}\n{\"text\": \"beta gamma\", \"x\": 2}\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("v.txt"), "beta delta\n\nalpha\nbeta\n\n\n").unwrap();
    let c = ctx(
        dir.path(),
        serde_json::json!({"path": "a.jsonl", "valid_path": "v.txt", "min_count": 1}),
        vec![],
    );
    Tokenize.run(&c).unwrap();
    let s = stats(&c);
    assert_eq!(s["format"], "jsonl");
    assert_eq!(s["valid_format"], "text");
    assert_eq!(s["train"]["documents"], 2);
    assert_eq!(s["valid"]["documents"], 2);
    assert_eq!(s["valid"]["unknown"], 1); // delta
    let v = Vocab::load(&c.out_dir.join("vocab.json")).unwrap();
    assert_eq!(&v.tokens()[4..], &["beta", "alpha", "gamma"]);
    let valid = TokenFile::load(&c.out_dir.join("valid")).unwrap();
    assert_eq!(valid.doc(0), &[4, 3]);
    assert_eq!(valid.doc(1), &[5, 4]);

    // Forced formats on the same text give different splits.
    std::fs::write(dir.path().join("p.txt"), "one two\n\nthree\n").unwrap();
    let c = ctx(
        dir.path(),
        serde_json::json!({"path": "p.txt", "format": "tinystories", "valid_fraction": 0.0}),
        vec![],
    );
    Tokenize.run(&c).unwrap();
    assert_eq!(stats(&c)["train"]["documents"], 1);
    let c = ctx(
        dir.path(),
        serde_json::json!({"path": "p.txt", "format": "text", "valid_fraction": 0.0}),
        vec![],
    );
    Tokenize.run(&c).unwrap();
    assert_eq!(stats(&c)["train"]["documents"], 2);
}

#[test]
fn reads_the_file_of_an_upstream_fetch_stage_and_max_size() {
    let dir = tempfile::tempdir().unwrap();
    let up = dir.path().join("up");
    std::fs::create_dir_all(&up).unwrap();
    std::fs::write(up.join("data.txt"), "a a a b b c\n<|endoftext|>\nd\n").unwrap();
    std::fs::write(
        up.join("fetch.json"),
        r#"{"file": "data.txt", "bytes": 1, "blake3": "x", "source": "data.txt"}"#,
    )
    .unwrap();
    let u = upstream("data", "fetch", up.clone(), dir.path().join("none"));
    let c = ctx(
        dir.path(),
        serde_json::json!({"max_size": 6, "valid_fraction": 0.0}),
        vec![u],
    );
    Tokenize.run(&c).unwrap();
    let v = Vocab::load(&c.out_dir.join("vocab.json")).unwrap();
    assert_eq!(&v.tokens()[4..], &["a", "b"]);
    let s = stats(&c);
    assert_eq!(s["train"]["tokens"], 7);
    assert_eq!(s["train"]["unknown"], 2);
}

#[test]
fn errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    // max_size below the specials: rejected by check, naming the key.
    let mut p = defaults();
    p["max_size"] = serde_json::json!(3);
    let e = Tokenize.check(&p).unwrap_err();
    assert!(e.contains("`max_size`") && e.contains("special"), "{e}");
    p["max_size"] = serde_json::json!(4);
    assert!(Tokenize.check(&p).is_ok());
    p["valid_fraction"] = serde_json::json!(1.0);
    assert!(Tokenize.check(&p).unwrap_err().contains("`valid_fraction`"));
    let mut p = defaults();
    p["colour"] = serde_json::json!(1);
    assert!(Tokenize.check(&p).unwrap_err().contains("colour"));

    // Empty corpus.
    std::fs::write(dir.path().join("e.txt"), "\n\n ... !!\n\n").unwrap();
    let e = Tokenize
        .run(&ctx(
            dir.path(),
            serde_json::json!({"path": "e.txt"}),
            vec![],
        ))
        .unwrap_err()
        .to_string();
    assert!(e.contains("e.txt") && e.contains("empty"), "{e}");

    // Invalid UTF-8: byte offset, and lossy replacement.
    std::fs::write(
        dir.path().join("u.txt"),
        b"good words\n\nbad \xc3\x28 here\n",
    )
    .unwrap();
    let e = Tokenize
        .run(&ctx(
            dir.path(),
            serde_json::json!({"path": "u.txt"}),
            vec![],
        ))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("u.txt") && e.contains("byte offset 16") && e.contains("lossy"),
        "{e}"
    );
    let c = ctx(
        dir.path(),
        serde_json::json!({"path": "u.txt", "lossy": true, "valid_fraction": 0.0}),
        vec![],
    );
    Tokenize.run(&c).unwrap();
    assert_eq!(stats(&c)["train"]["tokens"], 4); // good words bad here

    // Missing file and missing source.
    let e = Tokenize
        .run(&ctx(
            dir.path(),
            serde_json::json!({"path": "nope.txt"}),
            vec![],
        ))
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope.txt"), "{e}");
    let e = Tokenize
        .run(&ctx(dir.path(), serde_json::json!({}), vec![]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`path`") && e.contains("fetch"), "{e}");
}

/// A generated corpus of ~24 MB streamed with 64 KiB batches gives the same result as with one
/// huge batch, and the reader never holds more than a batch (plus one document).
#[test]
fn streams_a_large_file_in_small_batches() {
    use pipe::text::{tokenize_corpus, CorpusSpec, Format, TokenizeOptions, ValidSource};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.txt");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let words = [
        "alpha", "Beta", "gamma", "délta", "eps", "zeta", "eta", "theta",
    ];
    let mut x = 12345u64;
    let mut docs = 0;
    let mut size = 0usize;
    while size < 24 << 20 {
        let mut line = String::new();
        for _ in 0..(20 + docs % 50) {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            line.push_str(words[(x >> 60) as usize % words.len()]);
            line.push(if (x >> 40).is_multiple_of(7) {
                '\n'
            } else {
                ' '
            });
        }
        line.push_str("\n<|endoftext|>\n");
        size += line.len();
        f.write_all(line.as_bytes()).unwrap();
        docs += 1;
    }
    drop(f);
    let run = |batch: usize, out: &Path| {
        std::fs::create_dir_all(out).unwrap();
        let opts = TokenizeOptions {
            train: CorpusSpec {
                path: path.clone(),
                format: Format::Auto,
                lossy: false,
                max_documents: None,
            },
            valid: ValidSource::Fraction {
                fraction: 0.1,
                seed: 3,
            },
            min_count: 1,
            max_size: None,
            batch_bytes: batch,
        };
        let mut read = 0u64;
        let r = tokenize_corpus(&opts, out, &mut |n| read += n).unwrap();
        assert_eq!(read, 2 * size as u64);
        r
    };
    let a = run(64 << 10, &dir.path().join("a"));
    let b = run(1 << 30, &dir.path().join("b"));
    assert_eq!(a.train, b.train);
    assert_eq!(a.valid, b.valid);
    assert_eq!(a.train.documents + a.valid.documents, docs as u64);
    assert_eq!(a.vocab.len(), 4 + words.len());
    for f in [
        "vocab.json",
        "train.ids",
        "train.offsets",
        "valid.ids",
        "valid.offsets",
    ] {
        assert!(
            std::fs::read(dir.path().join("a").join(f)).unwrap()
                == std::fs::read(dir.path().join("b").join(f)).unwrap(),
            "{f}"
        );
    }
    // Reader-level bound: batches stay within budget + one document.
    let mut r = pipe::text::DocReader::open(&path, Format::Tinystories, false).unwrap();
    let mut max = 0;
    loop {
        let b = r.next_batch(64 << 10).unwrap();
        if b.is_empty() {
            break;
        }
        let len: usize = b.iter().map(|d| d.len()).sum();
        let longest = b.iter().map(|d| d.len()).max().unwrap();
        assert!(len < (64 << 10) + longest + 1);
        max = max.max(len);
    }
    assert!(max > 0);
}

#[test]
fn max_documents_reads_only_the_first_documents() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..50 {
        text.push_str(&format!("story number w{i} here\n<|endoftext|>\n"));
    }
    std::fs::write(dir.path().join("c.txt"), &text).unwrap();
    let c = ctx(
        dir.path(),
        serde_json::json!({"path": "c.txt", "valid_fraction": 0.0, "max_documents": 7, "batch_mb": 0.00001}),
        vec![],
    );
    Tokenize.run(&c).unwrap();
    let train = TokenFile::load(&c.out_dir.join("train")).unwrap();
    assert_eq!(train.n_docs(), 7);
    let v = Vocab::load(&c.out_dir.join("vocab.json")).unwrap();
    assert!(v.get("w6").is_some());
    assert!(v.get("w7").is_none(), "document 8 must not be read");
}
