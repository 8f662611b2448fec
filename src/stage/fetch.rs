//! The `fetch` stage kind (scaffold: to be implemented).

use super::{KindInfo, StageCtx, StageKind};

pub struct Fetch;

impl StageKind for Fetch {
    fn info(&self) -> KindInfo {
        KindInfo {
            name: "fetch",
            version: 1,
            defaults_yaml: include_str!("../../stages/fetch.yaml"),
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
            "stage kind `fetch` is not implemented yet (stage `{}`)",
            ctx.id
        )
    }
}
