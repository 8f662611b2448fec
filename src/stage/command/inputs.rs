//! The upstream folders a `command` stage sees, as environment variables: `PIPE_IN_<STAGE>`
//! (the results folder of an upstream stage with one instance; `<STAGE>` upper-cased, any
//! character but a letter or digit as `_`) and `PIPE_INPUTS`, a JSON object of every upstream
//! instance id → `{"stage", "results", "checkpoints"}`. Paths are relative to the project root
//! (the command's working folder) when they lie inside it.

use crate::stage::StageCtx;
use std::collections::BTreeMap;
use std::path::Path;

/// `PIPE_IN_` + the stage name upper-cased, other characters as `_`.
pub fn var_name(stage: &str) -> String {
    let up: String = stage
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("PIPE_IN_{up}")
}

fn shown(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}

/// The variables for `ctx`'s upstream stages.
pub fn variables(ctx: &StageCtx) -> anyhow::Result<Vec<(String, String)>> {
    let mut per_stage: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut all = serde_json::Map::new();
    for u in &ctx.upstream {
        let results = shown(&ctx.root, &u.results);
        per_stage.entry(&u.stage).or_default().push(results.clone());
        all.insert(
            u.id.clone(),
            serde_json::json!({
                "stage": u.stage,
                "results": results,
                "checkpoints": shown(&ctx.root, &u.checkpoints),
            }),
        );
    }
    let mut vars: Vec<(String, String)> = per_stage
        .into_iter()
        .filter(|(_, dirs)| dirs.len() == 1)
        .map(|(stage, dirs)| (var_name(stage), dirs[0].clone()))
        .collect();
    vars.push((
        "PIPE_INPUTS".into(),
        serde_json::to_string(&serde_json::Value::Object(all))?,
    ));
    Ok(vars)
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert_eq!(super::var_name("beam-eval"), "PIPE_IN_BEAM_EVAL");
        assert_eq!(super::var_name("words"), "PIPE_IN_WORDS");
    }
}
