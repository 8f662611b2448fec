//! Where an instance's outputs and log live in the working tree: `results/<pipeline>/<id>/`,
//! `checkpoints/<pipeline>/<stage>/`, project files, and `results/<pipeline>/logs/<id>.log`.

use super::Project;
use crate::cache::{Area, Output};
use crate::config::Node;
use std::path::PathBuf;

impl Project {
    pub fn results_dir(&self, n: &Node) -> PathBuf {
        self.pipeline
            .root
            .join("results")
            .join(&self.pipeline.name)
            .join(&n.id)
    }

    pub fn ckpt_dir(&self, n: &Node) -> PathBuf {
        self.pipeline
            .root
            .join("checkpoints")
            .join(&self.pipeline.name)
            .join(&n.ckpt_name)
    }

    pub fn log_path(&self, n: &Node) -> PathBuf {
        self.pipeline
            .root
            .join("results")
            .join(&self.pipeline.name)
            .join("logs")
            .join(format!("{}.log", n.id))
    }

    /// Where an output file lives once materialised.
    pub fn dest(&self, n: &Node, o: &Output) -> PathBuf {
        match o.area {
            Area::Results => self.results_dir(n).join(&o.path),
            Area::Checkpoints => self.ckpt_dir(n).join(&o.path),
            Area::Project => self.pipeline.root.join(&o.path),
        }
    }

    /// The output's path relative to the project root, for messages and the lock file.
    pub fn display(&self, n: &Node, o: &Output) -> String {
        let p = &self.pipeline.name;
        match o.area {
            Area::Results => format!("results/{p}/{}/{}", n.id, o.path),
            Area::Checkpoints => format!("checkpoints/{p}/{}/{}", n.ckpt_name, o.path),
            Area::Project => o.path.clone(),
        }
    }
}
