//! Why an instance will run or be restored: one typed value per cause, shown as a phrase by
//! `pipe status` and as a tagged object by `pipe status --json`.

use serde::Serialize;
use serde_json::Value;
use std::fmt;

/// One cause of work.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// No earlier run of this stage is known.
    NewStage,
    /// `--force`.
    Forced,
    /// The lock file names a run the store no longer has.
    NoCachedRun,
    /// An earlier run of this stage was interrupted (Ctrl-C, SIGTERM).
    Interrupted,
    KindChanged {
        from: String,
        to: String,
    },
    KindVersion {
        kind: String,
        from: u32,
        to: u32,
    },
    ParamChanged {
        key: String,
        from: Option<Value>,
        to: Option<Value>,
    },
    InputChanged {
        path: String,
    },
    InputAdded {
        path: String,
    },
    InputRemoved {
        path: String,
    },
    InputMissing {
        path: String,
    },
    UpstreamChanged {
        id: String,
    },
    UpstreamAdded {
        id: String,
    },
    UpstreamRemoved {
        id: String,
    },
    UpstreamWillRun {
        id: String,
    },
    /// The upstream is forced: it reruns, and this instance runs only if the upstream's outputs
    /// come out different (`--force` with identical outputs runs nothing downstream).
    UpstreamForced {
        id: String,
    },
    /// The upstream may run (it is downstream of a forced instance).
    UpstreamMayRun {
        id: String,
    },
    /// The same upstreams in another order (a record made before upstreams were kept in
    /// canonical order, sorted by id).
    UpstreamReordered {
        from: Vec<String>,
        to: Vec<String>,
    },
    Seed {
        from: u64,
        to: u64,
    },
    PipelineName {
        from: Option<String>,
        to: Option<String>,
    },
    IdChanged {
        from: String,
        to: String,
    },
    /// A materialised output does not hold the stored content.
    OutputDiffers {
        path: String,
    },
    OutputMissing {
        path: String,
    },
    /// A file in an output folder that the run did not produce.
    OutputExtra {
        path: String,
    },
    /// The stored copy of an output is corrupt or missing.
    StoredCorrupt {
        path: String,
    },
    StoredMissing {
        path: String,
    },
    /// Nothing above explains the new fingerprint (e.g. only the order of inputs changed).
    FingerprintChanged,
}

fn short(v: &Option<Value>) -> String {
    let s = match v {
        None => return "(none)".into(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(39).collect::<String>())
    } else {
        s
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Reason::*;
        match self {
            NewStage => write!(f, "new stage"),
            Forced => write!(f, "forced"),
            NoCachedRun => write!(f, "no cached run"),
            Interrupted => write!(f, "interrupted"),
            KindChanged { from, to } => write!(f, "kind {from} -> {to}"),
            KindVersion { kind, from, to } => write!(f, "kind {kind} version {from} -> {to}"),
            ParamChanged { key, from, to } => {
                write!(f, "param {key}: {} -> {}", short(from), short(to))
            }
            InputChanged { path } => write!(f, "input {path} changed"),
            InputAdded { path } => write!(f, "input {path} added"),
            InputRemoved { path } => write!(f, "input {path} removed"),
            InputMissing { path } => write!(f, "input {path} missing"),
            UpstreamChanged { id } => write!(f, "upstream {id} changed"),
            UpstreamAdded { id } => write!(f, "upstream {id} added"),
            UpstreamRemoved { id } => write!(f, "upstream {id} removed"),
            UpstreamWillRun { id } => write!(f, "upstream {id} will run"),
            UpstreamForced { id } => write!(
                f,
                "upstream {id} is forced (nothing runs here if its outputs come out identical)"
            ),
            UpstreamMayRun { id } => write!(f, "upstream {id} may run"),
            UpstreamReordered { from, to } => write!(
                f,
                "upstreams reordered: {} -> {}",
                from.join(", "),
                to.join(", ")
            ),
            Seed { from, to } => write!(f, "seed {from} -> {to}"),
            PipelineName { from, to } => write!(
                f,
                "pipeline name {} -> {}",
                from.as_deref().unwrap_or("(unused)"),
                to.as_deref().unwrap_or("(unused)")
            ),
            IdChanged { from, to } => write!(f, "stage id {from} -> {to}"),
            OutputDiffers { path } => write!(f, "{path} differs from the stored output"),
            OutputMissing { path } => write!(f, "{path} is missing"),
            OutputExtra { path } => write!(f, "{path} is not an output of the recorded run"),
            StoredCorrupt { path } => write!(f, "the stored copy of {path} is corrupt"),
            StoredMissing { path } => write!(f, "the stored copy of {path} is missing"),
            FingerprintChanged => write!(f, "fingerprint changed"),
        }
    }
}

/// Joins reasons for one status line.
pub fn join(reasons: &[Reason]) -> String {
    reasons
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_phrases_and_serialise_tagged() {
        let r = Reason::ParamChanged {
            key: "lr".into(),
            from: Some(serde_json::json!(0.0003)),
            to: Some(serde_json::json!(0.001)),
        };
        assert_eq!(r.to_string(), "param lr: 0.0003 -> 0.001");
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["reason"], "param_changed");
        assert_eq!(j["key"], "lr");
    }
}
