//! The `plot` stage kind (scaffold: to be implemented).

use super::{KindInfo, StageCtx, StageKind};

pub struct Plot;

impl StageKind for Plot {
    fn info(&self) -> KindInfo {
        KindInfo {
            name: "plot",
            version: 1,
            defaults_yaml: include_str!("../../stages/plot.yaml"),
            heavy: false,
            per_epoch: false,
            free_matrix_keys: false,
        }
    }

    fn check(&self, _params: &serde_json::Value) -> Result<(), String> {
        Ok(())
    }

    fn run(&self, ctx: &StageCtx) -> anyhow::Result<()> {
        anyhow::bail!(
            "stage kind `plot` is not implemented yet (stage `{}`)",
            ctx.id
        )
    }
}
