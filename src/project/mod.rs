//! A loaded project: the expanded pipeline, its DAG, the content store, the stat cache, the
//! pipeline's previous lock file and where each instance's files live ([`paths`]). Loading
//! writes nothing.

mod paths;

use crate::cache::lockfile::LockFile;
use crate::cache::stat::StatCache;
use crate::cache::{Cache, FingerprintKey};
use crate::config::{self, natural_cmp, Node, Overrides, Pipeline};
use crate::error::{PipeError, Result};
use crate::graph::{Dag, Shown};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The store of the project at `root`, checking every run record's project outputs against
/// the `outs` its stage kind declares (`cache::trust`). Every caller that reads run records
/// opens the store with this.
pub fn open_cache(root: &Path) -> Cache {
    Cache::new(root).with_owners(std::sync::Arc::new(|key: &FingerprintKey| {
        crate::stage::find(&key.kind).map(|k| k.declared_outputs(&key.params))
    }))
}

pub struct Project {
    pub pipeline: Pipeline,
    pub dag: Dag,
    pub cache: Cache,
    pub stats: StatCache,
    pub lock: LockFile,
    /// Mirror folders for downloads (absolute), given to every stage; set by the caller.
    pub mirrors: Vec<PathBuf>,
}

impl Project {
    /// Loads and validates a pipeline (configuration errors exit 2; nothing is written).
    pub fn load(root: &Path, file: &Path, ov: &Overrides) -> Result<Project> {
        let pipeline = config::load(root, file, ov)?;
        Self::from_pipeline(pipeline)
    }

    /// A project around a loaded pipeline.
    pub fn from_pipeline(pipeline: Pipeline) -> Result<Project> {
        let dag = dag(&pipeline.nodes);
        let cache = open_cache(&pipeline.root);
        let stats = StatCache::load(&pipeline.root);
        let lock = LockFile::read(&pipeline.lock_path()).map_err(PipeError::config)?;
        Ok(Project {
            pipeline,
            dag,
            cache,
            stats,
            lock,
            mirrors: Vec::new(),
        })
    }

    /// Re-reads the lock file (another run may have just finished).
    pub fn reload_lock(&mut self) -> Result<()> {
        self.lock = LockFile::read(&self.pipeline.lock_path()).map_err(PipeError::config)?;
        Ok(())
    }

    /// The index of an instance id.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.pipeline.nodes.iter().position(|n| n.id == id)
    }
}

/// The DAG of the instances. Each instance's upstreams are in canonical order (sorted by id,
/// numbers as numbers), never in the order `needs` lists them: reordering `needs` changes no
/// fingerprint and nothing a stage sees.
fn dag(nodes: &[Node]) -> Dag {
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let upstream = nodes
        .iter()
        .map(|n| {
            let mut ups: Vec<usize> = n.needs.iter().map(|u| index[u.as_str()]).collect();
            ups.sort_by(|&a, &b| natural_cmp(&nodes[a].id, &nodes[b].id));
            ups.dedup();
            ups
        })
        .collect();
    Dag::new(upstream)
}

impl Shown for Node {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> &str {
        &self.kind_name
    }

    fn needs(&self) -> &[String] {
        &self.needs
    }

    fn json_fields(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("stage".into(), self.stage.clone().into());
        m.insert(
            "matrix".into(),
            serde_json::to_value(&self.matrix).unwrap_or_default(),
        );
        if let Some(e) = self.epoch {
            m.insert("epoch".into(), e.into());
        }
        m
    }
}
