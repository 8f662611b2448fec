//! The overrides of an experiment resolved to (stage, key, value): from a `--params` file, the
//! environment (`PIPE_<STAGE>__<KEY>`) and `--set stage.key=value`, later layers winning, as
//! the loader layers them.

use super::Given;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One overridden parameter.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Override {
    pub stage: String,
    pub key: String,
    pub value: Value,
    /// Where it came from: `--set train.lr=0.01`, `PIPE_TRAIN__LR=0.01`, `--params p.yaml`.
    pub origin: String,
}

fn env_name(s: &str) -> String {
    s.to_uppercase().replace(['-', '.'], "_")
}

/// The overrides of `given` for a pipeline whose stages are `stages`, one per (stage, key),
/// in the order stage, key. Entries naming no stage are left out (the loader refuses them).
pub fn resolve(given: &Given, stages: &[String]) -> Vec<Override> {
    let mut out: Vec<Override> = Vec::new();
    let mut put = |o: Override| {
        out.retain(|x| !(x.stage == o.stage && x.key == o.key));
        out.push(o);
    };
    if let Some((path, text)) = &given.params_file {
        if let Ok(serde_yaml::Value::Mapping(m)) = serde_yaml::from_str::<serde_yaml::Value>(text) {
            for (s, v) in &m {
                let (Some(stage), serde_yaml::Value::Mapping(pm)) = (s.as_str(), v) else {
                    continue;
                };
                for (k, v) in pm {
                    if let (Some(key), Ok(value)) = (k.as_str(), serde_json::to_value(v)) {
                        put(Override {
                            stage: stage.to_string(),
                            key: key.to_string(),
                            value,
                            origin: format!("--params {path}"),
                        });
                    }
                }
            }
        }
    }
    for (var, v) in &given.env {
        let Some((st, key)) = var.strip_prefix("PIPE_").and_then(|r| r.split_once("__")) else {
            continue;
        };
        if let Some(stage) = stages.iter().find(|n| env_name(n) == st) {
            put(Override {
                stage: stage.clone(),
                key: key.to_lowercase(),
                value: crate::config::parse_scalar(v),
                origin: format!("{var}={v}"),
            });
        }
    }
    for s in &given.set {
        let Some((lhs, val)) = s.split_once('=') else {
            continue;
        };
        let found = stages
            .iter()
            .filter(|n| lhs.starts_with(&format!("{n}.")))
            .max_by_key(|n| n.len());
        if let Some(stage) = found {
            put(Override {
                stage: stage.clone(),
                key: lhs[stage.len() + 1..].to_string(),
                value: crate::config::parse_scalar(val),
                origin: format!("--set {s}"),
            });
        }
    }
    out.sort_by(|a, b| (&a.stage, &a.key).cmp(&(&b.stage, &b.key)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_layers_win() {
        let g = Given {
            set: vec!["train.lr=0.1".into(), "beam-eval.beam_width=3".into()],
            params_file: Some(("p.yaml".into(), "train: { lr: 0.5, epochs: 2 }".into())),
            env: [("PIPE_BEAM_EVAL__ALPHA".to_string(), "0.7".to_string())].into(),
        };
        let stages = ["train", "beam-eval"].map(String::from);
        let o = resolve(&g, &stages);
        let got: Vec<(&str, &str, String)> = o
            .iter()
            .map(|o| (o.stage.as_str(), o.key.as_str(), o.value.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("beam-eval", "alpha", "0.7".to_string()),
                ("beam-eval", "beam_width", "3".to_string()),
                ("train", "epochs", "2".to_string()),
                ("train", "lr", "0.1".to_string())
            ]
        );
        assert_eq!(o[3].origin, "--set train.lr=0.1");
    }
}
