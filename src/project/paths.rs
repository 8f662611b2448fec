//! Where an instance's outputs and log live in the working tree (named by
//! `crate::layout::PipelineLayout`): `results/<pipeline>/<id>/`, `checkpoints/<pipeline>/<stage>/`,
//! project files, and `results/<pipeline>/logs/<id>.log`.

use super::Project;
use crate::cache::Output;
use crate::config::Node;
use crate::layout::{Layout, PipelineLayout};
use std::path::PathBuf;

impl Project {
    /// The project's layout.
    pub fn layout(&self) -> Layout {
        Layout::new(&self.pipeline.root)
    }

    /// The folders of this pipeline.
    pub fn dirs(&self) -> PipelineLayout {
        self.layout().pipeline(&self.pipeline.name)
    }

    pub fn results_dir(&self, n: &Node) -> PathBuf {
        self.dirs().instance(&n.id)
    }

    pub fn ckpt_dir(&self, n: &Node) -> PathBuf {
        self.dirs().stage_checkpoints(&n.ckpt_name)
    }

    pub fn log_path(&self, n: &Node) -> PathBuf {
        self.dirs().log(&n.id)
    }

    /// Where an output file lives once materialised.
    pub fn dest(&self, n: &Node, o: &Output) -> PathBuf {
        self.dirs().output(o.area, &n.id, &n.ckpt_name, &o.path)
    }

    /// The output's path relative to the project root, for messages and the lock file.
    pub fn display(&self, n: &Node, o: &Output) -> String {
        self.dirs().output_rel(o.area, &n.id, &n.ckpt_name, &o.path)
    }
}
