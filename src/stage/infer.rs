//! The `infer` stage kind (scaffold: to be implemented).

use super::{KindInfo, StageCtx, StageKind};

pub struct Infer;

impl StageKind for Infer {
    fn info(&self) -> KindInfo {
        KindInfo {
            name: "infer",
            version: 1,
            defaults_yaml: include_str!("../../stages/infer.yaml"),
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
            "stage kind `infer` is not implemented yet (stage `{}`)",
            ctx.id
        )
    }
}
