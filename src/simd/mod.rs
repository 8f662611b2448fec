//! CPU feature checks and small slice helpers shared by the training ops (`model::ops`) and the
//! inference kernels (`decode::kernels`), the one vector-friendly `exp` ([`exp_fast`]), and the
//! [`simd_kernel`] macro that compiles a body for AVX2 + FMA behind a run-time check; the bf16
//! matrix products ([`bf16`]), the matrix operand view ([`mat`]) and the denormal flags of the
//! compute threads ([`denormals`]).

pub mod bf16;
pub mod denormals;
pub mod mat;
pub mod peak;

pub use bf16::Precision;

/// Whether the AVX2 + FMA kernels can run on this CPU (checked once).
pub fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `exp(x)` for `x ≤ 88`, branch-free so that loops over it vectorise: `2^k · e^r` with
/// `k = ⌊x·log₂e⌉`, `r = x − k·ln 2` (in two parts) and Cephes' degree-6 polynomial for `e^r`
/// (within 2 ulp of the exact value; inputs below −87 give ~1e-38 instead of 0).
#[inline(always)]
pub fn exp_fast(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let k = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = x - k * 0.693_359_4 + k * 2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 0.166_666_65)
        * r
        + 0.5;
    let e = p * r * r + r + 1.0;
    // 2^k from the bits of k + 1.5·2²³ (whose low mantissa bits hold k): integer lane
    // operations only, unlike a float-to-int cast, so the loop stays vectorised.
    let bits = (k + 12_582_912.0).to_bits();
    e * f32::from_bits(bits.wrapping_sub(0x4B40_0000 - 127) << 23)
}

/// Whether the AVX-512F kernels can run on this CPU (checked once; `PIPE_NO_AVX512=1` says no,
/// for comparisons).
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            std::env::var_os("PIPE_NO_AVX512").is_none() && is_x86_feature_detected!("avx512f")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A raw output pointer shared by parallel tasks that each write a disjoint part of one buffer.
#[derive(Clone, Copy)]
pub struct SharedMut(pub *mut f32);
// SAFETY: users guarantee that tasks write disjoint elements (each use site says how).
unsafe impl Send for SharedMut {}
// SAFETY: as for `Send`: tasks sharing the pointer write disjoint elements.
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// The pointer (a method, so closures capture the whole `Sync` wrapper).
    pub fn get(self) -> *mut f32 {
        self.0
    }
}

/// Dot product with eight independent accumulators (vectorises; the same order of additions
/// whatever the vector width).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = (acc[0] + acc[4]) + (acc[1] + acc[5]) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ar.iter().zip(br) {
        s += x * y;
    }
    s
}

/// `Σ f(x_i)` with eight independent partial sums (vectorises; a single running sum is one long
/// chain of dependent adds), folded as `((a0+a4) + (a1+a5)) + ((a2+a6) + (a3+a7))`, then the
/// tail in order. The one lane sum of the crate.
#[inline(always)]
pub fn sum_lanes(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for l in 0..8 {
            acc[l] += f(c[l]);
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for &v in chunks.remainder() {
        s += f(v);
    }
    s
}

/// Sum with eight independent accumulators ([`sum_lanes`] of the identity).
#[inline]
pub fn sum8(a: &[f32]) -> f32 {
    sum_lanes(a, |v| v)
}

/// Defines `fn name(args) -> ret` whose body runs compiled for AVX2 and FMA when the CPU has
/// them (checked at run time) and for baseline x86-64 otherwise, so its element-wise loops are
/// vectorised 8 wide. Vectorisation never reorders floating-point sums (and Rust never fuses a
/// multiply and an add on its own), so both give the same results.
macro_rules! simd_kernel {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                /// [`body`] compiled with AVX2 and FMA enabled.
                ///
                /// # Safety
                /// The CPU supports AVX2 and FMA.
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn fast($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if $crate::simd::has_avx2_fma() {
                    // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                    return unsafe { fast($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use simd_kernel;
