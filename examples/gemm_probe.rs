use std::time::Instant;
fn run(name: &str, m: usize, k: usize, n: usize, lhs_t: bool, rhs_t: bool, threads: usize) {
    let a = vec![0.01f32; m * k];
    let b = vec![0.02f32; k * n];
    let mut c = vec![0.0f32; m * n];
    let (ars, acs) = if lhs_t { (1isize, m as isize) } else { (k as isize, 1isize) };
    let (brs, bcs) = if rhs_t { (1isize, k as isize) } else { (n as isize, 1isize) };
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        unsafe {
            gemm::gemm(m, n, k, c.as_mut_ptr(), 1, n as isize, false, a.as_ptr(), acs, ars, b.as_ptr(), bcs, brs, 0.0, 1.0, false, false, false,
                if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None });
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!("{name}: {:.1} ms {:.1} GFLOP/s", best * 1e3, 2.0 * (m * n * k) as f64 / best / 1e9);
}
fn main() {
    let th: usize = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(2);
    run("z=h.Wt", 2016, 300, 15487, false, true, th);
    run("dh=G.W", 2016, 15487, 300, false, false, th);
    run("dW=Gt.h", 15487, 2016, 300, true, false, th);
    run("mid x.Wt", 2016, 300, 304, false, true, th);
    run("ff up", 2016, 300, 512, false, true, th);
    run("mid dW", 304, 2016, 300, true, false, th);
}
