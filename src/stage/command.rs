//! The `command` stage kind (scaffold: to be implemented).

use super::{KindInfo, StageCtx, StageKind};

pub struct Command;

impl StageKind for Command {
    fn info(&self) -> KindInfo {
        KindInfo {
            name: "command",
            version: 1,
            defaults_yaml: include_str!("../../stages/command.yaml"),
            heavy: false,
            per_epoch: false,
            free_matrix_keys: true,
        }
    }

    fn check(&self, _params: &serde_json::Value) -> Result<(), String> {
        Ok(())
    }

    fn run(&self, ctx: &StageCtx) -> anyhow::Result<()> {
        anyhow::bail!(
            "stage kind `command` is not implemented yet (stage `{}`)",
            ctx.id
        )
    }
}
