//! The `report` stage kind (scaffold: to be implemented).

use super::{KindInfo, StageCtx, StageKind};

pub struct Report;

impl StageKind for Report {
    fn info(&self) -> KindInfo {
        KindInfo {
            name: "report",
            version: 1,
            defaults_yaml: include_str!("../../stages/report.yaml"),
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
            "stage kind `report` is not implemented yet (stage `{}`)",
            ctx.id
        )
    }
}
