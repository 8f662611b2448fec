//! The `embed` stage kind (scaffold: to be implemented).

use super::{KindInfo, StageCtx, StageKind};

pub struct Embed;

impl StageKind for Embed {
    fn info(&self) -> KindInfo {
        KindInfo {
            name: "embed",
            version: 1,
            defaults_yaml: include_str!("../../stages/embed.yaml"),
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
            "stage kind `embed` is not implemented yet (stage `{}`)",
            ctx.id
        )
    }
}
