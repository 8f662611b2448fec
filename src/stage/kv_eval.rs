//! The `kv-eval` stage kind (scaffold: to be implemented).

use super::{KindInfo, StageCtx, StageKind};

pub struct KvEval;

impl StageKind for KvEval {
    fn info(&self) -> KindInfo {
        KindInfo {
            name: "kv-eval",
            version: 1,
            defaults_yaml: include_str!("../../stages/kv-eval.yaml"),
            heavy: true,
            per_epoch: false,
            free_matrix_keys: false,
        }
    }

    fn check(&self, _params: &serde_json::Value) -> Result<(), String> {
        Ok(())
    }

    fn run(&self, ctx: &StageCtx) -> anyhow::Result<()> {
        anyhow::bail!(
            "stage kind `kv-eval` is not implemented yet (stage `{}`)",
            ctx.id
        )
    }
}
