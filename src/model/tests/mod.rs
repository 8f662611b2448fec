//! Unit tests of the model library that span its modules: the fused ops against the composed
//! reference, training behaviour (overfitting, gradients, resume, determinism, divergence), and
//! the training forward pass against the decode paths.

mod composed;
mod fused_ops;
mod model_paths;
mod train_model;
