//! Pipeline files: loading runs parse (serde types, YAML errors) → graph of the stage
//! declarations (order, cycles, upstream kinds) → layer (figment parameter layers) → expand
//! (matrix and epochs into instances) → confine (outputs and `deps`), one file each.

mod confine;
mod error;
mod expand;
mod ids;
mod inputs;
mod layer;
pub mod limits;
mod locate;
mod names;
mod parse;
pub mod resources;
pub mod settings;
mod siblings;

pub use confine::{normalise, output_rule};
pub use error::ConfigError;
pub use ids::{instance_id, natural_cmp, scalar_text, MAX_ID_BYTES};
pub use locate::{at_best, locate};
pub use names::{closest, levenshtein, nearest};
pub use settings::{ExecutorKind, ExecutorSettings, Settings};

use crate::error::Result;
use crate::graph::stages::{missing_kind, stage_order, Decl, StageGraphError};
use crate::stage::StageKind;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Overrides given on the command line (and the environment).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--set stage.key=value`, in the order given.
    pub sets: Vec<String>,
    /// `--params FILE`: a YAML map `stage: { key: value }`.
    pub params_file: Option<PathBuf>,
    /// Environment variables considered for `PIPE_<STAGE>__<KEY>` (normally `std::env::vars()`).
    pub env: Vec<(String, String)>,
}

impl Overrides {
    /// Overrides with the process environment.
    pub fn with_env(sets: Vec<String>, params_file: Option<PathBuf>) -> Self {
        Overrides {
            sets,
            params_file,
            env: std::env::vars()
                .filter(|(k, _)| k.starts_with("PIPE_"))
                .collect(),
        }
    }

    /// The overrides that apply to a pipeline with these stages, as written (`--set a.b=1`,
    /// `--params FILE`, `PIPE_A__B=1`), in that order.
    pub fn applied(&self, stages: &[String]) -> Vec<String> {
        let mut v: Vec<String> = self.sets.iter().map(|s| format!("--set {s}")).collect();
        if let Some(p) = &self.params_file {
            v.push(format!("--params {}", p.display()));
        }
        let mut env: Vec<String> = self
            .env
            .iter()
            .filter(|(k, _)| layer::env_target(k, stages).is_some())
            .map(|(k, val)| format!("{k}={val}"))
            .collect();
        env.sort();
        v.extend(env);
        v
    }
}

/// One stage instance: a node of the expanded DAG.
#[derive(Clone)]
pub struct Node {
    /// Instance id: `tokenize`, `beam-eval@beam_width=5`, `train@epoch=2`.
    pub id: String,
    /// Base stage name.
    pub stage: String,
    /// Folder name under `checkpoints/<pipeline>/`: the stage name, plus the matrix point if any.
    pub ckpt_name: String,
    pub kind: &'static dyn StageKind,
    pub kind_name: String,
    /// Fully merged parameters (matrix point and `epoch` included).
    pub params: Value,
    /// Upstream instance ids, in the order the stage sees them.
    pub needs: Vec<String>,
    /// Matrix point (empty without a matrix).
    pub matrix: BTreeMap<String, Value>,
    /// Epoch of a per-epoch kind.
    pub epoch: Option<u64>,
}

impl Node {
    /// Parameters that enter the fingerprint (`epochs` dropped for per-epoch kinds).
    pub fn fingerprint_params(&self) -> Value {
        let mut p = self.params.clone();
        if self.kind.info().per_epoch {
            if let Value::Object(m) = &mut p {
                m.remove("epochs");
            }
        }
        p
    }
}

/// A loaded, validated and expanded pipeline.
pub struct Pipeline {
    pub name: String,
    pub seed: u64,
    /// The pipeline file as given.
    pub file: PathBuf,
    /// Project root (the folder `pipe` runs in).
    pub root: PathBuf,
    /// Base stage names in file order.
    pub stages: Vec<String>,
    /// Instances: stages in a topological order of their `needs` (file order where free), each
    /// stage's instances in sorted id order.
    pub nodes: Vec<Node>,
    /// Stage name → what its Slurm jobs ask for, layered (`config::resources`).
    pub resources: BTreeMap<String, resources::Resources>,
    /// The top-level `remote:` and `executor:` settings.
    pub settings: Settings,
}

impl Pipeline {
    /// What a Slurm job of an instance asks for: its stage's resources (the kind's default for
    /// a stage this pipeline does not declare).
    pub fn resources(&self, n: &Node) -> resources::Resources {
        self.resources.get(&n.stage).cloned().unwrap_or_else(|| {
            let info = n.kind.info();
            resources::Resources::kind_default(info.name, info.heavy)
        })
    }

    /// The pipeline's lock file (`crate::layout::Layout::lock_file`: `<stem>.lock` beside
    /// the pipeline file, or in `pipelines/` for a file outside the project).
    pub fn lock_path(&self) -> PathBuf {
        crate::layout::Layout::new(&self.root).lock_file(&self.file)
    }
}

/// Parses `--set`/environment values as YAML scalars (plain text when not YAML; non-finite
/// numbers become `null`: use the loader for checked values).
pub fn parse_scalar(s: &str) -> Value {
    parse::parse_value(s).unwrap_or(Value::Null)
}

/// Loads, layers, validates and expands a pipeline file. `root` is the project root; `file` is
/// the pipeline path as given (relative to the root or absolute). Nothing is written.
pub fn load(root: &Path, file: &Path, ov: &Overrides) -> Result<Pipeline> {
    let src = parse::read(root, file)?;
    siblings::check_unique_name(root, file, &src.name)?;
    let layers = layer::Layers::build(root, &src, ov)?;

    // The stage graph: any declaration order, cycles as paths, upstream kinds present.
    let decls: Vec<Decl> = src
        .stages
        .iter()
        .map(|(n, st)| Decl {
            name: n,
            kind: &st.kind,
            needs: &st.needs,
            reads: layers.kinds[&st.kind].0.info().needs,
        })
        .collect();
    let order = match stage_order(&decls) {
        Ok(o) => o,
        Err(StageGraphError::UnknownNeed { stage, need }) => {
            let names: Vec<String> = src.stages.iter().map(|(n, _)| n.clone()).collect();
            return Err(parse::cfg(format!(
                "{}: stage `{stage}`: `needs` names `{need}`, which is not a stage of this pipeline; {}",
                src.at_stage(&stage, "needs"),
                nearest(&need, &names)
            )));
        }
        Err(StageGraphError::Cycle { path }) => {
            return Err(parse::cfg(format!(
                "{}: stage `{}`: `needs` form a cycle: {}; remove one of these needs",
                src.at_stage(&path[0], "needs"),
                path[0],
                path.join(" → ")
            )));
        }
        Err(e) => return Err(parse::cfg(format!("{}: {e:?}", src.fname))),
    };
    // Parameters are checked first; then the upstream kinds each kind reads.
    let nodes = expand::expand(&src, &layers, &order, limits::max_instances(&ov.env)?)?;
    if let Some(StageGraphError::MissingKind {
        stage,
        kind,
        missing,
    }) = missing_kind(&decls)
    {
        let st = &src
            .stages
            .iter()
            .find(|(n, _)| *n == stage)
            .expect("a declared stage")
            .1;
        let have: Vec<String> = st
            .needs
            .iter()
            .map(|n| {
                let k = &src
                    .stages
                    .iter()
                    .find(|(m, _)| m == n)
                    .expect("checked")
                    .1
                    .kind;
                format!("`{n}` ({k})")
            })
            .collect();
        let have = if have.is_empty() {
            "it has no `needs`".to_string()
        } else {
            format!("its `needs` are {}", have.join(", "))
        };
        return Err(parse::cfg(format!(
            "{}: stage `{stage}`: kind `{kind}` reads a `{missing}` stage, but {have}; add a stage of kind `{missing}` to its `needs`",
            src.at_stage(&stage, "needs"),
        )));
    }

    let kinds: BTreeMap<String, &'static dyn StageKind> = layers
        .kinds
        .iter()
        .map(|(k, (kind, _))| (k.clone(), *kind))
        .collect();
    let resources = resources::layer(&src, &kinds)?;
    let settings = settings::from_source(&src)?;
    let mut pipeline = Pipeline {
        name: src.name.clone(),
        seed: src.seed,
        file: file.to_path_buf(),
        root: root.to_path_buf(),
        stages: src.stages.iter().map(|(n, _)| n.clone()).collect(),
        nodes,
        resources,
        settings,
    };
    let lock = pipeline.lock_path();
    let nodes = std::mem::take(&mut pipeline.nodes);
    let blame = |n: &Node, key: &str| {
        let st = &src
            .stages
            .iter()
            .find(|(s, _)| *s == n.stage)
            .expect("a declared stage")
            .1;
        let params = expand::stage_params(&src, &n.stage, st).unwrap_or_default();
        layers.origin(&src, &n.stage, &st.kind, &params, &n.matrix, key)
    };
    confine::check(root, file, &lock, &nodes, blame)?;
    let allowed = inputs::allowed_folders(root, &src.allow_outside);
    inputs::check(root, &allowed, &nodes, blame)?;
    pipeline.nodes = nodes;
    Ok(pipeline)
}
