//! A loaded project: the expanded pipeline, its DAG, the content store, the stat cache and the
//! pipeline's previous lock file. Loading writes nothing.

use crate::cache::lockfile::LockFile;
use crate::cache::stat::StatCache;
use crate::cache::Cache;
use crate::config::{self, Overrides, Pipeline};
use crate::error::{PipeError, Result};
use crate::graph::Dag;
use std::path::{Path, PathBuf};

pub struct Project {
    pub pipeline: Pipeline,
    pub dag: Dag,
    pub cache: Cache,
    pub stats: StatCache,
    pub lock: LockFile,
    /// Mirror folders for downloads (absolute), given to every stage; set by the CLI.
    pub mirrors: Vec<PathBuf>,
}

impl Project {
    /// Loads and validates a pipeline (configuration errors exit 2; nothing is written).
    pub fn load(root: &Path, file: &Path, ov: &Overrides) -> Result<Project> {
        let pipeline = config::load(root, file, ov)?;
        let dag = Dag::new(&pipeline);
        let cache = Cache::new(root);
        let stats = StatCache::load(&cache.layout().stat());
        let lock = LockFile::read(&pipeline.lock_path()).map_err(PipeError::Config)?;
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
        self.lock = LockFile::read(&self.pipeline.lock_path()).map_err(PipeError::Config)?;
        Ok(())
    }
}
