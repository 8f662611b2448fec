//! The decoder-only transformer language model of DESIGN.md section 5: its configuration, its
//! weights as plain row-major f32 arrays (the safetensors contract), checkpoints, and training on
//! dfdx. No pipeline knowledge lives here.

pub mod adamw;
pub mod batches;
pub mod checkpoint;
pub mod config;
pub mod divergence;
pub mod history;
pub mod memory;
pub mod net;
pub mod ops;
pub mod train;
pub mod weights;

pub use crate::simd::Precision;
pub use checkpoint::{Checkpoint, CheckpointMeta};
pub use config::ModelConfig;
pub use weights::{Block, BlockWeights, LayerNormWeights, LinearWeights, Param, Weights};

#[cfg(test)]
mod tests;
