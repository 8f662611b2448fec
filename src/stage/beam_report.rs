//! The `beam-report` stage kind (scaffold: to be implemented).

use super::{KindInfo, StageCtx, StageKind};

pub struct BeamReport;

impl StageKind for BeamReport {
    fn info(&self) -> KindInfo {
        KindInfo {
            name: "beam-report",
            version: 1,
            defaults_yaml: include_str!("../../stages/beam-report.yaml"),
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
            "stage kind `beam-report` is not implemented yet (stage `{}`)",
            ctx.id
        )
    }
}
