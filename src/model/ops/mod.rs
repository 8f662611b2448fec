//! Fused training operations recorded on dfdx's autodiff tape (`Tape::add_backward_op`), by job:
//! matrix products ([`matmul`]), tape plumbing ([`tape`]), the layers (linear (+ ReLU),
//! LayerNorm, residual add fused with dropout: [`layers`]), causal multi-head attention
//! ([`attention`]), the output layer fused with cross-entropy ([`loss`]) and the element-wise
//! SIMD kernels ([`kernels`]). Each op computes its forward pass over plain slices (matrix
//! products through `gemm` in fixed partitions, row-parallel element-wise work on the rayon
//! pool) and accumulates its gradients straight into dfdx's gradients. Partitions never depend
//! on the thread count, so results are byte-identical with 1 or 2 threads.

pub mod attention;
pub mod kernels;
pub mod layers;
pub mod loss;
#[cfg(target_arch = "x86_64")]
pub mod loss16;
pub mod mask;
pub mod matmul;
pub mod tape;

pub use attention::attention;
pub use kernels::exp_fast;
pub use layers::{dropout, layer_norm, linear, residual, HostLin, Lin, Ln};
pub use loss::{head_loss, head_nll};
pub use mask::DropMask;
pub use matmul::{add_col_sums, matmul, matmul_in, MatRef};
pub use tape::{Act, T1, T2};
