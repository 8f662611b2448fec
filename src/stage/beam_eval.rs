//! The `beam-eval` stage kind (scaffold: to be implemented).

use super::{KindInfo, StageCtx, StageKind};

pub struct BeamEval;

impl StageKind for BeamEval {
    fn info(&self) -> KindInfo {
        KindInfo {
            name: "beam-eval",
            version: 1,
            defaults_yaml: include_str!("../../stages/beam-eval.yaml"),
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
            "stage kind `beam-eval` is not implemented yet (stage `{}`)",
            ctx.id
        )
    }
}
