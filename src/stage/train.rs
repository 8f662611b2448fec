//! The `train` stage kind (scaffold: to be implemented).

use super::{KindInfo, StageCtx, StageKind};

pub struct Train;

impl StageKind for Train {
    fn info(&self) -> KindInfo {
        KindInfo {
            name: "train",
            version: 1,
            defaults_yaml: include_str!("../../stages/train.yaml"),
            heavy: true,
            per_epoch: true,
            free_matrix_keys: false,
        }
    }

    fn check(&self, _params: &serde_json::Value) -> Result<(), String> {
        Ok(())
    }

    fn run(&self, ctx: &StageCtx) -> anyhow::Result<()> {
        anyhow::bail!(
            "stage kind `train` is not implemented yet (stage `{}`)",
            ctx.id
        )
    }
}
