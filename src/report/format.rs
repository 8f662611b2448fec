//! How values read from stage outputs are shown: numbers without float noise, labels instead
//! of snake_case keys, run times, and the seed's figure beside each known metric.

use super::seed;
use crate::plot::fmt_num;
use serde_json::Value;

/// Shortens long decimals in a text cell (`0.6000000238418579` → `0.6`); anything else is kept.
pub fn tidy(s: &str) -> String {
    match s.parse::<f64>() {
        Ok(v) if s.contains('.') || s.contains('e') => fmt_num(v),
        _ => s.to_string(),
    }
}

/// A JSON value as page text.
pub fn show(v: &Value) -> String {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => fmt_num(f),
            _ => n.to_string(),
        },
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        Value::Array(a) => a.iter().map(show).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

pub fn opt(v: Option<f64>) -> String {
    v.map(fmt_num).unwrap_or_else(|| "—".into())
}

pub fn duration(s: Option<f64>) -> String {
    match s {
        None => "—".into(),
        Some(s) if s < 60.0 => format!("{s:.1} s"),
        Some(s) => format!("{} min {:.0} s", (s / 60.0).floor(), s % 60.0),
    }
}

/// A readable label for a key: known ones by name, others with `_` as spaces
/// (`bleu_sentence_mean` → `mean sentence BLEU`, `beam_width` → `beam width`).
pub fn label(key: &str) -> String {
    let known = match key {
        "bleu" => "BLEU",
        "bleu_sentence_mean" => "mean sentence BLEU",
        "bleu_bp" => "BLEU brevity penalty",
        "tokens_per_s" => "tokens/s",
        "speed_vs_sampling" => "speed vs sampling",
        "val_loss" => "validation loss",
        "val_perplexity" => "validation perplexity, stories cut to the context (the seed's way)",
        "measured_at" => "measured at",
        "val_nll_mean" => "mean validation NLL",
        "val_tokens" => "validation tokens",
        "lr" => "learning rate",
        "generation_s" => "generation time (s)",
        "wall_s" => "wall time (s)",
        "prompt_len" => "prompt length (tokens)",
        "new_tokens" => "new tokens",
        "d_model" => "model width",
        "d_attn" => "attention width",
        "d_ff" => "feed-forward width",
        "n_heads" => "heads",
        "n_layers" => "layers",
        _ => "",
    };
    if known.is_empty() {
        key.replace('_', " ")
    } else {
        known.to_string()
    }
}

/// Human labels and seed figures of known metric keys.
pub fn metric_label(key: &str) -> (String, Option<f64>) {
    let (l, s) = match key {
        "perplexity" => (
            "validation perplexity, every token of each held-out story (standard)",
            None,
        ),
        "perplexity_seed" => (
            "mean per-sample continuation perplexity (the seed's figure)",
            Some(seed::SAMPLE_PERPLEXITY),
        ),
        "bleu" => ("corpus BLEU, sacreBLEU default (0–100)", None),
        "bleu_sentence_mean" => (
            "mean sentence BLEU-4, unsmoothed (0–1, the seed's figure)",
            Some(seed::SENTENCE_BLEU),
        ),
        "samples" => ("samples", Some(seed::SAMPLES)),
        "speedup" => ("speed-up of the KV cache", Some(seed::KV_SPEEDUP)),
        "tokens_per_s_cache" => ("tokens/s with the KV cache", Some(seed::KV_TOK_S_CACHE)),
        "tokens_per_s_nocache" => ("tokens/s without the cache", Some(seed::KV_TOK_S_NOCACHE)),
        "identical" => ("cached and uncached tokens identical", None),
        "max_abs_logit_diff" => ("largest |logit difference|, cached vs uncached", None),
        _ => return (label(key), None),
    };
    (l.to_string(), s)
}

/// `layer_1_there_was_a_brave_explorer` → `Layer 1: "there was a brave explorer"`.
pub fn attention_caption(stem: &str) -> String {
    let rest = stem.strip_prefix("layer_").unwrap_or(stem);
    match rest.split_once('_') {
        Some((layer, slug)) if layer.chars().all(|c| c.is_ascii_digit()) => format!(
            "Layer {layer}: \"{}\" (rows: queries, columns: keys).",
            slug.replace(['-', '_'], " ")
        ),
        _ => stem.to_string(),
    }
}

/// Today's date (UTC) as `YYYY-MM-DD HH:MM UTC`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = ((secs / 86400) as i64, secs % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(
            attention_caption("layer_2_there-was-a-little-girl"),
            "Layer 2: \"there was a little girl\" (rows: queries, columns: keys)."
        );
        assert_eq!(attention_caption("other"), "other");
        assert_eq!(duration(Some(75.0)), "1 min 15 s");
        assert_eq!(duration(Some(3.25)), "3.2 s");
        assert_eq!(tidy("7.49231"), "7.492");
        assert_eq!(tidy("0.6000000238418579"), "0.6");
        assert_eq!(tidy("100.00000000000004"), "100");
        assert_eq!(tidy("20"), "20");
        assert_eq!(tidy("cache"), "cache");
        assert_eq!(show(&serde_json::json!(true)), "yes");
        assert_eq!(show(&serde_json::json!(50)), "50");
        assert_eq!(show(&serde_json::json!(0.6000000238418579)), "0.6");
        assert_eq!(label("beam_width"), "beam width");
        assert_eq!(label("bleu_sentence_mean"), "mean sentence BLEU");
        let now = utc_now();
        assert!(
            now.len() == 20 && now.ends_with(" UTC") && now.starts_with("20"),
            "{now}"
        );
    }
}
