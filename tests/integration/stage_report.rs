//! The `report` stage kind on generated upstream outputs: every section is filled, missing
//! stages become notes, `copy` mode links figures relatively, and (when a Chromium binary is
//! installed) the page renders to a non-trivial screenshot. `PIPE_PLOT_OUT=<dir>` keeps the
//! page and the screenshot.

use crate::support::*;
use pipe::plot::{attention_map, bar_chart, line_chart, AttentionMap, BarChart, LineChart, Series};
use pipe::stage::{report::Report, StageCtx, StageKind, Upstream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn defaults() -> serde_json::Value {
    params(&Report, serde_json::json!({}))
}

/// An upstream `id` of `kind` with its results folder under `results/test/` (created).
fn up(root: &Path, id: &str, kind: &str, secs: Option<f64>) -> Upstream {
    let results = root.join("results/test").join(id);
    std::fs::create_dir_all(&results).unwrap();
    Upstream {
        fingerprint: format!("{:0>64}", blake3::hash(id.as_bytes()).to_hex().as_str()),
        duration_s: secs,
        ..upstream(id, kind, results, root.join("checkpoints/test").join(id))
    }
}

fn ctx(root: &Path, ups: Vec<Upstream>, params: serde_json::Value) -> StageCtx {
    CtxBuilder::new(root, &Report)
        .pipeline("test", 1)
        .params(params)
        .upstream(ups)
        .flat()
        .build()
}

/// A full set of upstream outputs, as the real stages write them.
fn full_upstreams(root: &Path) -> Vec<Upstream> {
    let train = up(root, "train@epoch=3", "train", Some(412.7));
    write(
        &train.results.join("epochs.csv"),
        "epoch,train_loss,val_loss,val_perplexity\n1,3.1021,2.9012,18.194\n2,2.8017,2.7003,14.882\n3,2.6532,2.6121,13.627\n",
    );
    write(
        &train.results.join("metrics.json"),
        r#"{"epoch": 3, "train_loss": 2.6532, "val_loss": 2.6121, "val_perplexity": 13.627, "tokens_per_s": 5230.4, "steps": 432}"#,
    );
    let plot = up(root, "plot", "plot", Some(0.8));
    let steps: Vec<(f64, f64)> = (1..=432)
        .map(|s| (s as f64, 2.6 + 5.0 * (-(s as f64) / 60.0).exp()))
        .collect();
    pipe::plot::training_curves(
        &plot.results.join("training_curves.png"),
        &pipe::plot::TrainingCurves {
            title: "Training curves (train)".into(),
            smoothed: vec![],
            smoothed_label: String::new(),
            train_loss: steps,
            epochs: vec![
                pipe::plot::EpochPoint {
                    epoch: 1,
                    end_step: 144.0,
                    val_loss: 2.9012,
                    val_perplexity: 18.194,
                },
                pipe::plot::EpochPoint {
                    epoch: 2,
                    end_step: 288.0,
                    val_loss: 2.7003,
                    val_perplexity: 14.882,
                },
                pipe::plot::EpochPoint {
                    epoch: 3,
                    end_step: 432.0,
                    val_loss: 2.6121,
                    val_perplexity: 13.627,
                },
            ],
        },
        (1400, 560),
    )
    .unwrap();
    let infer = up(root, "infer", "infer", Some(35.2));
    write(
        &infer.results.join("metrics.json"),
        r#"{"perplexity": 13.71, "perplexity_seed": 15.02, "bleu": 3.41, "bleu_sentence_mean": 0.0121, "samples": 50}"#,
    );
    write(
        &infer.results.join("samples.md"),
        "# Samples (2 held-out documents, prompt 5 tokens incl. <sos>, temperature 0.8)\n\n\
         Corpus BLEU 3.41 (sacreBLEU), mean sentence BLEU 0.0121.\n\n\
         | doc | prompt | reference | generated | ppl |\n|---|---|---|---|---|\n\
         | 3 | <sos> once upon a | time there was a girl named lily she liked to play | time there was a little dog <eos> | 12.31 |\n\
         | 17 | <sos> one day a | big bear came to the forest and said hello | boy went to the park with his mom | 9.80 |\n",
    );
    let tokens = ["<sos>", "there", "was", "a", "brave", "explorer"];
    for layer in 1..=2 {
        let n = tokens.len();
        let heads = (0..4)
            .map(|h| {
                let mut m = vec![0f32; n * n];
                for q in 0..n {
                    for k in 0..=q {
                        m[q * n + k] = if (k + h) % 2 == 0 { 2.0 } else { 1.0 };
                    }
                    let z: f32 = m[q * n..q * n + n].iter().sum();
                    m[q * n..q * n + n].iter_mut().for_each(|v| *v /= z);
                }
                m
            })
            .collect();
        attention_map(
            &infer.results.join(format!(
                "attention/layer_{layer}_there-was-a-brave-explorer.png"
            )),
            &AttentionMap {
                title: format!("Layer {layer}: \"there was a brave explorer\""),
                tokens: tokens.iter().map(|t| t.to_string()).collect(),
                heads,
            },
        )
        .unwrap();
    }
    let kv = up(root, "kv-eval", "kv-eval", Some(61.0));
    write(
        &kv.results.join("metrics.json"),
        r#"{"speedup": 3.87, "tokens_per_s_cache": 2411.5, "tokens_per_s_nocache": 623.1, "identical": true, "max_abs_logit_diff": 1.9e-6}"#,
    );
    let mut csv = String::from("new_tokens,batch,prompt_len,mode,tokens_per_s,wall_s\n");
    for n in [25, 50, 95] {
        csv += &format!(
            "{n},20,5,cache,{:.3},{:.4}\n",
            2500.0 - n as f64,
            n as f64 * 20.0 / 2400.0
        );
        csv += &format!(
            "{n},20,5,nocache,{:.3},{:.4}\n",
            60000.0 / n as f64,
            n as f64 * n as f64 / 3000.0
        );
    }
    write(&kv.results.join("kv_cache.csv"), &csv);
    line_chart(
        &kv.results.join("kv_cache.png"),
        &LineChart {
            title: "Throughput, batch 20, prompt 5".into(),
            x_label: "new tokens".into(),
            y_label: "tokens / s".into(),
            series: vec![
                Series {
                    name: "cache".into(),
                    points: vec![(25.0, 2475.0), (50.0, 2450.0), (95.0, 2405.0)],
                    ..Default::default()
                },
                Series {
                    name: "no cache".into(),
                    points: vec![(25.0, 2400.0), (50.0, 1200.0), (95.0, 631.0)],
                    ..Default::default()
                },
            ],
            log_y: true,
        },
        (900, 500),
    )
    .unwrap();
    let beam = up(root, "beam-report", "beam-report", Some(0.3));
    write(
        &beam.results.join("comparison.csv"),
        "method,beam_width,bleu,bleu_sentence_mean,tokens_per_s,speed_vs_sampling\nsampling,0,2.91,0.0201,310.2,1\nbeam,1,3.55,0.0188,295.0,0.951\nbeam,5,3.12,0.0141,80.4,0.259\nbeam,10,3.02,0.0150,41.7,0.1344\n",
    );
    bar_chart(
        &beam.results.join("comparison.png"),
        &BarChart {
            title: "Mean sentence BLEU".into(),
            y_label: "BLEU (0-1)".into(),
            bars: vec![
                ("sampling".into(), 0.0201),
                ("beam 1".into(), 0.0188),
                ("beam 5".into(), 0.0141),
                ("beam 10".into(), 0.0150),
            ],
        },
        (800, 450),
    )
    .unwrap();
    std::fs::copy(
        beam.results.join("comparison.png"),
        beam.results.join("speed.png"),
    )
    .unwrap();
    let tok = up(root, "tokenize", "tokenize", None);
    vec![plot, infer, kv, beam, train, tok]
}

fn keep(from: &Path, name: &str) {
    if let Some(dir) = std::env::var_os("PIPE_PLOT_OUT") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(from, Path::new(&dir).join(name)).unwrap();
    }
}

#[test]
fn full_report_has_every_section_and_no_network() {
    let tmp = tempfile::tempdir().unwrap();
    let ups = full_upstreams(tmp.path());
    let params = defaults();
    Report.check(&params).unwrap();
    let c = ctx(tmp.path(), ups, params);
    Report.run(&c).unwrap();
    let index = c.out_dir.join("index.html");
    let html = std::fs::read_to_string(&index).unwrap();
    keep(&index, "report.html");
    for want in [
        "Results of pipeline test",
        "Results beside the seed",
        "stories cut to the context (the seed&#39;s figure), epoch 3",
        "13.63",
        "7.49",   // seed val perplexity, epoch 3
        "9.41",   // seed per-sample perplexity
        "0.0176", // seed sentence BLEU
        "4.52",   // seed KV speed-up
        "0.0134", // seed beam 5 BLEU
        "11.7",   // seed beam 10 tok/s
        "Attention maps",
        "Layer 2: &quot;there was a brave explorer&quot;",
        "&lt;sos&gt; once upon a",
        "tokens/s with the KV cache",
        "tokens/s without cache (median)",
        "Merged parameters of every stage",
        "What was run",
        "pipe version",
        "1 min 1 s", // kv-eval duration
        "6 min 53 s",
    ] {
        assert!(html.contains(want), "`{want}` missing from the report");
    }
    // Six figures (curves, two attention maps, KV chart, beam BLEU and speed), all embedded.
    assert_eq!(html.matches("src=\"data:image/png;base64,").count(), 6);
    // The samples are collapsed; the report lists itself among the instances.
    assert!(html.contains("<details><summary>"));
    assert!(html.contains("<td>report</td>"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "network reference"
    );
    assert!(
        !html.contains("class=\"note missing\""),
        "no section should be missing:\n{html}"
    );
    let fp = &c.upstream[0].fingerprint;
    assert!(html.contains(&fp[..12]) && html.contains(fp.as_str()));
    screenshot(&index, "report.png");
}

#[test]
fn missing_stages_become_notes_and_copy_mode_links_files() {
    let tmp = tempfile::tempdir().unwrap();
    let mut ups = full_upstreams(tmp.path());
    ups.retain(|u| u.kind == "plot" || u.kind == "train");
    let mut params = defaults();
    params["images"] = serde_json::json!("copy");
    let c = ctx(tmp.path(), ups, params);
    Report.run(&c).unwrap();
    let html = std::fs::read_to_string(c.out_dir.join("index.html")).unwrap();
    for kind in ["infer", "kv-eval", "beam-report"] {
        assert!(
            html.contains(&format!("No <code>{kind}</code> stage")),
            "no note for {kind}"
        );
    }
    assert!(
        html.contains("src=\"figures/plot/training_curves.png\""),
        "{html}"
    );
    assert!(c.out_dir.join("figures/plot/training_curves.png").is_file());
    assert!(!html.contains("data:image"));
}

#[test]
fn bad_params_are_rejected_with_the_key() {
    let mut p = defaults();
    p["images"] = serde_json::json!("inline");
    assert!(Report.check(&p).unwrap_err().contains("images"));
    let mut p = defaults();
    p["titel"] = serde_json::json!("x");
    assert!(Report.check(&p).unwrap_err().contains("titel"));
}

/// The first Chromium-like browser on PATH.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in [
            "chromium",
            "chromium-browser",
            "google-chrome",
            "google-chrome-stable",
        ] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Screenshots `page` with headless Chromium and checks the image is a large, non-blank PNG.
/// Skipped (with a note) when no browser is installed.
fn screenshot(page: &Path, keep_as: &str) {
    let Some(browser) = chromium() else {
        eprintln!("note: no chromium binary on PATH; skipping the report screenshot");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let shot = tmp.path().join("shot.png");
    let mut child = std::process::Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!(
            "--user-data-dir={}",
            tmp.path().join("profile").display()
        ))
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1280,2400")
        .arg(format!("file://{}", page.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start chromium");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("chromium did not finish the screenshot in 90 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let b = std::fs::read(&shot).expect("chromium wrote no screenshot");
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n");
    let w = u32::from_be_bytes(b[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(b[20..24].try_into().unwrap());
    assert_eq!((w, h), (1280, 2400));
    // A blank page compresses to a few KB; a page with tables and figures does not.
    assert!(
        b.len() > 60_000,
        "screenshot is only {} bytes: blank page?",
        b.len()
    );
    keep(&shot, keep_as);
}
