//! bf16 operands packed in tiles of 1 KB, the layout the bf16 kernels read (AMX tiles and
//! AVX512-BF16 alike):
//!
//! - [`PackedA`], the left operand `[m × k]`: tiles of 16 rows × 32 `k`, row-major inside a
//!   tile (one 64-byte tile row per matrix row); tile `(i, s)` (rows `16i…`, `k` `32s…`) at
//!   `(i · ksteps + s) · 512`.
//! - [`PackedB`], the right operand `[k × n]`: tiles of 32 `k` × 16 columns in the pair
//!   ("VNNI") layout: tile row `p` holds, for each of the 16 columns, the pair `(k = 2p,
//!   k = 2p + 1)`; tile `(j, s)` (columns `16j…`, `k` `32s…`) at `(j · ksteps + s) · 512`.
//!
//! Rows and columns are padded with zeros to a multiple of 32 (tile pairs), `k` to a multiple
//! of 32. Conversion rounds to nearest even, flushes denormals to zero and keeps NaN a NaN, as
//! the hardware conversion (`vcvtneps2bf16`) does, so every path packs the same bits. With
//! AVX512-BF16, operands whose rows or columns are contiguous are packed with vector code
//! ([`super::pack_avx512`]); anything else by the scalar loops here.

use crate::simd::mat::MatRef;
use rayon::prelude::*;

/// Rows (of A) or columns (of B) per tile.
pub const TILE: usize = 16;
/// `k` values per tile.
pub const TILE_K: usize = 32;
/// bf16 values per tile (1 KB).
pub const TILE_LEN: usize = TILE * TILE_K;

/// `x` rounded to bf16 (its upper 16 bits after rounding to nearest even); denormals become
/// ±0 and NaNs stay NaN.
#[inline(always)]
pub fn to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    let b = if b & 0x7f80_0000 == 0 {
        b & 0x8000_0000
    } else {
        b
    };
    if b & 0x7fff_ffff > 0x7f80_0000 {
        ((b >> 16) | 0x40) as u16
    } else {
        ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
    }
}

/// The f32 value of a bf16.
#[inline(always)]
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// `x` rounded to the nearest bf16 value, as an f32.
#[inline(always)]
pub fn round_bf16(x: f32) -> f32 {
    from_bf16(to_bf16(x))
}

/// Every element of `x` rounded to bf16 precision, in place.
pub fn round_slice(x: &mut [f32]) {
    x.par_chunks_mut(1 << 14).for_each(|c| {
        for v in c {
            *v = round_bf16(*v);
        }
    });
}

/// Tiles of 16 needed for `n` rows or columns, rounded up to an even count (tile pairs).
pub fn tile_pairs(n: usize) -> usize {
    n.div_ceil(2 * TILE) * 2
}

/// The left operand of a product, packed (module doc).
#[derive(Debug, Clone, Default)]
pub struct PackedA {
    pub m: usize,
    pub k: usize,
    /// Row tiles (even).
    pub mt: usize,
    /// `k` steps of 32.
    pub ksteps: usize,
    pub data: Vec<u16>,
}

/// The right operand of a product, packed in the pair layout (module doc).
#[derive(Debug, Clone, Default)]
pub struct PackedB {
    pub k: usize,
    pub n: usize,
    /// Column tiles (even).
    pub nt: usize,
    /// `k` steps of 32.
    pub ksteps: usize,
    pub data: Vec<u16>,
}

impl PackedA {
    /// Packs `a` `[m × k]` (any strides; fast when rows or columns are contiguous).
    pub fn new(a: MatRef, m: usize, k: usize) -> Self {
        a.check(m, k);
        let (mt, ksteps) = (tile_pairs(m), k.div_ceil(TILE_K));
        let mut data = vec![0u16; mt * ksteps * TILE_LEN];
        if k > 0 {
            data.par_chunks_mut(ksteps * TILE_LEN)
                .enumerate()
                .for_each(|(i, strip)| pack_a_strip(a, m, k, i, strip));
        }
        PackedA {
            m,
            k,
            mt,
            ksteps,
            data,
        }
    }

    /// Zeros for `[m × k]`, to be filled block by block ([`PackedA::blocks_mut`],
    /// [`fill_a_block`]).
    pub fn zeroed(m: usize, k: usize) -> Self {
        let (mt, ksteps) = (tile_pairs(m), k.div_ceil(TILE_K));
        PackedA {
            m,
            k,
            mt,
            ksteps,
            data: vec![0u16; mt * ksteps * TILE_LEN],
        }
    }

    /// The layout of `[m × k]` over `alloc(len)`, whose contents the caller overwrites
    /// entirely before any product reads them.
    pub fn from_data(m: usize, k: usize, alloc: impl FnOnce(usize) -> Vec<u16>) -> Self {
        let (mt, ksteps) = (tile_pairs(m), k.div_ceil(TILE_K));
        let data = alloc(mt * ksteps * TILE_LEN);
        assert_eq!(data.len(), mt * ksteps * TILE_LEN);
        PackedA {
            m,
            k,
            mt,
            ksteps,
            data,
        }
    }

    /// The data of each block of 32 rows (two row tiles), in order: one per task that fills
    /// its own rows with [`fill_a_block`].
    pub fn blocks_mut(&mut self) -> std::slice::ChunksMut<'_, u16> {
        let len = (2 * self.ksteps * TILE_LEN).max(1);
        self.data.chunks_mut(len)
    }

    /// Tile `(i, s)`.
    #[inline]
    pub fn tile(&self, i: usize, s: usize) -> *const u16 {
        self.data[(i * self.ksteps + s) * TILE_LEN..].as_ptr()
    }
}

/// Packs `rows` (≤ 32) rows of `src` (row-major, row stride `ld`, `k` columns) into `block`,
/// one 32-row block of a [`PackedA`] of `k` columns ([`PackedA::blocks_mut`]).
pub fn fill_a_block(block: &mut [u16], src: &[f32], ld: usize, rows: usize, k: usize) {
    assert!(rows <= 2 * TILE && block.len() == 2 * k.div_ceil(TILE_K) * TILE_LEN);
    let (src, half) = (MatRef::rows(src, ld), block.len() / 2);
    src.check(rows, k);
    let (t0, t1) = block.split_at_mut(half);
    pack_a_strip(src, rows, k, 0, t0);
    pack_a_strip(src, rows, k, 1, t1);
}

/// Whether the vector packers can run (AVX-512F/BW and AVX512-BF16).
fn vector_packing() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        super::available(super::Kernel::Avx512Bf16)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Row tile `i` of `a` (rows `16i…`) into `strip` (`ksteps` tiles).
fn pack_a_strip(a: MatRef, m: usize, k: usize, i: usize, strip: &mut [u16]) {
    #[cfg(target_arch = "x86_64")]
    if (a.cs == 1 || a.rs == 1) && vector_packing() {
        // SAFETY: the CPU has the features (checked); `a` was checked to hold [m × k]; one of
        // its strides is 1.
        return unsafe { super::pack_avx512::a_strip(a, m, k, i, strip) };
    }
    pack_a_strip_scalar(a, m, k, i, strip)
}

/// [`pack_a_strip`] in scalar code.
fn pack_a_strip_scalar(a: MatRef, m: usize, k: usize, i: usize, strip: &mut [u16]) {
    let r0 = i * TILE;
    let rows = TILE.min(m.saturating_sub(r0));
    if a.cs == 1 {
        for r in 0..rows {
            let src = &a.data[(r0 + r) * a.rs..(r0 + r) * a.rs + k];
            for (s, chunk) in src.chunks(TILE_K).enumerate() {
                let dst = &mut strip[s * TILE_LEN + r * TILE_K..][..chunk.len()];
                for (d, &x) in dst.iter_mut().zip(chunk) {
                    *d = to_bf16(x);
                }
            }
        }
    } else {
        // Columns of the strip are contiguous in `a` (a transposed operand) or nothing is:
        // walk `k` outside, the strip's rows inside (scattered writes stay in one tile).
        for kk in 0..k {
            let (s, q) = (kk / TILE_K, kk % TILE_K);
            let tile = &mut strip[s * TILE_LEN..(s + 1) * TILE_LEN];
            let base = kk * a.cs + r0 * a.rs;
            for r in 0..rows {
                tile[r * TILE_K + q] = to_bf16(a.data[base + r * a.rs]);
            }
        }
    }
}

impl PackedB {
    /// Packs `b` `[k × n]` (any strides; fast when rows or columns are contiguous).
    pub fn new(b: MatRef, k: usize, n: usize) -> Self {
        b.check(k, n);
        let (nt, ksteps) = (tile_pairs(n), k.div_ceil(TILE_K));
        let mut data = vec![0u16; nt * ksteps * TILE_LEN];
        if k > 0 {
            data.par_chunks_mut(ksteps * TILE_LEN)
                .enumerate()
                .for_each(|(j, strip)| pack_b_strip(b, k, n, j, strip));
        }
        PackedB {
            k,
            n,
            nt,
            ksteps,
            data,
        }
    }

    /// The packed `Wᵀ` of a row-major weight matrix `w` `[out × inp]`: `k = inp`, `n = out`
    /// (a linear layer's `y = x · Wᵀ`).
    pub fn weights(w: &[f32], out: usize, inp: usize) -> Self {
        PackedB::new(MatRef::transposed(w, inp), inp, out)
    }

    /// Zeros for `[k × n]`, to be filled one `k` step at a time ([`PackedB::steps_mut`]).
    pub fn zeroed(k: usize, n: usize) -> Self {
        let (nt, ksteps) = (tile_pairs(n), k.div_ceil(TILE_K));
        PackedB {
            k,
            n,
            nt,
            ksteps,
            data: vec![0u16; nt * ksteps * TILE_LEN],
        }
    }

    /// The layout of `[k × n]` over `alloc(len)`, whose contents the caller overwrites
    /// entirely before any product reads them.
    pub fn from_data(k: usize, n: usize, alloc: impl FnOnce(usize) -> Vec<u16>) -> Self {
        let (nt, ksteps) = (tile_pairs(n), k.div_ceil(TILE_K));
        let data = alloc(nt * ksteps * TILE_LEN);
        assert_eq!(data.len(), nt * ksteps * TILE_LEN);
        PackedB {
            k,
            n,
            nt,
            ksteps,
            data,
        }
    }

    /// One writer per `k` step (rows `32s…` of B: tile `(j, s)` of every column tile `j`), so
    /// tasks that own distinct steps fill one operand together.
    pub fn steps_mut(&mut self) -> Vec<StepTiles<'_>> {
        let ptr = self.data.as_mut_ptr();
        (0..self.ksteps)
            .map(|s| StepTiles {
                ptr,
                nt: self.nt,
                ksteps: self.ksteps,
                s,
                n: self.n,
                _data: std::marker::PhantomData,
            })
            .collect()
    }

    /// Tile `(j, s)`.
    #[inline]
    pub fn tile(&self, j: usize, s: usize) -> *const u16 {
        self.data[(j * self.ksteps + s) * TILE_LEN..].as_ptr()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        2 * self.data.len()
    }
}

/// The tiles of one `k` step of a [`PackedB`] ([`PackedB::steps_mut`]).
pub struct StepTiles<'a> {
    ptr: *mut u16,
    nt: usize,
    ksteps: usize,
    s: usize,
    n: usize,
    _data: std::marker::PhantomData<&'a mut [u16]>,
}

// SAFETY: a `StepTiles` writes only the tiles of its own step `s`; the values made by one
// `steps_mut` call have distinct steps, so no two of them touch the same memory, and the
// borrow of the operand keeps anything else from touching it meanwhile.
unsafe impl Send for StepTiles<'_> {}

impl StepTiles<'_> {
    /// Packs `rows` (≤ 32) rows of `src` (row-major, row stride `ld`, the operand's `n`
    /// columns) as rows `32s…` of B.
    pub fn fill(&mut self, src: &[f32], ld: usize, rows: usize) {
        assert!(rows <= TILE_K);
        let b = MatRef::rows(src, ld);
        b.check(rows, self.n);
        for j in 0..self.nt {
            let at = (j * self.ksteps + self.s) * TILE_LEN;
            // SAFETY: tile (j, s) lies inside the operand's data (j < nt, s < ksteps), which
            // outlives `self`; only this value writes step s (see the `Send` note).
            let tile = unsafe { std::slice::from_raw_parts_mut(self.ptr.add(at), TILE_LEN) };
            pack_b_strip(b, rows, self.n, j, tile);
        }
    }
}

/// Column tile `j` of `b` (columns `16j…`) into `strip` (`ksteps` tiles).
fn pack_b_strip(b: MatRef, k: usize, n: usize, j: usize, strip: &mut [u16]) {
    #[cfg(target_arch = "x86_64")]
    if (b.cs == 1 || b.rs == 1) && vector_packing() {
        // SAFETY: the CPU has the features (checked); `b` was checked to hold [k × n]; one of
        // its strides is 1.
        return unsafe { super::pack_avx512::b_strip(b, k, n, j, strip) };
    }
    pack_b_strip_scalar(b, k, n, j, strip)
}

/// [`pack_b_strip`] in scalar code.
fn pack_b_strip_scalar(b: MatRef, k: usize, n: usize, j: usize, strip: &mut [u16]) {
    let c0 = j * TILE;
    let cols = TILE.min(n.saturating_sub(c0));
    if cols == 0 {
        return;
    }
    if b.cs == 1 {
        // Rows contiguous: two rows of 16 columns interleave into one tile row.
        for kk in 0..k {
            let (s, q) = (kk / TILE_K, kk % TILE_K);
            let row = &b.data[kk * b.rs + c0..kk * b.rs + c0 + cols];
            let dst = &mut strip[s * TILE_LEN + (q / 2) * TILE_K..][..TILE_K];
            let e = q % 2;
            for (c, &x) in row.iter().enumerate() {
                dst[2 * c + e] = to_bf16(x);
            }
        }
    } else {
        // Columns contiguous (the transpose of a row-major weight matrix): each column's run
        // of `k` fills one pair slot down the tile rows.
        for c in 0..cols {
            let base = (c0 + c) * b.cs;
            for kk in 0..k {
                let (s, q) = (kk / TILE_K, kk % TILE_K);
                strip[s * TILE_LEN + (q / 2) * TILE_K + 2 * c + q % 2] =
                    to_bf16(b.data[base + kk * b.rs]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_to_nearest_even_and_flushes_denormals() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        // 1 + 2^-8 is half-way between 1 and 1 + 2^-7: ties to the even 1.0.
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0), 0x3f80);
        assert_eq!(to_bf16(1.0 + 3.0 / 512.0), 0x3f81);
        assert_eq!(to_bf16(-2.5), 0xc020);
        assert_eq!(to_bf16(f32::MIN_POSITIVE / 4.0), 0);
        assert_eq!(to_bf16(-f32::MIN_POSITIVE / 4.0), 0x8000);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
        assert_eq!(from_bf16(to_bf16(f32::INFINITY)), f32::INFINITY);
        assert_eq!(
            from_bf16(to_bf16(f32::MAX)),
            f32::INFINITY,
            "rounds up past the max"
        );
        assert_eq!(round_bf16(3.140625), 3.140625);
    }

    /// Element `(r, c)` of a packed A or B, read back through the layout.
    fn a_at(p: &PackedA, r: usize, c: usize) -> f32 {
        let (i, s) = (r / TILE, c / TILE_K);
        from_bf16(p.data[(i * p.ksteps + s) * TILE_LEN + (r % TILE) * TILE_K + c % TILE_K])
    }
    fn b_at(p: &PackedB, r: usize, c: usize) -> f32 {
        let (j, s, q) = (c / TILE, r / TILE_K, r % TILE_K);
        from_bf16(p.data[(j * p.ksteps + s) * TILE_LEN + (q / 2) * TILE_K + 2 * (c % TILE) + q % 2])
    }

    /// The vector packers give the scalar packers' bits (NaN, infinities, denormals, ties and
    /// ragged edges included).
    #[test]
    fn vector_and_scalar_packing_agree() {
        if !vector_packing() {
            eprintln!("vector packing not tested: this CPU lacks AVX512-BF16");
            return;
        }
        let specials = [
            f32::NAN,
            f32::INFINITY,
            -0.0,
            1.0 + 1.0 / 256.0,
            1e-40,
            -3e-39,
            f32::MAX,
        ];
        let (m, k) = (37, 75);
        let x: Vec<f32> = (0..m * k)
            .map(|i| match i % 11 {
                0 => specials[(i / 11) % specials.len()],
                _ => ((i * 7919) % 1000) as f32 / 37.0 - 13.0,
            })
            .collect();
        let xt: Vec<f32> = (0..k * m).map(|i| x[(i % m) * k + i / m]).collect();
        for mat in [MatRef::rows(&x, k), MatRef::transposed(&xt, m)] {
            let a = PackedA::new(mat, m, k);
            let mut scalar = vec![0u16; a.data.len()];
            for (i, strip) in scalar.chunks_mut(a.ksteps * TILE_LEN).enumerate() {
                pack_a_strip_scalar(mat, m, k, i, strip);
            }
            assert_eq!(a.data, scalar, "A");
            let b = PackedB::new(mat, m, k);
            let mut scalar = vec![0u16; b.data.len()];
            for (j, strip) in scalar.chunks_mut(b.ksteps * TILE_LEN).enumerate() {
                pack_b_strip_scalar(mat, m, k, j, strip);
            }
            assert_eq!(b.data, scalar, "B");
        }
    }

    #[test]
    fn packing_places_every_element_for_both_layouts() {
        let (m, k) = (37, 45);
        let x: Vec<f32> = (0..m * k).map(|i| i as f32).collect();
        let rows = MatRef::rows(&x, k);
        let xt: Vec<f32> = (0..k * m).map(|i| ((i % m) * k + i / m) as f32).collect();
        let cols = MatRef::transposed(&xt, m);
        for a in [PackedA::new(rows, m, k), PackedA::new(cols, m, k)] {
            assert_eq!((a.mt, a.ksteps), (4, 2));
            for r in 0..64 {
                for c in 0..64 {
                    let want = if r < m && c < k {
                        round_bf16((r * k + c) as f32)
                    } else {
                        0.0
                    };
                    assert_eq!(a_at(&a, r, c), want, "A({r}, {c})");
                }
            }
        }
        // The same matrix as a right operand [m × k] (k = m rows here).
        for b in [PackedB::new(rows, m, k), PackedB::new(cols, m, k)] {
            assert_eq!((b.nt, b.ksteps), (4, 2));
            for r in 0..64 {
                for c in 0..64 {
                    let want = if r < m && c < k {
                        round_bf16((r * k + c) as f32)
                    } else {
                        0.0
                    };
                    assert_eq!(b_at(&b, r, c), want, "B({r}, {c})");
                }
            }
        }
    }
}
