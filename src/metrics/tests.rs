//! Unit tests of the metrics through their public API: BLEU (sacreBLEU definition), the seed's
//! sentence BLEU on hand-worked examples, and perplexity.

use crate::metrics::*;

#[test]
fn perplexity_is_exp_mean_nll() {
    assert!((perplexity(2.0 * 3.0f64.ln(), 2) - 3.0).abs() < 1e-12);
    assert!(perplexity(1.0, 0).is_nan());
}

fn one(h: &[&str], refs: &[&[&str]]) -> BleuScore {
    let refs: Vec<Vec<&str>> = refs.iter().map(|r| r.to_vec()).collect();
    corpus_bleu(h, &refs, &BleuOptions::default()).unwrap()
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-9, "{a} vs {b}");
}

#[test]
fn exact_match_is_100() {
    let s = one(&["the cat sat on the mat"], &[&["the cat sat on the mat"]]);
    close(s.score, 100.0);
    assert_eq!(s.counts, vec![6, 5, 4, 3]);
    assert_eq!(s.totals, vec![6, 5, 4, 3]);
    close(s.bp, 1.0);
}

#[test]
fn exp_smoothing_of_a_missing_order() {
    // hyp "the cat is on the mat" vs "the cat sat on the mat":
    // 1-grams 5/6, 2-grams 3/5 (the cat, on the, the mat), 3-grams 1/4 (on the mat),
    // 4-grams 0/3 → exp smoothing: 100 / (2 · 3).
    let s = one(&["the cat is on the mat"], &[&["the cat sat on the mat"]]);
    let p = [500.0 / 6.0, 60.0, 25.0, 100.0 / 6.0];
    for (a, b) in s.precisions.iter().zip(p) {
        close(*a, b);
    }
    let want = (p.iter().map(|x: &f64| x.ln()).sum::<f64>() / 4.0).exp();
    close(s.score, want); // ≈ 37.9918 (sacreBLEU 2.6.0: 37.99178428257963)
    assert!((s.score - 37.99178428257963).abs() < 1e-9);
}

#[test]
fn brevity_penalty_and_missing_order_total() {
    // 3 tokens against 6: bp = exp(1 − 6/3) = e^-1; no 4-grams exist (total 0): the loop
    // stops, precision 4 stays 0 and the score is 0 as in sacreBLEU.
    let s = one(&["the cat sat"], &[&["the cat sat on the mat"]]);
    close(s.bp, (-1.0f64).exp());
    close(s.ratio, 0.5);
    close(s.score, 0.0);
    assert_eq!(s.totals, vec![3, 2, 1, 0]);
    // A 5-token hypothesis, all orders present: BLEU = bp · 100.
    let s = one(&["a b c d e"], &[&["a b c d e f g h i j"]]);
    close(s.bp, (1.0f64 - 10.0 / 5.0).exp());
    close(s.score, 100.0 * (1.0f64 - 2.0).exp());
}

#[test]
fn zero_matches_score_zero() {
    let s = one(&["a b c d"], &[&["e f g h"]]);
    close(s.score, 0.0);
    assert_eq!(s.precisions, vec![0.0; 4]);
    close(s.bp, 1.0);
}

#[test]
fn multiple_references_clip_by_max_and_use_closest_length() {
    // seg 1: "the cat is on the mat" vs {"the cat sat on the mat", "a cat is on the mat"}:
    //   all 6 unigrams match, 2-grams 5/5, 3-grams: the cat is ✗, cat is on ✓, is on the ✓,
    //   on the mat ✓ → 3/4; 4-grams: the cat is on ✗, cat is on the ✓, is on the mat ✓ → 2/3.
    // seg 2: "hello there world" vs {"hello world", "well hello there world"}:
    //   1: 3/3, 2: hello there ✓ there world ✓ 2/2, 3: 1/1; ref length closest to 3 → 2 and 4
    //   tie → shorter (2).
    // totals: [9,7,5,3], correct [9,7,4,2], hyp 9, ref 6 + 2 = 8.
    let s = one(
        &["the cat is on the mat", "hello there world"],
        &[
            &["the cat sat on the mat", "hello world"],
            &["a cat is on the mat", "well hello there world"],
        ],
    );
    assert_eq!(s.counts, vec![9, 7, 4, 2]);
    assert_eq!(s.totals, vec![9, 7, 5, 3]);
    assert_eq!((s.hyp_len, s.ref_len), (9, 8));
    let want =
        ((1.0f64.ln() + 1.0f64.ln() + 0.8f64.ln() + (2.0f64 / 3.0).ln()) / 4.0).exp() * 100.0;
    close(s.score, want);
    assert!((s.score - 85.45740127924681).abs() < 1e-9);
    // Closest length with a tie picks the shorter reference.
    let s = one(&["a b c d e"], &[&["a b c"], &["a b c d e f g"]]);
    assert_eq!(s.ref_len, 3);
}

#[test]
fn empty_lines() {
    // An empty hypothesis adds 0 to hyp_len and its closest reference length to ref_len.
    let s = one(
        &["", "the cat sat on the mat"],
        &[&["a dog", "the cat sat on the mat"]],
    );
    assert_eq!((s.hyp_len, s.ref_len), (6, 8));
    close(s.score, 100.0 * (1.0f64 - 8.0 / 6.0).exp());
    // An empty reference in a second stream is skipped.
    let s = one(
        &["the cat sat on the mat"],
        &[&["the cat sat on the mat"], &[""]],
    );
    close(s.score, 100.0);
    // A segment with only empty references is an error.
    let e = corpus_bleu(&["x"], &[vec![""]], &BleuOptions::default()).unwrap_err();
    assert_eq!(e, BleuError::EmptyReference(0));
    // Mismatched line counts are an error naming the stream.
    let e = corpus_bleu(&["x", "y"], &[vec!["x"]], &BleuOptions::default()).unwrap_err();
    assert!(e.to_string().contains("1 lines"));
}

#[test]
fn tokenizer_13a_matches_sacrebleu() {
    // Expected strings from sacreBLEU 2.6.0's Tokenizer13a.
    assert_eq!(
        tokenize_13a("Hello, world! It's 3.5 kg-5 (ok) &amp; \"done\"."),
        "Hello , world ! It's 3.5 kg-5 ( ok ) & \" done \" ."
    );
    assert_eq!(
        tokenize_13a("a.b 1,000 x-y 5-6 $10 {x}~"),
        "a . b 1,000 x-y 5 - 6 $ 10 { x } ~"
    );
    assert_eq!(tokenize_13a("end."), "end .");
    let s = one(
        &["Hello, world! It's 3.5 kg-5 (ok) &amp; \"done\"."],
        &[&["Hello , world ! It 's 3.5 kg - 5 ( ok ) & \" done \" ."]],
    );
    assert!((s.score - 54.08804419255529).abs() < 1e-9, "{}", s.score);
    assert_eq!(tokenize_13a("  spaces\there  "), "spaces here");
    // Lower-casing and the `none` tokenizer.
    let refs = vec![vec!["The Cat sat on the mat ."]];
    let lc = BleuOptions {
        tokenize: Tokenize::None,
        lowercase: true,
    };
    close(
        corpus_bleu(&["the cat sat on the mat ."], &refs, &lc)
            .unwrap()
            .score,
        100.0,
    );
    let s = corpus_bleu(&["the cat sat on the mat."], &refs, &BleuOptions::default()).unwrap();
    assert!(s.score < 100.0);
}

#[test]
fn seed_sentence_bleu() {
    close(
        sentence_bleu_seed("The cat sat on the mat!", "the cat sat on the mat"),
        1.0,
    );
    // No 4-gram match → 0 without smoothing.
    close(
        sentence_bleu_seed("the cat is on the mat", "the cat sat on the mat"),
        0.0,
    );
    // "a b c d e" vs "a b c d e f g h": precisions 1, bp = exp(1 − 8/5).
    close(
        sentence_bleu_seed("a b c d e", "a b c d e f g h"),
        (1.0f64 - 1.6).exp(),
    );
    // Precisions 5/6, 4/5, 3/4, 2/3 ("x" breaks the end), no brevity penalty.
    let want = ((5.0f64 / 6.0) * 0.8 * 0.75 * (2.0 / 3.0)).powf(0.25);
    close(sentence_bleu_seed("a b c d e x", "a b c d e f"), want);
    close(sentence_bleu_seed("", "a b"), 0.0);
    close(sentence_mean(&["a b c d", "x"], &["a b c d", "y"]), 0.5);
}
