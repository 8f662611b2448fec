//! Every bf16 kernel this CPU can run against two references: the exact product of the
//! bf16-rounded operands (only f32 accumulation may differ: within 1e-5 of `Σ|a·b|`) and the
//! f32 product of the unrounded operands (bf16 rounding: within 2⁻⁸ of `Σ|a·b|`).

#![cfg(target_arch = "x86_64")]

use super::*;
use crate::simd::mat::MatRef;
use rand::{Rng, SeedableRng};

/// The packed-operand kernels this CPU has (the portable path is the f32 kernels, tested with
/// the training and decoding ops).
fn kernels() -> Vec<Kernel> {
    let all = [Kernel::Amx, Kernel::Avx512Bf16];
    let ks: Vec<Kernel> = all.into_iter().filter(|&k| available(k)).collect();
    for k in all {
        if !available(k) {
            eprintln!("bf16 kernel {} not tested: this CPU lacks it", k.name());
        }
    }
    ks
}

fn random(n: usize, rng: &mut impl Rng) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()
}

/// `(exact, f32, Σ|a·b|)` of element `(i, j)`.
fn reference(a: MatRef, b: MatRef, k: usize, i: usize, j: usize) -> (f64, f64, f64) {
    let (mut exact, mut plain, mut mag) = (0.0f64, 0.0f64, 0.0f64);
    for kk in 0..k {
        let (x, y) = (a.data[i * a.rs + kk * a.cs], b.data[kk * b.rs + j * b.cs]);
        exact += round_bf16(x) as f64 * round_bf16(y) as f64;
        plain += x as f64 * y as f64;
        mag += (x as f64 * y as f64).abs();
    }
    (exact, plain, mag)
}

#[test]
#[allow(clippy::needless_range_loop)]
fn gemm_matches_the_references_for_every_kernel_shape_and_layout() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    // Edges in every dimension; k = 4500 is cut into k blocks.
    let shapes = [
        (64, 96, 640),
        (32, 64, 4200),
        (1, 3, 7),
        (5, 31, 33),
        (17, 45, 64),
        (33, 16, 300),
        (70, 100, 31),
        (20, 40, 4500),
    ];
    for kernel in kernels() {
        for &(m, n, k) in &shapes {
            let (a, b) = (random(m * k, &mut rng), random(k * n, &mut rng));
            let init = random(m * n, &mut rng);
            let bias = random(n, &mut rng);
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let am = if ta {
                    MatRef::transposed(&a, m)
                } else {
                    MatRef::rows(&a, k)
                };
                let bm = if tb {
                    MatRef::transposed(&b, k)
                } else {
                    MatRef::rows(&b, n)
                };
                let (pa, pb) = (PackedA::new(am, m, k), PackedB::new(bm, k, n));
                // Overwrite, accumulate with alpha and bias (through the buffer), accumulate
                // (in place for whole blocks), and a transposed destination.
                let cases = [
                    (false, 1.0, false, false),
                    (true, -0.5, true, false),
                    (true, 1.0, false, false),
                    (true, 0.5, false, true),
                ];
                for (acc, alpha, with_bias, tr) in cases {
                    let mut out = init.clone();
                    let dst = Dst {
                        data: &mut out,
                        ld: if tr { m } else { n },
                        transposed: tr,
                        accumulate: acc,
                        alpha,
                        bias: with_bias.then_some(&bias[..]),
                    };
                    gemm(kernel, &pa, &pb, dst, true);
                    for i in 0..m {
                        for j in 0..n {
                            let (e, p, mag) = reference(am, bm, k, i, j);
                            let at = if tr { j * m + i } else { i * n + j };
                            let base = if acc { init[at] as f64 } else { 0.0 }
                                + if with_bias { bias[j] as f64 } else { 0.0 };
                            let got = out[at] as f64;
                            let what = format!(
                                "{} {m}×{n}×{k} t{ta}{tb} acc {acc} tr {tr} ({i}, {j})",
                                kernel.name()
                            );
                            let a = alpha as f64;
                            assert!(
                                (got - base - a * e).abs() <= 1e-5 * (mag + 1.0),
                                "{what}: {got} vs exact {}",
                                base + a * e
                            );
                            assert!(
                                (got - base - a * p).abs() <= mag / 256.0 + 1e-5,
                                "{what}: {got} vs f32 {}",
                                base + a * p
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn gemv_matches_the_references() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    if available(Kernel::Avx512Bf16) {
        for &(k, n) in &[(7, 3), (300, 304), (512, 300), (33, 70)] {
            let (x, w) = (random(k, &mut rng), random(n * k, &mut rng));
            let bias = random(n, &mut rng);
            let pb = PackedB::weights(&w, n, k);
            let mut y = vec![f32::NAN; n];
            gemv(&x, &pb, &bias, &mut y, true);
            let xm = MatRef::rows(&x, k);
            let wm = MatRef::transposed(&w, k);
            for j in 0..n {
                let (e, p, mag) = reference(xm, wm, k, 0, j);
                let got = (y[j] - bias[j]) as f64;
                assert!((got - e).abs() <= 1e-5 * (mag + 1.0), "{k}×{n} [{j}]");
                assert!((got - p).abs() <= mag / 256.0 + 1e-5, "{k}×{n} [{j}]");
            }
        }
    }
}

/// The same bits with one thread and with two, for every kernel (blocks never split `k`
/// between tasks), including a product cut into `k` blocks.
#[test]
fn results_do_not_depend_on_the_thread_count() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for kernel in kernels() {
        for &(m, n, k) in &[(200, 90, 640), (40, 300, 4500)] {
            let (a, b) = (random(m * k, &mut rng), random(k * n, &mut rng));
            let pa = PackedA::new(MatRef::rows(&a, k), m, k);
            let pb = PackedB::new(MatRef::rows(&b, n), k, n);
            let run = |threads: usize| {
                let mut out = vec![0.0f32; m * n];
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| gemm(kernel, &pa, &pb, Dst::rows(&mut out, n), true));
                out
            };
            let one = run(1);
            assert!(
                one.iter()
                    .zip(run(2))
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "{}",
                kernel.name()
            );
        }
    }
}

#[test]
fn the_environment_turns_faster_kernels_off() {
    // The detected kernel is the fastest available unless a variable says otherwise.
    let k = kernel();
    let forced_off = ["PIPE_NO_AMX", "PIPE_NO_AVX512BF16", "PIPE_NO_AVX512"]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
    if !forced_off {
        let best = [Kernel::Amx, Kernel::Avx512Bf16, Kernel::Portable]
            .into_iter()
            .find(|&k| available(k))
            .unwrap();
        assert_eq!(k, best);
    }
    assert_eq!("bf16".parse::<Precision>(), Ok(Precision::Bf16));
    assert!("fp16"
        .parse::<Precision>()
        .unwrap_err()
        .contains("f32 or bf16"));
}
