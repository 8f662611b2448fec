//! `pipe bench`: every task runs on a tiny model and prints the documented JSON object.

use crate::support::*;

#[test]
fn every_task_prints_valid_json() {
    let d = tempfile::tempdir().unwrap();
    for task in ["train", "decode1", "decode20", "decode20-nocache", "beam10"] {
        let o = pipe(
            d.path(),
            &[
                "bench",
                task,
                "--tiny",
                "--threads",
                "2",
                "--runs",
                "1",
                "--json",
            ],
        );
        assert!(o.status.success(), "{task}: {}", stderr(&o));
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(j["task"], task);
        assert_eq!(j["threads"], 2);
        assert_eq!(j["runs"], 1);
        let tps = j["tokens_per_s"].as_f64().unwrap();
        assert!(tps.is_finite() && tps > 0.0, "{task}: {tps}");
        assert_eq!(j["precision"], "f32");
        let g = j["gflops"].as_f64().unwrap();
        assert!(g.is_finite() && g > 0.0, "{task}: {g}");
    }
}

#[test]
fn bad_arguments_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| pipe(d.path(), args).status.code();
    assert_eq!(run(&["bench", "nosuchtask"]), Some(2));
    assert_eq!(run(&["bench", "decode1", "--tiny", "--runs", "0"]), Some(2));
    assert_eq!(
        run(&["bench", "decode1", "--tiny", "--threads", "0"]),
        Some(2)
    );
}

#[test]
fn train_flops_match_the_issue_estimate() {
    // About 44 MFLOP per trained token at the seed configuration (issue 6).
    let cfg = pipe::model::ModelConfig::seed(15487);
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
    let w = pipe::model::Weights::init(&cfg, &mut rng);
    let f = pipe::cli::bench::train_flops_per_token(&w, 63);
    assert!((40e6..48e6).contains(&f), "{f}");
}
