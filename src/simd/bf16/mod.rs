//! bf16 matrix products with f32 accumulation, by what the CPU has (checked at run time):
//! AMX-BF16 tiles where the kernel grants the tile state ([`Kernel::Amx`]) or AVX512-BF16
//! (`vdpbf16ps`, [`Kernel::Avx512Bf16`]), both over the same packed operands ([`pack`]);
//! elsewhere ([`Kernel::Portable`]) callers round the operands to bf16 ([`round_slice`]) and
//! run their f32 kernels. All give the same results up to the order of f32 additions.
//! `PIPE_NO_AMX=1`, `PIPE_NO_AVX512BF16=1` (and `PIPE_NO_AVX512=1`, which implies both) force
//! the faster paths off, for tests and comparisons.

#[cfg(target_arch = "x86_64")]
mod amx;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
pub mod gemm;
pub mod pack;
#[cfg(target_arch = "x86_64")]
mod pack_avx512;

#[cfg(target_arch = "x86_64")]
pub use gemm::{gemm, gemv, Dst};
pub use pack::{
    fill_a_block, from_bf16, round_bf16, round_slice, to_bf16, PackedA, PackedB, StepTiles,
    TILE_LEN,
};
#[cfg(target_arch = "x86_64")]
pub use pack_avx512::scale_pack_pair;

/// The precision of the matrix products: `f32`, or bf16 operands with f32 accumulation (master
/// weights, optimiser state, normalisation, softmax and loss stay f32 either way).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    Bf16,
}

impl Precision {
    /// The name in parameters and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            _ => Err(format!("unknown precision `{s}` (expected f32 or bf16)")),
        }
    }
}

/// How the matrix products of a model run: f32, or bf16 through a given kernel family
/// ([`Products::of`] picks this CPU's best; tests name each one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Products {
    F32,
    Bf16(Kernel),
}

impl Products {
    /// `precision` with the kernel this CPU runs ([`kernel`]).
    pub fn of(precision: Precision) -> Self {
        match precision {
            Precision::F32 => Products::F32,
            Precision::Bf16 => Products::Bf16(kernel()),
        }
    }

    pub fn precision(self) -> Precision {
        match self {
            Products::F32 => Precision::F32,
            Products::Bf16(_) => Precision::Bf16,
        }
    }

    /// The packed bf16 kernel (AMX or AVX512-BF16), if these products use one.
    pub fn packed(self) -> Option<Kernel> {
        match self {
            Products::Bf16(k) if k != Kernel::Portable => Some(k),
            _ => None,
        }
    }
}

/// A bf16 kernel family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    Amx,
    Avx512Bf16,
    Portable,
}

impl Kernel {
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Amx => "amx-bf16",
            Kernel::Avx512Bf16 => "avx512-bf16",
            Kernel::Portable => "portable",
        }
    }
}

/// Whether `PIPE_<name>` is set.
fn off(name: &str) -> bool {
    std::env::var_os(format!("PIPE_{name}")).is_some()
}

/// Whether the CPU has AVX-512F/BW and AVX512-BF16.
fn cpu_has_avx512_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether AMX-BF16 is present and this process may use it (asks once).
fn amx_usable() -> bool {
    use std::sync::OnceLock;
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            cpu_has_avx512_bf16() && amx::cpu_has_amx() && amx::request_permission()
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// Whether `k` can run on this CPU (ignoring the environment variables).
pub fn available(k: Kernel) -> bool {
    match k {
        Kernel::Amx => amx_usable(),
        Kernel::Avx512Bf16 => cpu_has_avx512_bf16(),
        Kernel::Portable => true,
    }
}

/// The fastest kernel this CPU can run that the environment leaves on (checked once).
pub fn kernel() -> Kernel {
    use std::sync::OnceLock;
    static K: OnceLock<Kernel> = OnceLock::new();
    *K.get_or_init(|| {
        let no512 = off("NO_AVX512");
        if !no512 && !off("NO_AMX") && available(Kernel::Amx) {
            Kernel::Amx
        } else if !no512 && !off("NO_AVX512BF16") && available(Kernel::Avx512Bf16) {
            Kernel::Avx512Bf16
        } else {
            Kernel::Portable
        }
    })
}

/// Peak bf16 multiply-adds per cycle and core of a kernel (for reports of achieved speed):
/// AMX's `tdpbf16ps` does 16 × 16 × 32 in 16 cycles, two `vdpbf16ps` of 32 a cycle, the
/// portable path the f32 FMA units (2 × 16 a cycle with AVX-512, 2 × 8 with AVX2).
pub fn peak_macs_per_cycle(k: Kernel) -> f64 {
    match k {
        Kernel::Amx => 512.0,
        Kernel::Avx512Bf16 => 64.0,
        Kernel::Portable => {
            if crate::simd::has_avx512() {
                32.0
            } else {
                16.0
            }
        }
    }
}

#[cfg(test)]
mod tests;
