//! Unit tests of the model library that span its modules: the fused ops against the composed
//! reference, training behaviour (overfitting, gradients, resume, determinism, divergence), and
//! the training forward pass against the decode paths; bf16 training against f32.

#[cfg(target_arch = "x86_64")]
mod bf16;
mod composed;
mod fused_ops;
mod model_paths;
mod train_model;
