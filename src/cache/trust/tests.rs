//! Run-record validation: well-formed records pass; tampered paths, hashes, fingerprint
//! bindings and sizes are refused.

use super::*;
use crate::cache::record::Output;
use std::collections::BTreeMap;

fn key(outs: &[&str]) -> FingerprintKey {
    FingerprintKey {
        id: "c".into(),
        kind: "command".into(),
        kind_version: 1,
        params: serde_json::json!({ "cmd": "x", "outs": outs }),
        upstream: vec![],
        inputs: BTreeMap::new(),
        seed: 1,
        pipeline: None,
    }
}

fn out(area: Area, path: &str) -> Output {
    Output {
        area,
        path: path.into(),
        blake3: Blake3::of(path.as_bytes()),
        size: 1,
        measure: false,
    }
}

fn record(outs: &[&str], outputs: Vec<Output>) -> RunRecord {
    let key = key(outs);
    RunRecord {
        fingerprint: key.fingerprint(),
        key,
        outputs_hash: manifest_hash(&outputs),
        outputs,
        duration_s: 0.1,
        metrics: BTreeMap::new(),
        log: None,
        ran_at: None,
    }
}

fn owners(k: &FingerprintKey) -> Option<Vec<PathBuf>> {
    let outs = k.params.get("outs")?.as_array()?;
    Some(
        outs.iter()
            .filter_map(|v| v.as_str())
            .map(PathBuf::from)
            .collect(),
    )
}

fn verdict(rec: &RunRecord) -> Result<(), RecordError> {
    let bytes = serde_json::to_vec(rec).unwrap();
    parse(&bytes, &rec.fingerprint, Some(&owners)).map(|_| ())
}

#[test]
fn a_well_formed_record_passes() {
    let rec = record(
        &["out/", "single.txt"],
        vec![
            out(Area::Results, "metrics.json"),
            out(Area::Results, "sub/dir/x.bin"),
            out(Area::Checkpoints, "epoch_1.safetensors"),
            out(Area::Project, "out/c.txt"),
            out(Area::Project, "single.txt"),
        ],
    );
    verdict(&rec).unwrap();
}

#[test]
fn every_tampered_path_is_refused() {
    let bad_paths: &[(Area, &str)] = &[
        (Area::Project, ".git/config"),
        (Area::Project, ".git/hooks/pre-commit"),
        (Area::Project, "pipelines/p.yaml"),
        (Area::Project, "cache/runs/x.json"),
        (Area::Project, "results/p/other/x"),
        (Area::Project, "checkpoints/p/train/epoch_1.safetensors"),
        (Area::Project, "elsewhere.txt"),
        (Area::Project, "/etc/passwd"),
        (Area::Project, "../outside/x"),
        (Area::Results, "../other/x"),
        (Area::Results, "a/../../x"),
        (Area::Checkpoints, "../../../../.git/config"),
        (Area::Results, ""),
        (Area::Results, "a//b"),
        (Area::Results, "./a"),
        (Area::Results, "a/"),
        (Area::Results, "a\0b"),
    ];
    for (area, p) in bad_paths {
        let rec = record(&["out/"], vec![out(*area, p)]);
        let e = verdict(&rec).unwrap_err();
        assert!(matches!(e, RecordError::BadOutput { .. }), "{p}: {e}");
    }
    let long = "a/".repeat(MAX_PATH_BYTES);
    let name = "n".repeat(MAX_NAME_BYTES + 1);
    for p in [long.as_str(), name.as_str()] {
        let e = verdict(&record(&[], vec![out(Area::Results, p)])).unwrap_err();
        assert!(e.to_string().len() < 400, "{e}");
    }
}

#[test]
fn records_bound_to_their_fingerprint_and_outputs() {
    let good = record(&[], vec![out(Area::Results, "x")]);
    let other = record(&["y"], vec![]);
    // Filed under another fingerprint.
    let bytes = serde_json::to_vec(&good).unwrap();
    let e = parse(&bytes, &other.fingerprint, None).unwrap_err();
    assert!(matches!(e, RecordError::Misfiled { .. }), "{e}");
    // A key that does not hash to the fingerprint named.
    let mut forged = good.clone();
    forged.key.seed = 2;
    assert!(matches!(
        verdict(&forged),
        Err(RecordError::KeyMismatch { .. })
    ));
    // Outputs changed without their hash.
    let mut swapped = good.clone();
    swapped.outputs[0].blake3 = Blake3::of(b"other");
    assert!(matches!(
        verdict(&swapped),
        Err(RecordError::OutputsHash { .. })
    ));
    // The same output twice, a measurement outside results.
    let twice = record(&[], vec![out(Area::Results, "x"), out(Area::Results, "x")]);
    assert!(verdict(&twice).is_err());
    let mut m = out(Area::Checkpoints, "speed.json");
    m.measure = true;
    assert!(verdict(&record(&[], vec![m])).is_err());
    // Size and count limits.
    let huge = vec![b' '; MAX_RECORD_BYTES as usize + 1];
    let e = parse(&huge, &good.fingerprint, None).unwrap_err();
    assert!(matches!(e, RecordError::TooLarge { .. }));
    let many: Vec<Output> = (0..=MAX_OUTPUTS)
        .map(|i| out(Area::Results, &format!("f{i}")))
        .collect();
    assert!(matches!(
        verdict(&record(&[], many)),
        Err(RecordError::TooManyOutputs { .. })
    ));
}

#[test]
fn bad_hashes_are_refused_at_parse_time() {
    let good = record(&[], vec![out(Area::Results, "x")]);
    let text = serde_json::to_string(&good).unwrap();
    let h = good.outputs[0].blake3.to_string();
    for bad in ["a", "", "../..", "../srv/data/file.txt", "..//etc/passwd"] {
        let t = text.replace(&h, bad);
        let e = parse(t.as_bytes(), &good.fingerprint, None).unwrap_err();
        assert!(matches!(e, RecordError::Parse(_)), "{bad}: {e}");
        assert!(e.to_string().contains("blake3"), "{e}");
    }
}

#[test]
fn without_owners_project_outputs_follow_the_outs_rules_only() {
    let rec = record(&[], vec![out(Area::Project, "anything/else.txt")]);
    let bytes = serde_json::to_vec(&rec).unwrap();
    parse(&bytes, &rec.fingerprint, None).unwrap();
    let rec = record(&[], vec![out(Area::Project, ".git/config")]);
    let bytes = serde_json::to_vec(&rec).unwrap();
    assert!(parse(&bytes, &rec.fingerprint, None).is_err());
}
