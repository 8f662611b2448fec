//! GFLOP/s of the matrix products at the seed model's training shapes: f32 (`gemm` in fixed
//! parts) against every bf16 kernel this CPU runs, with and without packing the operands:
//! `cargo run --release --example gemm16 [threads]` (best of 5 after a warm-up). Times are CPU
//! seconds of the process (user + system), so a loaded machine inflates them less than wall
//! time; with one thread they are the kernel's own cost.

use pipe::model::ops::{matmul, MatRef};
use pipe::simd::bf16::{self, Dst, Kernel, PackedA, PackedB};
use rand::{Rng, SeedableRng};

/// CPU time (user + system) of the process so far, in seconds.
fn cpu_s() -> f64 {
    // SAFETY: `rusage` is plain data, for which all-zero bytes are a valid value.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage only writes the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn best(mut f: impl FnMut()) -> f64 {
    f();
    (0..5)
        .map(|_| {
            let t = cpu_s();
            f();
            cpu_s() - t
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    pipe::alloc::keep_freed_memory();
    let threads: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let pool = pipe::simd::denormals::compute_pool(threads).expect("thread pool");
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    // (name, m, n, k, a transposed, b transposed) as the training step runs them.
    let shapes = [
        ("head forward  h·Wᵀ", 2016, 15487, 300, false, true),
        ("head ∂h       G·W", 2016, 300, 15487, false, false),
        ("head ∂W       Gᵀ·h", 15487, 300, 2016, true, false),
        ("attn proj fwd x·Wᵀ", 2016, 304, 300, false, true),
        ("ff up fwd     x·Wᵀ", 2016, 512, 300, false, true),
        ("ff up ∂W      gᵀ·x", 512, 300, 2016, true, false),
        ("ff up ∂x      g·W", 2016, 300, 512, false, false),
    ];
    let kernels: Vec<Kernel> = [Kernel::Amx, Kernel::Avx512Bf16]
        .into_iter()
        .filter(|&k| bf16::available(k))
        .collect();
    println!(
        "threads {threads}; GFLOP per CPU second (bf16: product only / with packing both operands)"
    );
    for (name, m, n, k, ta, tb) in shapes {
        let a: Vec<f32> = (0..m * k).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.gen_range(-1.0..1.0)).collect();
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
        let mut c = vec![0.0f32; m * n];
        let flop = 2.0 * (m * n * k) as f64 * 1e-9;
        let f32s = pool.install(|| best(|| matmul(&mut c, (m, n, k), am, bm, false, 1.0)));
        let mut line = format!("{name:20} {m:5}×{n:5}×{k:5}  f32 {:7.1}", flop / f32s);
        for &kern in &kernels {
            let (pa, pb) = pool.install(|| (PackedA::new(am, m, k), PackedB::new(bm, k, n)));
            let run = |c: &mut Vec<f32>| {
                let dst = Dst::rows(c, n);
                bf16::gemm(kern, &pa, &pb, dst, true)
            };
            let only = pool.install(|| best(|| run(&mut c)));
            let packed = pool.install(|| {
                best(|| {
                    let (pa, pb) = (PackedA::new(am, m, k), PackedB::new(bm, k, n));
                    let dst = Dst::rows(&mut c, n);
                    bf16::gemm(kern, &pa, &pb, dst, true)
                })
            });
            let pack_a = pool.install(|| best(|| drop(PackedA::new(am, m, k))));
            let pack_b = pool.install(|| best(|| drop(PackedB::new(bm, k, n))));
            line += &format!(" [pack A {:.2} ms, B {:.2} ms]", pack_a * 1e3, pack_b * 1e3);
            line += &format!(
                "  {} {:7.1} / {:7.1}",
                kern.name(),
                flop / only,
                flop / packed
            );
        }
        println!("{line}");
    }
}
