//! The AMX-BF16 block kernel: a 32 × 32 block of C (four 16 × 16 f32 tiles) accumulated over
//! `k` steps of 32 with `tdpbf16ps`, and a 16 × 32 variant for few rows. Tile instructions go
//! through `asm!` (their intrinsics are not stable); the kernel asks Linux for permission to use
//! the tile data state once per process ([`request_permission`]) and loads the tile
//! configuration on every thread before a run of blocks ([`Tiles`]).
//!
//! Tile registers: `tmm0`–`tmm3` hold C, `tmm4`/`tmm5` the A tiles, `tmm6`/`tmm7` the B tiles.
//! Nothing else in the process uses them, so they keep their contents from one `asm!` block to
//! the next.

use super::pack::{TILE, TILE_LEN};
use std::arch::asm;

/// `arch_prctl` request: permission to use an extended state component.
const ARCH_REQ_XCOMP_PERM: libc::c_int = 0x1023;
/// The AMX tile data state component.
const XFEATURE_XTILEDATA: libc::c_ulong = 18;

/// Whether the CPU has AMX-TILE and AMX-BF16 (CPUID leaf 7, EDX bits 24 and 22).
pub fn cpu_has_amx() -> bool {
    let r = std::arch::x86_64::__cpuid_count(7, 0);
    (r.edx >> 24) & 1 == 1 && (r.edx >> 22) & 1 == 1
}

/// Asks the kernel for the AMX tile data state for this process (all its threads); `true` when
/// granted (Linux 5.16+).
pub fn request_permission() -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)` only changes which
        // register state the kernel lets this process use; it reads and writes no memory.
        let r = unsafe {
            libc::syscall(
                libc::SYS_arch_prctl,
                ARCH_REQ_XCOMP_PERM,
                XFEATURE_XTILEDATA,
            )
        };
        r == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// The tile configuration (palette 1): eight tiles of 16 rows × 64 bytes.
#[repr(C, align(64))]
struct Config {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

static CONFIG: Config = Config {
    palette: 1,
    start_row: 0,
    reserved: [0; 14],
    colsb: [64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0],
    rows: [16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0],
};

/// The tile configuration loaded on this thread for the lifetime of the value; dropping it
/// releases the tiles (so the kernel need not save them on a context switch). Not `Send`: the
/// configuration belongs to the thread that loaded it.
pub struct Tiles(std::marker::PhantomData<*const ()>);

impl Tiles {
    /// Loads the configuration.
    ///
    /// # Safety
    /// The CPU has AMX and [`request_permission`] returned `true` in this process.
    pub unsafe fn new() -> Self {
        // SAFETY: `ldtilecfg` reads the 64-byte, 64-aligned configuration; the caller
        // guarantees AMX is present and permitted.
        unsafe {
            asm!("ldtilecfg [{}]", in(reg) &CONFIG as *const Config, options(nostack, readonly, preserves_flags));
        }
        Tiles(std::marker::PhantomData)
    }

    /// C tiles `(ia, jb)` at `c + 16·ia·ldc + 16·jb` (rows `ldc` floats apart) = (`load` ?
    /// C : 0) + Σ over `steps` of A tiles `a[ia] + 512·s` × B tiles `b[jb] + 512·s`.
    ///
    /// # Safety
    /// Every tile pointer is valid for `steps` consecutive tiles of [`TILE_LEN`] bf16; `c` is
    /// valid for 32 rows of 32 f32 at stride `ldc` (read only when `load`).
    #[inline]
    pub unsafe fn block_2x2(
        &self,
        a: [*const u16; 2],
        b: [*const u16; 2],
        steps: usize,
        c: *mut f32,
        ldc: usize,
        load: bool,
    ) {
        let st = 4 * ldc;
        // SAFETY: the caller upholds the `# Safety` contract; the configuration is loaded
        // (`self` exists on this thread); every load and store below stays inside the tiles
        // and the C rows it names.
        unsafe {
            let c = [c, c.add(TILE), c.add(TILE * ldc), c.add(TILE * ldc + TILE)];
            if load {
                asm!(
                    "tileloadd tmm0, [{c0} + {st}*1]",
                    "tileloadd tmm1, [{c1} + {st}*1]",
                    "tileloadd tmm2, [{c2} + {st}*1]",
                    "tileloadd tmm3, [{c3} + {st}*1]",
                    c0 = in(reg) c[0], c1 = in(reg) c[1], c2 = in(reg) c[2], c3 = in(reg) c[3],
                    st = in(reg) st,
                    options(nostack, readonly, preserves_flags)
                );
            } else {
                asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "tilezero tmm2",
                    "tilezero tmm3",
                    options(nostack, nomem, preserves_flags)
                );
            }
            for s in 0..steps {
                let o = s * TILE_LEN;
                asm!(
                    "tileloadd tmm4, [{a0} + {st}*1]",
                    "tileloadd tmm6, [{b0} + {st}*1]",
                    "tileloadd tmm7, [{b1} + {st}*1]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tileloadd tmm5, [{a1} + {st}*1]",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    a0 = in(reg) a[0].add(o), a1 = in(reg) a[1].add(o),
                    b0 = in(reg) b[0].add(o), b1 = in(reg) b[1].add(o),
                    st = in(reg) 64usize,
                    options(nostack, readonly, preserves_flags)
                );
            }
            asm!(
                "tilestored [{c0} + {st}*1], tmm0",
                "tilestored [{c1} + {st}*1], tmm1",
                "tilestored [{c2} + {st}*1], tmm2",
                "tilestored [{c3} + {st}*1], tmm3",
                c0 = in(reg) c[0], c1 = in(reg) c[1], c2 = in(reg) c[2], c3 = in(reg) c[3],
                st = in(reg) st,
                options(nostack, preserves_flags)
            );
        }
    }

    /// [`Tiles::block_2x2`] for one row tile: C tiles `(0, 0)` and `(0, 1)` only.
    ///
    /// # Safety
    /// As [`Tiles::block_2x2`], with `c` valid for 16 rows.
    #[inline]
    pub unsafe fn block_1x2(
        &self,
        a: *const u16,
        b: [*const u16; 2],
        steps: usize,
        c: *mut f32,
        ldc: usize,
        load: bool,
    ) {
        let st = 4 * ldc;
        // SAFETY: as in `block_2x2`.
        unsafe {
            let c = [c, c.add(TILE)];
            if load {
                asm!(
                    "tileloadd tmm0, [{c0} + {st}*1]",
                    "tileloadd tmm1, [{c1} + {st}*1]",
                    c0 = in(reg) c[0], c1 = in(reg) c[1], st = in(reg) st,
                    options(nostack, readonly, preserves_flags)
                );
            } else {
                asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    options(nostack, nomem, preserves_flags)
                );
            }
            for s in 0..steps {
                let o = s * TILE_LEN;
                asm!(
                    "tileloadd tmm4, [{a0} + {st}*1]",
                    "tileloadd tmm6, [{b0} + {st}*1]",
                    "tileloadd tmm7, [{b1} + {st}*1]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    a0 = in(reg) a.add(o),
                    b0 = in(reg) b[0].add(o), b1 = in(reg) b[1].add(o),
                    st = in(reg) 64usize,
                    options(nostack, readonly, preserves_flags)
                );
            }
            asm!(
                "tilestored [{c0} + {st}*1], tmm0",
                "tilestored [{c1} + {st}*1], tmm1",
                c0 = in(reg) c[0], c1 = in(reg) c[1], st = in(reg) st,
                options(nostack, preserves_flags)
            );
        }
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        // SAFETY: the tiles were configured on this thread (`Tiles::new`); `tilerelease`
        // returns them to their initial state and touches no memory.
        unsafe { asm!("tilerelease", options(nostack, nomem, preserves_flags)) }
    }
}
