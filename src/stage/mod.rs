//! Stage kinds: the contract between the engine and the built-in kinds, and the registry.
//! Each kind lives in its own file and is thin glue over the domain libraries.

mod context;
mod contract;

pub mod beam_eval;
pub mod beam_report;
pub mod command;
pub mod embed;
pub mod eval_inputs;
pub mod fetch;
pub mod infer;
pub mod kv_eval;
pub mod plot;
pub mod report;
pub mod tokenize;
pub mod train;

pub use crate::seed::derive_seed;
pub use context::{create_dir, write_file, write_measurements, StageCtx, Upstream};
pub use contract::{check_as, parse, Kind, KindInfo, StageKind};

/// Every built-in kind.
pub fn registry() -> Vec<&'static dyn StageKind> {
    vec![
        &command::Command,
        &fetch::Fetch,
        &tokenize::Tokenize,
        &embed::Embed,
        &train::Train,
        &plot::Plot,
        &infer::Infer,
        &kv_eval::KvEval,
        &beam_eval::BeamEval,
        &beam_report::BeamReport,
        &report::Report,
    ]
}

/// Looks a kind up by name.
pub fn find(name: &str) -> Option<&'static dyn StageKind> {
    registry().into_iter().find(|k| k.info().name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_are_unique_and_defaults_parse() {
        let mut names: Vec<_> = registry().iter().map(|k| k.info().name).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n);
        for k in registry() {
            let v: serde_yaml::Value = serde_yaml::from_str(k.info().defaults_yaml)
                .unwrap_or_else(|e| panic!("stages/{}.yaml: {e}", k.info().name));
            let json = serde_json::to_value(v).unwrap();
            let json = if json.is_null() {
                serde_json::json!({})
            } else {
                json
            };
            k.check(&json)
                .unwrap_or_else(|e| panic!("stages/{}.yaml defaults: {e}", k.info().name));
        }
    }

    #[test]
    fn derived_seeds_differ_by_name() {
        assert_ne!(derive_seed(1, "a", "x"), derive_seed(1, "b", "x"));
        assert_eq!(derive_seed(1, "a", "x"), derive_seed(1, "a", "x"));
    }
}
