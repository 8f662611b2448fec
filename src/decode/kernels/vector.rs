//! AVX2 building blocks shared by the decode kernels: the horizontal sum of a register and the
//! lane mask of a partial tail. (The vector `exp` is the crate's one, [`crate::simd::exp_fast`].)

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

/// Horizontal sum of eight lanes.
#[target_feature(enable = "avx2,fma")]
pub fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

/// Lane mask selecting the first `n` (< 8) lanes.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub fn tail_mask(n: usize) -> __m256i {
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), lanes)
}
