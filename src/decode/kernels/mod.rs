//! Inference kernels over plain row-major f32 slices, by job: linear layers ([`linear`]: packed
//! panels for the few rows of a decoding step with AVX2 / AVX-512 variants picked at run time,
//! `gemm` for many rows; [`linear16`]: bf16 weights through the AMX / AVX512-BF16 kernels), one query row's multi-head attention ([`attention`]), the scans of a
//! search step ([`scans`]), LayerNorm / ReLU / residual add / embedding ([`elementwise`]), and
//! the AVX2 building blocks they share, the one vector `exp` among them ([`vector`]).

pub mod attention;
pub mod elementwise;
pub mod linear;
pub mod linear16;
pub mod scans;
mod vector;

#[cfg(test)]
mod tests;

pub use crate::simd::dot;
pub use attention::attend_row;
pub use elementwise::{add_assign, embed, layer_norm, relu};
pub use linear::{linear, linear_packed, PackedLinear, PANEL};
pub use linear16::{linear16, PackedLinear16};
pub use scans::{first_above, log_sum_exp, log_sum_exp_fast};
