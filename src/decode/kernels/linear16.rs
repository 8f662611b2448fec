//! Linear layers for decoding with bf16 weights: a layer's `Wᵀ` packed once in the bf16 tile
//! layout ([`PackedLinear16`], half the bytes of the f32 panels, so a decoding step streams half
//! as much), one row through the AVX512-BF16 row kernel, several rows through AMX tiles (or
//! AVX512-BF16 blocks). Activations are rounded to bf16 as they enter a product; accumulation,
//! bias and everything after stay f32.

use crate::model::LinearWeights;
use crate::simd::bf16::{self, Dst, Kernel, PackedA, PackedB};
use crate::simd::mat::MatRef;

/// A linear layer packed for the bf16 kernels.
#[derive(Debug, Clone)]
pub struct PackedLinear16 {
    pub in_dim: usize,
    pub out_dim: usize,
    w: PackedB,
    bias: Vec<f32>,
}

impl PackedLinear16 {
    pub fn new(lin: &LinearWeights) -> Self {
        PackedLinear16 {
            in_dim: lin.in_dim,
            out_dim: lin.out_dim,
            w: PackedB::weights(&lin.weight, lin.out_dim, lin.in_dim),
            bias: lin.bias.clone(),
        }
    }

    /// Bytes held (packed weights and the f32 bias), for memory estimates.
    pub fn bytes(&self) -> usize {
        self.w.bytes() + 4 * self.bias.len()
    }
}

/// `y[r] = x[r] · Wᵀ + b` for `rows` rows with `kernel` (AMX or AVX512-BF16); the product is
/// split across the rayon pool when `threads > 1` and it is large.
///
/// # Panics
/// When the lengths do not match, or `kernel` is the portable one (which decodes with rounded
/// f32 panels instead).
pub fn linear16(
    x: &[f32],
    rows: usize,
    p: &PackedLinear16,
    y: &mut [f32],
    threads: usize,
    kernel: Kernel,
) {
    let (n_in, n_out) = (p.in_dim, p.out_dim);
    assert!(x.len() >= rows * n_in && y.len() >= rows * n_out);
    if rows == 0 {
        return;
    }
    let parallel = threads > 1;
    if rows == 1 {
        return bf16::gemv(&x[..n_in], &p.w, &p.bias, &mut y[..n_out], parallel);
    }
    let a = PackedA::new(MatRef::rows(&x[..rows * n_in], n_in), rows, n_in);
    let dst = Dst {
        data: &mut y[..rows * n_out],
        ld: n_out,
        transposed: false,
        accumulate: false,
        alpha: 1.0,
        bias: Some(&p.bias),
    };
    bf16::gemm(kernel, &a, &p.w, dst, parallel);
}
