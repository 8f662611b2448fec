//! The model for inference: borrowed [`Weights`] plus their linear layers repacked for the
//! decoding kernels in the chosen precision (built once), and the one inference block that both
//! the cached ([`super::Decoder`]) and the uncached ([`super::forward`]) paths run, with
//! attention passed in. The state of a decoding run (KV cache, scratch) lives elsewhere.
//!
//! Precision: f32 packs f32 panels; bf16 packs bf16 tiles for the AMX / AVX512-BF16 kernels
//! (half the bytes), or, on CPUs without them, f32 panels of bf16-rounded weights whose inputs
//! are rounded too (the same numbers up to the order of additions). LayerNorm, attention, the
//! KV cache and the logits stay f32.

use super::kernels::{
    add_assign, embed, layer_norm, linear, linear16, linear_packed, relu, PackedLinear,
    PackedLinear16,
};
use crate::model::{Block, LinearWeights, ModelConfig, Precision, Weights};
use crate::simd::bf16::{self, Kernel, Products};

/// Row counts up to this use the packed few-row kernel; more (long prefills, scoring) use
/// `gemm` over the plain weights.
const PACKED_ROWS: usize = 64;

/// A linear layer packed for one precision.
#[derive(Debug, Clone)]
pub enum Packed {
    /// f32 panels (many rows go through `gemm` over the plain weights).
    F32(PackedLinear),
    /// bf16 tiles for the AMX / AVX512-BF16 kernels.
    Bf16(PackedLinear16),
    /// f32 panels of the bf16-rounded weights (bf16 on CPUs without bf16 kernels).
    Rounded(PackedLinear),
}

impl Packed {
    /// Packs `lin` for `products`.
    pub fn new(lin: &LinearWeights, products: Products) -> Self {
        match products {
            Products::F32 => Packed::F32(PackedLinear::new(lin)),
            Products::Bf16(Kernel::Portable) => {
                let mut r = lin.clone();
                bf16::round_slice(&mut r.weight);
                Packed::Rounded(PackedLinear::new(&r))
            }
            Products::Bf16(_) => Packed::Bf16(PackedLinear16::new(lin)),
        }
    }

    /// Bytes held, for memory estimates.
    pub fn bytes(&self) -> usize {
        match self {
            Packed::F32(p) | Packed::Rounded(p) => 4 * p.floats(),
            Packed::Bf16(p) => p.bytes(),
        }
    }
}

/// Weights and their packed copy, plus the thread count and precision the kernels use.
#[derive(Debug, Clone)]
pub struct Model<'w> {
    w: &'w Weights,
    /// Each block's linear layers repacked (LayerNorms are read from `w`).
    packed: Vec<Block<Packed, ()>>,
    head: Packed,
    threads: usize,
    products: Products,
}

/// Activation buffers of one pass over `rows` rows (sized once, reused by every block).
#[derive(Debug, Clone)]
pub struct Scratch {
    /// `[rows, d_model]`: LayerNorm outputs and block-branch outputs.
    t1: Vec<f32>,
    /// `[rows, d_attn]`: `attn_in(ln1(h))`.
    a: Vec<f32>,
    /// `[rows, d_attn]` each: queries, keys and values of the new rows.
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    /// `[rows, d_attn]`: attention output (heads concatenated), then `attn.o` of it.
    o: Vec<f32>,
    t2: Vec<f32>,
    /// `[rows, d_ff]`.
    f: Vec<f32>,
}

impl Scratch {
    /// Buffers for up to `rows` rows of a model shaped `c`.
    pub fn new(c: &ModelConfig, rows: usize) -> Self {
        let (dm, da) = (rows * c.d_model, rows * c.d_attn);
        Scratch {
            t1: vec![0.0; dm],
            a: vec![0.0; da],
            q: vec![0.0; da],
            k: vec![0.0; da],
            v: vec![0.0; da],
            o: vec![0.0; da],
            t2: vec![0.0; da],
            f: vec![0.0; rows * c.d_ff],
        }
    }
}

/// Bytes per weight of the packed copy a model in `precision` holds on this CPU (for the memory
/// check, `memory::Workload::packed_weight_bytes`): 2 with a packed bf16 kernel (AMX or
/// AVX512-BF16), 4 otherwise (f32 panels, or bf16-rounded f32 panels on other CPUs).
pub fn packed_weight_bytes(precision: Precision) -> u64 {
    match Products::of(precision).packed() {
        Some(_) => 2,
        None => 4,
    }
}

impl<'w> Model<'w> {
    /// Packs the linear layers of `w` for f32 products; the kernels use up to `threads`
    /// threads.
    pub fn new(w: &'w Weights, threads: usize) -> Self {
        Model::new_in(w, threads, Precision::F32)
    }

    /// Packs the linear layers of `w` for products in `precision` (with this CPU's kernel).
    pub fn new_in(w: &'w Weights, threads: usize, precision: Precision) -> Self {
        Model::with_products(w, threads, Products::of(precision))
    }

    /// Packs the linear layers of `w` for `products`.
    pub fn with_products(w: &'w Weights, threads: usize, products: Products) -> Self {
        let pack = |l: &LinearWeights| Packed::new(l, products);
        Model {
            w,
            packed: w.blocks.iter().map(|b| b.map(pack, |_| ())).collect(),
            head: pack(&w.head),
            threads: threads.max(1),
            products,
        }
    }

    pub fn products(&self) -> Products {
        self.products
    }

    /// Bytes of the packed copy of the weights.
    pub fn packed_bytes(&self) -> usize {
        let mut n = self.head.bytes();
        for b in &self.packed {
            b.map(|p| n += p.bytes(), |_| ());
        }
        n
    }

    pub fn weights(&self) -> &'w Weights {
        self.w
    }

    pub fn config(&self) -> &'w ModelConfig {
        &self.w.config
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// `y = x·Wᵀ + b` for `rows` rows: f32 through the packed copy for few rows and `gemm` for
    /// many; bf16 through the bf16 kernels (or rounded inputs through the rounded panels).
    fn lin(&self, x: &[f32], rows: usize, plain: &LinearWeights, packed: &Packed, y: &mut [f32]) {
        match packed {
            Packed::F32(p) if rows <= PACKED_ROWS => linear_packed(x, rows, p, y, self.threads),
            Packed::F32(_) => linear(x, rows, plain, y, self.threads),
            Packed::Bf16(p) => {
                let kernel = self
                    .products
                    .packed()
                    .expect("bf16 layers have a packed kernel");
                linear16(x, rows, p, y, self.threads, kernel)
            }
            Packed::Rounded(p) => {
                let mut xr = x[..rows * p.in_dim].to_vec();
                bf16::round_slice(&mut xr);
                linear_packed(&xr, rows, p, y, self.threads)
            }
        }
    }

    /// `h[r] = tok_emb[ids[r]] + PE[pos[r]]`                                 `[rows, d_model]`
    pub fn embed(&self, ids: &[u32], pos: &[usize], h: &mut [f32]) {
        embed(&self.w.tok_emb, self.w.config.d_model, ids, pos, h);
    }

    /// Block `l` over the `rows` rows of `h` (`[rows, d_model]`, updated in place).
    /// `attend(q, k, v, o)` gets the new rows' queries, keys and values (`[rows, d_attn]`
    /// each) and writes their attention output, heads concatenated, into `o` (`[rows, d_attn]`);
    /// which keys each row sees (a KV cache, a window of the same segment) is its business.
    pub fn block(
        &self,
        l: usize,
        h: &mut [f32],
        rows: usize,
        s: &mut Scratch,
        attend: impl FnOnce(&[f32], &[f32], &[f32], &mut [f32]),
    ) {
        let c = &self.w.config;
        let (blk, pb) = (&self.w.blocks[l], &self.packed[l]);
        let (dm, da, df) = (rows * c.d_model, rows * c.d_attn, rows * c.d_ff);
        // a = attn_in(ln1(h))                                               [rows, d_attn]
        layer_norm(h, rows, &blk.ln1, &mut s.t1);
        self.lin(&s.t1, rows, &blk.attn_in, &pb.attn_in, &mut s.a);
        // q, k, v = attn.q(a), attn.k(a), attn.v(a)                   each [rows, d_attn]
        self.lin(&s.a, rows, &blk.q, &pb.q, &mut s.q);
        self.lin(&s.a, rows, &blk.k, &pb.k, &mut s.k);
        self.lin(&s.a, rows, &blk.v, &pb.v, &mut s.v);
        // o = softmax(q kᵀ/√d_k + mask) v per head, heads concatenated       [rows, d_attn]
        attend(&s.q[..da], &s.k[..da], &s.v[..da], &mut s.o[..da]);
        // h += attn_out(attn.o(o))                                          [rows, d_model]
        self.lin(&s.o, rows, &blk.o, &pb.o, &mut s.t2);
        self.lin(&s.t2, rows, &blk.attn_out, &pb.attn_out, &mut s.t1);
        add_assign(&mut h[..dm], &s.t1[..dm]);
        // h += ff.down(relu(ff.up(ln2(h))))              [rows, d_ff] → [rows, d_model]
        layer_norm(h, rows, &blk.ln2, &mut s.t1);
        self.lin(&s.t1, rows, &blk.ff_up, &pb.ff_up, &mut s.f);
        relu(&mut s.f[..df]);
        self.lin(&s.f, rows, &blk.ff_down, &pb.ff_down, &mut s.t1);
        add_assign(&mut h[..dm], &s.t1[..dm]);
    }

    /// `y = ln_f(x)` for `rows` rows                                        `[rows, d_model]`
    pub fn final_norm(&self, x: &[f32], rows: usize, y: &mut [f32]) {
        layer_norm(x, rows, &self.w.ln_f, y);
    }

    /// `logits = head(x)` for `rows` rows of final hidden states                 `[rows, V]`
    pub fn head(&self, x: &[f32], rows: usize, logits: &mut [f32]) {
        self.lin(x, rows, &self.w.head, &self.head, logits);
    }
}
