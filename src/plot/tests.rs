//! Unit tests of the plot library through its public API: charts render to valid PNGs of the
//! stated size and to SVGs that carry their text; bad input gives errors naming the file; short
//! number labels. Set `PIPE_PLOT_OUT=<dir>` to keep the images for a look.

use super::fmt_num;
use crate::plot::{
    attention_map, bar_chart, line_chart, smooth_ema, training_curves, AttentionMap, BarChart,
    EpochPoint, LineChart, PlotError, Series, TrainingCurves,
};
use std::path::{Path, PathBuf};

/// A folder for outputs: `PIPE_PLOT_OUT` when set (kept), else a temp dir (removed).
fn out_dir() -> (PathBuf, Option<tempfile::TempDir>) {
    match std::env::var_os("PIPE_PLOT_OUT") {
        Some(d) => {
            std::fs::create_dir_all(&d).unwrap();
            (PathBuf::from(d), None)
        }
        None => {
            let t = tempfile::tempdir().unwrap();
            (t.path().to_path_buf(), Some(t))
        }
    }
}

/// Width and height from a PNG's IHDR chunk; panics when the file is not a PNG.
fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert!(b.len() > 33, "{} is too short for a PNG", path.display());
    assert_eq!(
        &b[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} lacks the PNG signature",
        path.display()
    );
    assert_eq!(&b[12..16], b"IHDR");
    let w = u32::from_be_bytes(b[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(b[20..24].try_into().unwrap());
    assert_eq!(
        &b[b.len() - 8..b.len() - 4],
        b"IEND",
        "{} is truncated",
        path.display()
    );
    (w, h)
}

fn loss_chart() -> LineChart {
    let raw: Vec<(f64, f64)> = (1..=300)
        .map(|s| {
            let s = s as f64;
            (s, 2.0 + 4.0 * (-s / 60.0).exp() + 0.15 * (s * 1.7).sin())
        })
        .collect();
    LineChart {
        title: "Training loss".into(),
        x_label: "step".into(),
        y_label: "loss".into(),
        series: vec![
            Series {
                name: "raw".into(),
                points: raw.clone(),
                ..Default::default()
            },
            Series {
                name: "smoothed".into(),
                points: raw
                    .iter()
                    .map(|p| p.0)
                    .zip(smooth_ema(
                        &raw.iter().map(|p| p.1).collect::<Vec<_>>(),
                        0.9,
                    ))
                    .collect(),
                ..Default::default()
            },
        ],
        log_y: false,
    }
}

fn kv_chart() -> LineChart {
    let lens = [10.0, 25.0, 50.0, 100.0, 200.0];
    LineChart {
        title: "Generation throughput, batch 20, prompt 5".into(),
        x_label: "generated tokens".into(),
        y_label: "tokens / s".into(),
        series: vec![
            Series {
                name: "with KV cache".into(),
                points: lens.iter().map(|&l| (l, 1000.0 - l)).collect(),
                ..Default::default()
            },
            Series {
                name: "without cache".into(),
                points: lens
                    .iter()
                    .map(|&l| (l, 4000.0 / (l / 10.0 + 1.0)))
                    .collect(),
                ..Default::default()
            },
        ],
        log_y: true,
    }
}

fn beam_chart() -> BarChart {
    BarChart {
        title: "Sentence BLEU by decoding method".into(),
        y_label: "BLEU (0-100)".into(),
        bars: vec![
            ("sampling (T=0.8)".into(), 2.19),
            ("beam 1".into(), 1.52),
            ("beam 5".into(), 1.34),
            ("beam 10".into(), 1.49),
        ],
    }
}

fn attention(heads: usize, tokens: &[&str]) -> AttentionMap {
    let n = tokens.len();
    let heads = (0..heads)
        .map(|h| {
            let mut m = vec![0f32; n * n];
            for q in 0..n {
                // Causal: a softmax over keys 0..=q with a head-dependent preference.
                let w: Vec<f32> = (0..=q)
                    .map(|k| {
                        (((k + h) % 3) as f32 + if k == q { h as f32 * 0.5 } else { 0.0 }).exp()
                    })
                    .collect();
                let z: f32 = w.iter().sum();
                for k in 0..=q {
                    m[q * n + k] = w[k] / z;
                }
            }
            m
        })
        .collect();
    AttentionMap {
        title: "Layer 1 attention: \"there was a brave explorer\"".into(),
        tokens: tokens.iter().map(|s| s.to_string()).collect(),
        heads,
    }
}

const SENTENCE: [&str; 10] = [
    "<sos>", "there", "was", "a", "brave", "explorer", "he", "wanted", "to", "explore",
];

#[test]
fn line_charts_render_png_and_svg() {
    let (dir, _keep) = out_dir();
    for (name, chart) in [("loss", loss_chart()), ("kv_log", kv_chart())] {
        let png = dir.join(format!("{name}.png"));
        line_chart(&png, &chart, (900, 540)).unwrap();
        assert_eq!(png_size(&png), (900, 540));
        let svg = dir.join(format!("{name}.svg"));
        line_chart(&svg, &chart, (900, 540)).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.starts_with("<svg"), "{text:.100}");
        assert!(
            text.contains(&chart.title),
            "title missing from {}",
            svg.display()
        );
        assert!(text.contains(&chart.x_label) && text.contains(&chart.y_label));
        for s in &chart.series {
            assert!(text.contains(&s.name), "legend entry {} missing", s.name);
        }
    }
}

#[test]
fn bar_chart_renders_png_and_svg_with_value_labels() {
    let (dir, _keep) = out_dir();
    let chart = beam_chart();
    let png = dir.join("bars.png");
    bar_chart(&png, &chart, (800, 500)).unwrap();
    assert_eq!(png_size(&png), (800, 500));
    let svg = dir.join("bars.svg");
    bar_chart(&svg, &chart, (800, 500)).unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains(&chart.title));
    for (label, v) in &chart.bars {
        assert!(text.contains(label.as_str()), "bar label {label} missing");
        assert!(text.contains(&format!("{v}")), "value label {v} missing");
    }
}

#[test]
fn attention_map_size_follows_heads_and_tokens() {
    let (dir, _keep) = out_dir();
    let eight = attention(8, &SENTENCE);
    let png = dir.join("attention_8x10.png");
    let size = attention_map(&png, &eight).unwrap();
    assert_eq!(png_size(&png), size);
    let two = attention(2, &SENTENCE[..5]);
    let small = attention_map(&dir.join("attention_2x5.png"), &two).unwrap();
    assert!(small.0 < size.0, "{small:?} vs {size:?}");
    assert_eq!(png_size(&dir.join("attention_2x5.png")), small);
    let svg = dir.join("attention_8x10.svg");
    assert_eq!(attention_map(&svg, &eight).unwrap(), size);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("head 8") && text.contains("explorer") && text.contains("query"));
}

#[test]
fn training_curves_render() {
    let (dir, _keep) = out_dir();
    let raw: Vec<(f64, f64)> = (1..=240)
        .map(|s| {
            let s = s as f64;
            (s, 2.3 + 3.0 * (-s / 40.0).exp() + 0.2 * (s * 0.9).sin())
        })
        .collect();
    let sm = smooth_ema(&raw.iter().map(|p| p.1).collect::<Vec<_>>(), 0.9);
    let curves = TrainingCurves {
        title: "Training curves".into(),
        smoothed: raw.iter().map(|p| p.0).zip(sm).collect(),
        train_loss: raw,
        smoothed_label: "EMA 0.9".into(),
        epochs: vec![
            EpochPoint {
                epoch: 1,
                end_step: 80.0,
                val_loss: 2.124,
                val_perplexity: 8.41,
            },
            EpochPoint {
                epoch: 2,
                end_step: 160.0,
                val_loss: 2.05,
                val_perplexity: 7.77,
            },
            EpochPoint {
                epoch: 3,
                end_step: 240.0,
                val_loss: 2.01,
                val_perplexity: 7.49,
            },
        ],
    };
    let png = dir.join("training_curves.png");
    training_curves(&png, &curves, (1400, 560)).unwrap();
    assert_eq!(png_size(&png), (1400, 560));
    let svg = dir.join("training_curves.svg");
    training_curves(&svg, &curves, (1400, 560)).unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("Validation perplexity") && text.contains("7.49"));
}

#[test]
fn bad_input_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let gif = dir.path().join("chart.gif");
    let e = line_chart(&gif, &loss_chart(), (400, 300)).unwrap_err();
    assert!(
        e.to_string().contains("chart.gif") && e.to_string().contains(".png"),
        "{e}"
    );
    let empty = LineChart {
        series: vec![],
        ..loss_chart()
    };
    let p = dir.path().join("empty.png");
    assert!(matches!(
        line_chart(&p, &empty, (400, 300)),
        Err(PlotError::Render { .. })
    ));
    assert!(!p.exists());
    let mut bad = attention(2, &SENTENCE[..4]);
    bad.heads[1].pop();
    let e = attention_map(&dir.path().join("a.png"), &bad).unwrap_err();
    assert!(e.to_string().contains("head 2"), "{e}");
    let nan = BarChart {
        bars: vec![("x".into(), f64::NAN)],
        ..beam_chart()
    };
    assert!(bar_chart(&dir.path().join("b.svg"), &nan, (400, 300)).is_err());
}

#[test]
fn edge_cases_render() {
    let (dir, _keep) = out_dir();
    let one_bar = BarChart {
        title: "One bar".into(),
        y_label: "value".into(),
        bars: vec![("only".into(), 3.0)],
    };
    bar_chart(&dir.join("one_bar.png"), &one_bar, (400, 300)).unwrap();
    assert_eq!(png_size(&dir.join("one_bar.png")), (400, 300));
    let negative = BarChart {
        title: "Signed".into(),
        y_label: "delta".into(),
        bars: vec![("a".into(), -2.0), ("b".into(), 5.0), ("c".into(), 0.0)],
    };
    bar_chart(&dir.join("signed_bars.png"), &negative, (500, 350)).unwrap();
    let point = LineChart {
        title: "A single point".into(),
        x_label: "x".into(),
        y_label: "y".into(),
        series: vec![Series {
            name: "p".into(),
            points: vec![(1.0, 5.0), (f64::NAN, 1.0)],
            ..Default::default()
        }],
        log_y: false,
    };
    line_chart(&dir.join("one_point.png"), &point, (400, 300)).unwrap();
    let tiny = attention(1, &["a", "b", "c"]);
    let size = attention_map(&dir.join("attention_1x3.png"), &tiny).unwrap();
    assert_eq!(png_size(&dir.join("attention_1x3.png")), size);
    let long: Vec<String> = (0..16).map(|i| format!("token{i}")).collect();
    let long: Vec<&str> = long.iter().map(String::as_str).collect();
    let big = attention(8, &long);
    let size = attention_map(&dir.join("attention_8x16.png"), &big).unwrap();
    assert_eq!(png_size(&dir.join("attention_8x16.png")), size);
}

#[test]
fn many_tokens_wrap_heads_onto_rows() {
    let (dir, _keep) = out_dir();
    let toks: Vec<String> = (0..40).map(|i| format!("w{i}")).collect();
    let toks: Vec<&str> = toks.iter().map(String::as_str).collect();
    let map = attention(8, &toks);
    let path = dir.join("attention_8x40.png");
    let (w, h) = attention_map(&path, &map).unwrap();
    assert_eq!(png_size(&path), (w, h));
    assert!(w <= 3800, "{w} px wide: heads should wrap");
    assert!(h > 2 * 40 * 18, "{h} px high: several rows expected");
}

#[test]
fn numbers_are_short() {
    assert_eq!(fmt_num(2.5), "2.5");
    assert_eq!(fmt_num(1200.0), "1200");
    assert_eq!(fmt_num(0.0176), "0.0176");
    assert_eq!(fmt_num(0.0), "0");
    assert_eq!(fmt_num(7.49), "7.49");
    assert_eq!(fmt_num(12.0), "12");
}
