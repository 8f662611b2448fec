//! The decode kernels against naive loops: every linear kernel and tile shape, the scans, the
//! attention row, the embedding and LayerNorm.

use super::attention::{attend_row, attend_row_portable};
use super::elementwise::{embed, layer_norm};
use super::linear::{linear, linear_packed, scalar_packed_panels, PackedLinear};
use super::scans::{first_above, log_sum_exp, log_sum_exp_fast};
use crate::model::config::LN_EPS;
use crate::model::{LayerNormWeights, LinearWeights};
use crate::simd::has_avx2_fma;

fn rayon_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    crate::decode::with_threads(threads, f)
}

#[test]
fn linear_one_row_and_gemm_agree_with_naive() {
    let lin = LinearWeights {
        weight: (0..35).map(|i| (i as f32 * 0.37).sin()).collect(),
        bias: (0..5).map(|i| i as f32 * 0.1).collect(),
        out_dim: 5,
        in_dim: 7,
    };
    let x: Vec<f32> = (0..21).map(|i| (i as f32 * 0.11).cos()).collect();
    let mut y = vec![0.0; 15];
    linear(&x, 3, &lin, &mut y, 1);
    for r in 0..3 {
        let mut y1 = vec![0.0; 5];
        linear(&x[r * 7..], 1, &lin, &mut y1, 2);
        for o in 0..5 {
            let want: f32 = (0..7)
                .map(|i| x[r * 7 + i] * lin.weight[o * 7 + i])
                .sum::<f32>()
                + lin.bias[o];
            assert!((y[r * 5 + o] - want).abs() < 1e-5);
            assert!((y1[o] - want).abs() < 1e-5);
        }
    }
}

#[test]
fn gemm_linear_matches_naive_for_small_row_counts() {
    // in_dim 75 leaves a tail after the 8-lane loop; out_dim 1001 is odd and not a multiple
    // of the chunking; rows 1..=9 cover every tile remainder; both thread counts.
    let (n_in, n_out) = (75, 1001);
    let lin = LinearWeights {
        weight: (0..n_in * n_out).map(|i| (i as f32 * 0.37).sin()).collect(),
        bias: (0..n_out).map(|i| i as f32 * 0.1).collect(),
        out_dim: n_out,
        in_dim: n_in,
    };
    for rows in 1..=9 {
        let x: Vec<f32> = (0..rows * n_in).map(|i| (i as f32 * 0.11).cos()).collect();
        for threads in [1, 2] {
            let mut y = vec![f32::NAN; rows * n_out];
            rayon_pool(threads, || linear(&x, rows, &lin, &mut y, threads));
            for r in 0..rows {
                for o in 0..n_out {
                    let want: f32 = (0..n_in)
                        .map(|i| x[r * n_in + i] * lin.weight[o * n_in + i])
                        .sum::<f32>()
                        + lin.bias[o];
                    assert!((y[r * n_out + o] - want).abs() < 1e-4, "{rows} {r} {o}");
                }
            }
        }
    }
}

#[test]
fn packed_kernel_matches_naive() {
    // out_dim 1001 leaves a partial last panel; rows 1..=26 cover every row tile and
    // group remainder (AVX2: groups of 12, tiles of 6; AVX-512: tiles of 12); in_dim 75 is
    // one k chunk, 237 is two whole chunks and a partial one; 8 and 3 are tiny.
    for (n_in, n_out) in [(75, 1001), (237, 1001), (8, 17), (3, 5)] {
        packed_case(n_in, n_out, 1..=26);
    }
}

fn packed_case(n_in: usize, n_out: usize, row_counts: std::ops::RangeInclusive<usize>) {
    let lin = LinearWeights {
        weight: (0..n_in * n_out).map(|i| (i as f32 * 0.37).sin()).collect(),
        bias: (0..n_out).map(|i| i as f32 * 0.1).collect(),
        out_dim: n_out,
        in_dim: n_in,
    };
    let p = PackedLinear::new(&lin);
    for rows in row_counts {
        let x: Vec<f32> = (0..rows * n_in).map(|i| (i as f32 * 0.11).cos()).collect();
        for threads in [1, 2] {
            let mut y = vec![f32::NAN; rows * n_out];
            rayon_pool(threads, || linear_packed(&x, rows, &p, &mut y, threads));
            let mut ys = vec![f32::NAN; rows * n_out];
            // SAFETY: ys holds rows · n_out floats; all panels.
            unsafe { scalar_packed_panels(&x, rows, &p, ys.as_mut_ptr(), 0, p.n_panels()) };
            // Both SIMD kernels directly, whichever `linear_packed` picked on this CPU.
            let mut simd: Vec<Vec<f32>> = Vec::new();
            #[cfg(target_arch = "x86_64")]
            {
                if has_avx2_fma() {
                    let mut v = vec![f32::NAN; rows * n_out];
                    // SAFETY: AVX2/FMA present; v holds rows · n_out floats; all panels.
                    unsafe {
                        super::linear::avx2::packed_panels(
                            &x,
                            rows,
                            &p,
                            v.as_mut_ptr(),
                            0,
                            p.n_panels(),
                        )
                    };
                    simd.push(v);
                }
                if rows > 1 && std::arch::is_x86_feature_detected!("avx512f") {
                    let mut v = vec![f32::NAN; rows * n_out];
                    // SAFETY: AVX-512F present; v holds rows · n_out floats; all panels.
                    unsafe {
                        super::linear::avx512::packed_panels(
                            &x,
                            rows,
                            &p,
                            v.as_mut_ptr(),
                            0,
                            p.n_panels(),
                        )
                    };
                    simd.push(v);
                }
            }
            for r in 0..rows {
                for o in 0..n_out {
                    let want: f32 = (0..n_in)
                        .map(|i| x[r * n_in + i] * lin.weight[o * n_in + i])
                        .sum::<f32>()
                        + lin.bias[o];
                    let tol = 1e-5 * (n_in as f32).max(10.0);
                    let at = format!("in {n_in} rows {rows} row {r} col {o}");
                    assert!((y[r * n_out + o] - want).abs() < tol, "{at}");
                    assert!((ys[r * n_out + o] - want).abs() < tol, "{at}");
                    for v in &simd {
                        assert!((v[r * n_out + o] - want).abs() < tol, "{at}");
                    }
                }
            }
        }
    }
}

#[test]
fn fast_log_sum_exp_matches_f64() {
    for n in [1usize, 7, 8, 9, 63, 64, 65, 1000, 15487] {
        let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.731).sin() * 12.0).collect();
        let want = log_sum_exp(&x);
        let got = log_sum_exp_fast(&x);
        assert!(
            (got - want).abs() < 1e-6 * want.abs().max(1.0),
            "{n}: {got} {want}"
        );
        // Masked entries, a far-below entry (underflows to zero), a large spread.
        let mut y = x.clone();
        y[0] = f32::NEG_INFINITY;
        if n > 2 {
            y[n / 2] = -1e4;
            y[n - 1] = 50.0;
        }
        let (want, got) = (log_sum_exp(&y), log_sum_exp_fast(&y));
        let close = got == want || (got - want).abs() < 1e-6 * want.abs().max(1.0);
        assert!(close, "{n}: {got} {want}");
    }
    // Exponents over the whole reduction range, against libm exp.
    let x: Vec<f32> = (0..2000).map(|i| -86.0 + i as f32 * 0.043).collect();
    for w in x.windows(1).step_by(37) {
        let got = log_sum_exp_fast(&[w[0], 0.0]);
        let want = log_sum_exp(&[w[0], 0.0]);
        assert!((got - want).abs() < 1e-6, "{}: {got} {want}", w[0]);
    }
    assert_eq!(log_sum_exp_fast(&[f32::NEG_INFINITY; 9]), f64::NEG_INFINITY);
    assert_eq!(log_sum_exp_fast(&[]), f64::NEG_INFINITY);
}

#[test]
fn first_above_matches_a_linear_scan() {
    let x: Vec<f32> = (0..203)
        .map(|i| match i % 17 {
            3 => f32::NAN,
            5 => f32::NEG_INFINITY,
            _ => (i as f32 * 0.37).sin(),
        })
        .collect();
    for thr in [f32::NEG_INFINITY, -0.5, 0.0, 0.9, 0.999, 2.0] {
        for start in [0, 1, 7, 8, 9, 100, 195, 202, 203] {
            let want = (start..x.len()).find(|&i| x[i] > thr).unwrap_or(x.len());
            assert_eq!(first_above(&x, start, thr), want, "{thr} {start}");
        }
    }
}

#[test]
fn attention_row_matches_naive() {
    // Head widths with and without an 8-lane tail, key counts across the tail lengths.
    for (n_heads, dk) in [(8, 38), (2, 8), (3, 5), (1, 17)] {
        let width = n_heads * dk;
        for n_keys in [1, 2, 7, 8, 9, 15, 16, 17, 64] {
            let f = |i: usize, s: f32| (i as f32 * s).sin();
            let q: Vec<f32> = (0..width).map(|i| f(i, 0.31)).collect();
            let keys: Vec<f32> = (0..n_keys * width).map(|i| f(i, 0.17) * 2.0).collect();
            let vals: Vec<f32> = (0..n_keys * width).map(|i| f(i, 0.23)).collect();
            let key = |n: usize| &keys[n * width..(n + 1) * width];
            let val = |n: usize| &vals[n * width..(n + 1) * width];
            let scale = 1.0 / (dk as f32).sqrt();
            let mut want = vec![0.0f64; width];
            for h in 0..n_heads {
                let o = h * dk;
                let sc: Vec<f64> = (0..n_keys)
                    .map(|n| {
                        (0..dk)
                            .map(|d| q[o + d] as f64 * key(n)[o + d] as f64)
                            .sum::<f64>()
                            * scale as f64
                    })
                    .collect();
                let m = sc.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = sc.iter().map(|s| (s - m).exp()).sum();
                for (n, s) in sc.iter().enumerate() {
                    for d in 0..dk {
                        want[o + d] += (s - m).exp() / z * val(n)[o + d] as f64;
                    }
                }
            }
            let mut scores = vec![f32::NAN; n_heads * n_keys + 3];
            let mut out = vec![f32::NAN; width];
            attend_row(
                &q,
                (n_heads, dk),
                n_keys,
                scale,
                key,
                val,
                &mut scores,
                &mut out,
            );
            let mut out2 = vec![f32::NAN; width];
            let mut sc2 = vec![f32::NAN; n_heads * n_keys];
            attend_row_portable(
                &q,
                (n_heads, dk),
                n_keys,
                scale,
                key,
                val,
                &mut sc2,
                &mut out2,
            );
            for d in 0..width {
                let at = format!("heads {n_heads} dk {dk} keys {n_keys} col {d}");
                assert!((out[d] as f64 - want[d]).abs() < 1e-5, "{at}");
                assert!((out2[d] as f64 - want[d]).abs() < 1e-5, "{at}");
            }
            // Probabilities per head sum to one; the scratch past them is untouched.
            for h in 0..n_heads {
                let s: f32 = scores[h * n_keys..(h + 1) * n_keys].iter().sum();
                assert!((s - 1.0).abs() < 1e-5);
            }
            assert!(scores[n_heads * n_keys..].iter().all(|v| v.is_nan()));
        }
    }
}

#[test]
fn embed_shares_position_encodings_exactly() {
    let (d, v) = (10, 7);
    let tok: Vec<f32> = (0..d * v).map(|i| (i as f32 * 0.7).cos()).collect();
    let ids = [3u32, 1, 4, 1, 5];
    let pos = [9usize, 9, 9, 2, 2];
    let mut h = vec![0.0; 5 * d];
    embed(&tok, d, &ids, &pos, &mut h);
    for r in 0..5 {
        let mut want = vec![0.0; d];
        crate::model::config::position_encoding(pos[r], &mut want);
        for j in 0..d {
            want[j] += tok[ids[r] as usize * d + j];
        }
        assert_eq!(&h[r * d..(r + 1) * d], &want[..], "row {r}");
    }
}

#[test]
fn layer_norm_normalises() {
    let ln = LayerNormWeights::new(4);
    let mut y = vec![0.0; 4];
    layer_norm(&[1.0, 2.0, 3.0, 4.0], 1, &ln, &mut y);
    let mean: f32 = y.iter().sum::<f32>() / 4.0;
    let var: f32 = y.iter().map(|v| v * v).sum::<f32>() / 4.0;
    assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-4);
    // Rows wider than the eight partial sums, with a remainder, against f64.
    let dim = 301;
    let ln = LayerNormWeights {
        weight: (0..dim)
            .map(|i| 1.0 + (i as f32 * 0.3).sin() * 0.5)
            .collect(),
        bias: (0..dim).map(|i| (i as f32 * 0.7).cos() * 0.1).collect(),
    };
    let x: Vec<f32> = (0..2 * dim)
        .map(|i| 3.0 + (i as f32 * 0.13).sin())
        .collect();
    let mut y = vec![0.0; 2 * dim];
    layer_norm(&x, 2, &ln, &mut y);
    for r in 0..2 {
        let xr: Vec<f64> = x[r * dim..(r + 1) * dim]
            .iter()
            .map(|&v| v as f64)
            .collect();
        let m = xr.iter().sum::<f64>() / dim as f64;
        let v = xr.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / dim as f64;
        for i in 0..dim {
            let want =
                (xr[i] - m) / (v + LN_EPS as f64).sqrt() * ln.weight[i] as f64 + ln.bias[i] as f64;
            assert!((y[r * dim + i] as f64 - want).abs() < 1e-4, "{r} {i}");
        }
    }
}
