//! The `tokenize` stage kind (scaffold: to be implemented).

use super::{KindInfo, StageCtx, StageKind};

pub struct Tokenize;

impl StageKind for Tokenize {
    fn info(&self) -> KindInfo {
        KindInfo {
            name: "tokenize",
            version: 1,
            defaults_yaml: include_str!("../../stages/tokenize.yaml"),
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
            "stage kind `tokenize` is not implemented yet (stage `{}`)",
            ctx.id
        )
    }
}
