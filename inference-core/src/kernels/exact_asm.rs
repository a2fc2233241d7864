//! Dot products for the soft-float bare-metal build (`x86_64-unknown-none`) that give results
//! bit-identical to [`super::scalar`]: the integer block sums run on AVX2 (exact), and the
//! per-block float work (`sumi as f32`, the f16 scales, the multiply-adds) runs as SSE scalar
//! instructions in exactly the scalar code's order (IEEE-exact, round to nearest, no fused
//! multiply-add), in place of the compiler's soft-float library calls.
//!
//! LLVM cannot lower vector intrinsics on a soft-float target ("Do not know how to split the
//! result of this operator"), so the kernels are `asm!` blocks. Under QEMU TCG, hardware float
//! and AVX2 integer code are both far faster than soft-float (docs/emulators.md). Used only when
//! the CPU and the OS enable AVX2 and F16C ([`available`]); the scalar path otherwise.

use crate::quant::{BlockQ8_0, BlockQ8_1};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

const _: () = assert!(core::mem::size_of::<BlockQ8_1>() == 40);

/// `asm!` with the vector registers the kernels use (ymm8 to ymm13, named in the templates)
/// declared as clobbered. On the soft-float target LLVM has no vector register class at all (it
/// refuses such operands), and no compiled code there keeps anything in a vector register, so
/// there the kernels write them undeclared; the hypervisor saves guest extended state before
/// inference (hypervisor/src/hw/xsave.rs).
#[cfg(target_feature = "sse2")]
macro_rules! asm_with_clobbers {
    ($($body:tt)*) => {
        core::arch::asm!(
            $($body)*
            out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _, out("ymm12") _,
            out("ymm13") _,
            options(nostack, readonly),
        )
    };
}
/// [`asm_with_clobbers`] for a block that uses every vector register and writes memory.
#[cfg(target_feature = "sse2")]
macro_rules! asm_all_clobbers {
    ($($body:tt)*) => {
        core::arch::asm!(
            $($body)*
            out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _, out("ymm4") _,
            out("ymm5") _, out("ymm6") _, out("ymm7") _, out("ymm8") _, out("ymm9") _,
            out("ymm10") _, out("ymm11") _, out("ymm12") _, out("ymm13") _, out("ymm14") _,
            out("ymm15") _,
            options(nostack),
        )
    };
}
#[cfg(not(target_feature = "sse2"))]
macro_rules! asm_all_clobbers {
    ($($body:tt)*) => {
        core::arch::asm!($($body)* options(nostack))
    };
}
/// [`asm_with_clobbers`] for a block that writes memory.
#[cfg(target_feature = "sse2")]
macro_rules! asm_with_clobbers_rw {
    ($($body:tt)*) => {
        core::arch::asm!(
            $($body)*
            out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _, out("ymm12") _,
            out("ymm13") _,
            options(nostack),
        )
    };
}
#[cfg(not(target_feature = "sse2"))]
macro_rules! asm_with_clobbers_rw {
    ($($body:tt)*) => {
        core::arch::asm!($($body)* options(nostack))
    };
}
#[cfg(not(target_feature = "sse2"))]
macro_rules! asm_with_clobbers {
    ($($body:tt)*) => {
        core::arch::asm!($($body)* options(nostack, readonly))
    };
}
const _: () = assert!(core::mem::size_of::<BlockQ8_0>() == 36);

/// Whether the CPU and OS support the instructions these kernels use (AVX2, F16C, YMM state).
/// Cached after the first call.
pub fn available() -> bool {
    use core::sync::atomic::{AtomicU8, Ordering};
    static STATE: AtomicU8 = AtomicU8::new(0);
    match STATE.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            let ok = super::cpu_has_avx2_fma();
            STATE.store(if ok { 2 } else { 1 }, Ordering::Relaxed);
            ok
        }
    }
}

/// Constants: the low-nibble mask, 16-bit ones.
static Q4_1_CONSTS: [[u32; 8]; 2] = [[0x0f0f_0f0f; 8], [0x0001_0001; 8]];

/// f32 bits of every f16 (exact, as `half` converts), filled on first use: under TCG a table
/// lookup in general registers is far cheaper than `vcvtph2ps`.
static F16_TO_F32: [AtomicU32; 65536] = [const { AtomicU32::new(0) }; 65536];
static F16_READY: AtomicBool = AtomicBool::new(false);

/// The filled [`F16_TO_F32`] table, as a pointer for the kernels.
fn f16_table() -> *const u32 {
    if !F16_READY.load(Ordering::Acquire) {
        for (i, e) in F16_TO_F32.iter().enumerate() {
            e.store(
                half::f16::from_bits(i as u16).to_f32().to_bits(),
                Ordering::Relaxed,
            );
        }
        F16_READY.store(true, Ordering::Release);
    }
    // AtomicU32 has the size and bit validity of u32; the entries are only read from here on.
    F16_TO_F32.as_ptr().cast::<u32>()
}

/// [`super::scalar::dot_q4_1_q8_1`], bit for bit, as f32 bits (no float type in a function with
/// vector features enabled: LLVM cannot soften it on the soft-float target).
///
/// Eight blocks at a time: their integer sums reduced together, their float terms
/// `sumi * (d_w * d_a) + m_w * s_a` computed lane-wise (each operation rounded as in the scalar
/// code), then added to the running sum one block after the other, in block order. Under TCG each
/// vector instruction is a helper call (a float one costs a softfloat call a lane), so the float
/// work runs once per eight blocks and the scales are collected with general-register moves.
///
/// # Safety
/// [`available`] returned true.
#[target_feature(enable = "avx2,f16c")]
pub unsafe fn dot_q4_1_q8_1(w: &[u8], a: &[BlockQ8_1]) -> u32 {
    let nb = (w.len() / 20).min(a.len());
    let (groups, rest) = (nb / 8, nb % 8);
    let mut scratch = [0u32; 32];
    let table = f16_table();
    let bits: u32;
    // SAFETY: reads nb weight blocks of 20 bytes from `w` and nb activation blocks of 40 bytes
    // from `a` (groups * 8 + rest = nb), all inside the slices, the constants, and table entries
    // indexed by 16-bit values (the table has 65536); writes only the 128 bytes of `scratch`. The
    // caller guarantees AVX2.
    unsafe {
        asm_all_clobbers!(
            "vmovdqu ymm14, ymmword ptr [{c}]",
            "vmovdqu ymm15, ymmword ptr [{c} + 32]",
            "vxorps xmm10, xmm10, xmm10",
            "test {g}, {g}",
            "jz 4f",
            "2:",
            "vmovdqu xmm0, xmmword ptr [{w} + 4]",
            "vpsrlw xmm8, xmm0, 4",
            "vinserti128 ymm0, ymm0, xmm8, 1",
            "vpand ymm0, ymm0, ymm14",
            "vpmaddubsw ymm0, ymm0, ymmword ptr [{a} + 8]",
            "vpmaddwd ymm0, ymm0, ymm15",
            "vmovdqu xmm1, xmmword ptr [{w} + 24]",
            "vpsrlw xmm8, xmm1, 4",
            "vinserti128 ymm1, ymm1, xmm8, 1",
            "vpand ymm1, ymm1, ymm14",
            "vpmaddubsw ymm1, ymm1, ymmword ptr [{a} + 48]",
            "vpmaddwd ymm1, ymm1, ymm15",
            "vmovdqu xmm2, xmmword ptr [{w} + 44]",
            "vpsrlw xmm8, xmm2, 4",
            "vinserti128 ymm2, ymm2, xmm8, 1",
            "vpand ymm2, ymm2, ymm14",
            "vpmaddubsw ymm2, ymm2, ymmword ptr [{a} + 88]",
            "vpmaddwd ymm2, ymm2, ymm15",
            "vmovdqu xmm3, xmmword ptr [{w} + 64]",
            "vpsrlw xmm8, xmm3, 4",
            "vinserti128 ymm3, ymm3, xmm8, 1",
            "vpand ymm3, ymm3, ymm14",
            "vpmaddubsw ymm3, ymm3, ymmword ptr [{a} + 128]",
            "vpmaddwd ymm3, ymm3, ymm15",
            "vmovdqu xmm4, xmmword ptr [{w} + 84]",
            "vpsrlw xmm8, xmm4, 4",
            "vinserti128 ymm4, ymm4, xmm8, 1",
            "vpand ymm4, ymm4, ymm14",
            "vpmaddubsw ymm4, ymm4, ymmword ptr [{a} + 168]",
            "vpmaddwd ymm4, ymm4, ymm15",
            "vmovdqu xmm5, xmmword ptr [{w} + 104]",
            "vpsrlw xmm8, xmm5, 4",
            "vinserti128 ymm5, ymm5, xmm8, 1",
            "vpand ymm5, ymm5, ymm14",
            "vpmaddubsw ymm5, ymm5, ymmword ptr [{a} + 208]",
            "vpmaddwd ymm5, ymm5, ymm15",
            "vmovdqu xmm6, xmmword ptr [{w} + 124]",
            "vpsrlw xmm8, xmm6, 4",
            "vinserti128 ymm6, ymm6, xmm8, 1",
            "vpand ymm6, ymm6, ymm14",
            "vpmaddubsw ymm6, ymm6, ymmword ptr [{a} + 248]",
            "vpmaddwd ymm6, ymm6, ymm15",
            "vmovdqu xmm7, xmmword ptr [{w} + 144]",
            "vpsrlw xmm8, xmm7, 4",
            "vinserti128 ymm7, ymm7, xmm8, 1",
            "vpand ymm7, ymm7, ymm14",
            "vpmaddubsw ymm7, ymm7, ymmword ptr [{a} + 288]",
            "vpmaddwd ymm7, ymm7, ymm15",
            // ymm0 = the eight blocks' integer sums, in block order (unpack and add: vphaddd
            // is several times slower under TCG).
            "vpunpckldq ymm8, ymm0, ymm1",
            "vpunpckhdq ymm0, ymm0, ymm1",
            "vpaddd ymm0, ymm0, ymm8",
            "vpunpckldq ymm8, ymm2, ymm3",
            "vpunpckhdq ymm2, ymm2, ymm3",
            "vpaddd ymm2, ymm2, ymm8",
            "vpunpcklqdq ymm8, ymm0, ymm2",
            "vpunpckhqdq ymm0, ymm0, ymm2",
            "vpaddd ymm0, ymm0, ymm8",
            "vpunpckldq ymm8, ymm4, ymm5",
            "vpunpckhdq ymm4, ymm4, ymm5",
            "vpaddd ymm4, ymm4, ymm8",
            "vpunpckldq ymm8, ymm6, ymm7",
            "vpunpckhdq ymm6, ymm6, ymm7",
            "vpaddd ymm6, ymm6, ymm8",
            "vpunpcklqdq ymm8, ymm4, ymm6",
            "vpunpckhqdq ymm4, ymm4, ymm6",
            "vpaddd ymm4, ymm4, ymm8",
            "vperm2i128 ymm1, ymm0, ymm4, 0x20",
            "vperm2i128 ymm2, ymm0, ymm4, 0x31",
            "vpaddd ymm0, ymm1, ymm2",
            "vcvtdq2ps ymm0, ymm0",
            // The scales through general registers (f16 by table: vcvtph2ps and gathers are
            // slow under TCG): s[0..8] d_w, s[8..16] m_w, s[16..24] d_a, s[24..32] s_a.
            "movzx {x:e}, word ptr [{w} + 0]",
            "mov {x:e}, dword ptr [{f} + 4*{x:r}]",
            "mov dword ptr [{s} + 0], {x:e}",
            "movzx {x:e}, word ptr [{w} + 2]",
            "mov {x:e}, dword ptr [{f} + 4*{x:r}]",
            "mov dword ptr [{s} + 32], {x:e}",
            "mov {x:e}, dword ptr [{a} + 0]",
            "mov dword ptr [{s} + 64], {x:e}",
            "mov {x:e}, dword ptr [{a} + 4]",
            "mov dword ptr [{s} + 96], {x:e}",
            "movzx {x:e}, word ptr [{w} + 20]",
            "mov {x:e}, dword ptr [{f} + 4*{x:r}]",
            "mov dword ptr [{s} + 4], {x:e}",
            "movzx {x:e}, word ptr [{w} + 22]",
            "mov {x:e}, dword ptr [{f} + 4*{x:r}]",
            "mov dword ptr [{s} + 36], {x:e}",
            "mov {x:e}, dword ptr [{a} + 40]",
            "mov dword ptr [{s} + 68], {x:e}",
            "mov {x:e}, dword ptr [{a} + 44]",
            "mov dword ptr [{s} + 100], {x:e}",
            "movzx {x:e}, word ptr [{w} + 40]",
            "mov {x:e}, dword ptr [{f} + 4*{x:r}]",
            "mov dword ptr [{s} + 8], {x:e}",
            "movzx {x:e}, word ptr [{w} + 42]",
            "mov {x:e}, dword ptr [{f} + 4*{x:r}]",
            "mov dword ptr [{s} + 40], {x:e}",
            "mov {x:e}, dword ptr [{a} + 80]",
            "mov dword ptr [{s} + 72], {x:e}",
            "mov {x:e}, dword ptr [{a} + 84]",
            "mov dword ptr [{s} + 104], {x:e}",
            "movzx {x:e}, word ptr [{w} + 60]",
            "mov {x:e}, dword ptr [{f} + 4*{x:r}]",
            "mov dword ptr [{s} + 12], {x:e}",
            "movzx {x:e}, word ptr [{w} + 62]",
            "mov {x:e}, dword ptr [{f} + 4*{x:r}]",
            "mov dword ptr [{s} + 44], {x:e}",
            "mov {x:e}, dword ptr [{a} + 120]",
            "mov dword ptr [{s} + 76], {x:e}",
            "mov {x:e}, dword ptr [{a} + 124]",
            "mov dword ptr [{s} + 108], {x:e}",
            "movzx {x:e}, word ptr [{w} + 80]",
            "mov {x:e}, dword ptr [{f} + 4*{x:r}]",
            "mov dword ptr [{s} + 16], {x:e}",
            "movzx {x:e}, word ptr [{w} + 82]",
            "mov {x:e}, dword ptr [{f} + 4*{x:r}]",
            "mov dword ptr [{s} + 48], {x:e}",
            "mov {x:e}, dword ptr [{a} + 160]",
            "mov dword ptr [{s} + 80], {x:e}",
            "mov {x:e}, dword ptr [{a} + 164]",
            "mov dword ptr [{s} + 112], {x:e}",
            "movzx {x:e}, word ptr [{w} + 100]",
            "mov {x:e}, dword ptr [{f} + 4*{x:r}]",
            "mov dword ptr [{s} + 20], {x:e}",
            "movzx {x:e}, word ptr [{w} + 102]",
            "mov {x:e}, dword ptr [{f} + 4*{x:r}]",
            "mov dword ptr [{s} + 52], {x:e}",
            "mov {x:e}, dword ptr [{a} + 200]",
            "mov dword ptr [{s} + 84], {x:e}",
            "mov {x:e}, dword ptr [{a} + 204]",
            "mov dword ptr [{s} + 116], {x:e}",
            "movzx {x:e}, word ptr [{w} + 120]",
            "mov {x:e}, dword ptr [{f} + 4*{x:r}]",
            "mov dword ptr [{s} + 24], {x:e}",
            "movzx {x:e}, word ptr [{w} + 122]",
            "mov {x:e}, dword ptr [{f} + 4*{x:r}]",
            "mov dword ptr [{s} + 56], {x:e}",
            "mov {x:e}, dword ptr [{a} + 240]",
            "mov dword ptr [{s} + 88], {x:e}",
            "mov {x:e}, dword ptr [{a} + 244]",
            "mov dword ptr [{s} + 120], {x:e}",
            "movzx {x:e}, word ptr [{w} + 140]",
            "mov {x:e}, dword ptr [{f} + 4*{x:r}]",
            "mov dword ptr [{s} + 28], {x:e}",
            "movzx {x:e}, word ptr [{w} + 142]",
            "mov {x:e}, dword ptr [{f} + 4*{x:r}]",
            "mov dword ptr [{s} + 60], {x:e}",
            "mov {x:e}, dword ptr [{a} + 280]",
            "mov dword ptr [{s} + 92], {x:e}",
            "mov {x:e}, dword ptr [{a} + 284]",
            "mov dword ptr [{s} + 124], {x:e}",
            "vmovups ymm3, ymmword ptr [{s}]",
            "vmulps ymm3, ymm3, ymmword ptr [{s} + 64]",
            "vmulps ymm0, ymm0, ymm3",
            "vmovups ymm4, ymmword ptr [{s} + 32]",
            "vmulps ymm4, ymm4, ymmword ptr [{s} + 96]",
            "vaddps ymm0, ymm0, ymm4",
            "vmovups ymmword ptr [{s}], ymm0",
            "vaddss xmm10, xmm10, dword ptr [{s} + 0]",
            "vaddss xmm10, xmm10, dword ptr [{s} + 4]",
            "vaddss xmm10, xmm10, dword ptr [{s} + 8]",
            "vaddss xmm10, xmm10, dword ptr [{s} + 12]",
            "vaddss xmm10, xmm10, dword ptr [{s} + 16]",
            "vaddss xmm10, xmm10, dword ptr [{s} + 20]",
            "vaddss xmm10, xmm10, dword ptr [{s} + 24]",
            "vaddss xmm10, xmm10, dword ptr [{s} + 28]",
            "add {w}, 160",
            "add {a}, 320",
            "dec {g}",
            "jnz 2b",
            "4:",
            "test {r}, {r}",
            "jz 6f",
            "5:",
            "vmovdqu xmm0, xmmword ptr [{w} + 4]",
            "vpsrlw xmm1, xmm0, 4",
            "vinserti128 ymm0, ymm0, xmm1, 1",
            "vpand ymm0, ymm0, ymm14",
            "vpmaddubsw ymm0, ymm0, ymmword ptr [{a} + 8]",
            "vpmaddwd ymm0, ymm0, ymm15",
            "vextracti128 xmm1, ymm0, 1",
            "vpaddd xmm0, xmm0, xmm1",
            "vpshufd xmm1, xmm0, 0x4e",
            "vpaddd xmm0, xmm0, xmm1",
            "vpshufd xmm1, xmm0, 0xb1",
            "vpaddd xmm0, xmm0, xmm1",
            "vcvtdq2ps xmm0, xmm0",
            "movzx {x:e}, word ptr [{w}]",
            "mov {x:e}, dword ptr [{f} + 4*{x:r}]",
            "vmovd xmm2, {x:e}",
            "vmulss xmm2, xmm2, dword ptr [{a}]",
            "vmulss xmm0, xmm0, xmm2",
            "movzx {x:e}, word ptr [{w} + 2]",
            "mov {x:e}, dword ptr [{f} + 4*{x:r}]",
            "vmovd xmm2, {x:e}",
            "vmulss xmm2, xmm2, dword ptr [{a} + 4]",
            "vaddss xmm0, xmm0, xmm2",
            "vaddss xmm10, xmm10, xmm0",
            "add {w}, 20",
            "add {a}, 40",
            "dec {r}",
            "jnz 5b",
            "6:",
            "vmovd {x:e}, xmm10",
            w = inout(reg) w.as_ptr() => _,
            a = inout(reg) a.as_ptr() => _,
            g = inout(reg) groups => _,
            r = inout(reg) rest => _,
            c = in(reg) Q4_1_CONSTS.as_ptr(),
            f = in(reg) table,
            s = in(reg) scratch.as_mut_ptr(),
            x = out(reg) bits,
        );
    }
    bits
}

/// [`super::scalar::dot_q8_0_q8_0`], bit for bit, as f32 bits (no float type in a function with
/// vector features enabled: LLVM cannot soften it on the soft-float target).
///
/// # Safety
/// [`available`] returned true.
#[target_feature(enable = "avx2,f16c")]
pub unsafe fn dot_q8_0_q8_0(w: &[u8], a: &[BlockQ8_0]) -> u32 {
    let nb = (w.len() / 34).min(a.len());
    if nb == 0 {
        return 0;
    }
    let table = f16_table();
    let bits: u32;
    // SAFETY: reads nb weight blocks of 34 bytes from `w` and nb activation blocks of 36 bytes
    // from `a`, inside the slices, and table entries indexed by 16-bit values (65536 of them);
    // the caller guarantees AVX2. Only the named vector registers are written.
    unsafe {
        asm_with_clobbers!(
            "vxorps xmm10, xmm10, xmm10",
            "2:",
            "vpmovsxbw ymm11, xmmword ptr [{w} + 2]",
            "vpmovsxbw ymm12, xmmword ptr [{a} + 4]",
            "vpmaddwd ymm11, ymm11, ymm12",
            "vpmovsxbw ymm12, xmmword ptr [{w} + 18]",
            "vpmovsxbw ymm13, xmmword ptr [{a} + 20]",
            "vpmaddwd ymm12, ymm12, ymm13",
            "vpaddd ymm11, ymm11, ymm12",
            "vextracti128 xmm12, ymm11, 1",
            "vpaddd xmm11, xmm11, xmm12",
            "vpshufd xmm12, xmm11, 0x4e",
            "vpaddd xmm11, xmm11, xmm12",
            "vpshufd xmm12, xmm11, 0xb1",
            "vpaddd xmm11, xmm11, xmm12",
            // sumi as f32 * (d_w * d_a)
            "vcvtdq2ps xmm11, xmm11",
            "movzx {t:e}, word ptr [{w}]",
            "mov {t:e}, dword ptr [{f} + 4*{t:r}]",
            "vmovd xmm13, {t:e}",
            "vmulss xmm13, xmm13, dword ptr [{a}]",
            "vmulss xmm11, xmm11, xmm13",
            "vaddss xmm10, xmm10, xmm11",
            "add {w}, 34",
            "add {a}, 36",
            "dec {n}",
            "jnz 2b",
            "vmovd {t:e}, xmm10",
            w = inout(reg) w.as_ptr() => _,
            a = inout(reg) a.as_ptr() => _,
            n = inout(reg) nb => _,
            f = in(reg) table,
            t = out(reg) bits,
        );
    }
    bits
}

/// The eight-lane part of [`crate::model::ops::dot`], bit for bit: lanes `acc[l] += a[8i + l] *
/// b[8i + l]` over the first `8 * (n / 8)` elements (`n` the shorter length), reduced as
/// `((acc0 + acc4) + (acc1 + acc5)) + ((acc2 + acc6) + (acc3 + acc7))`; returns f32 bits.
///
/// # Safety
/// [`available`] returned true.
#[target_feature(enable = "avx2,f16c")]
pub unsafe fn dot_f32_lanes(a: &[f32], b: &[f32]) -> u32 {
    let n8 = a.len().min(b.len()) / 8;
    let bits: u32;
    // SAFETY: reads n8 * 8 floats from each slice, inside both; the caller guarantees AVX2.
    unsafe {
        asm_with_clobbers!(
            "vxorps ymm8, ymm8, ymm8",
            "test {n}, {n}",
            "jz 3f",
            "2:",
            "vmovups ymm9, ymmword ptr [{a}]",
            "vmulps ymm9, ymm9, ymmword ptr [{b}]",
            "vaddps ymm8, ymm8, ymm9",
            "add {a}, 32",
            "add {b}, 32",
            "dec {n}",
            "jnz 2b",
            "3:",
            "vextractf128 xmm9, ymm8, 1",
            "vaddps xmm8, xmm8, xmm9",
            "vmovshdup xmm9, xmm8",
            "vaddps xmm9, xmm8, xmm9",
            "vmovhlps xmm10, xmm9, xmm9",
            "vaddss xmm9, xmm9, xmm10",
            "vmovd {t:e}, xmm9",
            a = inout(reg) a.as_ptr() => _,
            b = inout(reg) b.as_ptr() => _,
            n = inout(reg) n8 => _,
            t = out(reg) bits,
        );
    }
    bits
}

/// `y[i] += a * x[i]` for the first `8 * (n / 8)` elements (`n` the shorter length), bit for bit
/// as the scalar loop (a multiply, then an add, each rounded); `a_bits` is `a.to_bits()`.
///
/// # Safety
/// [`available`] returned true.
#[target_feature(enable = "avx2,f16c")]
pub unsafe fn axpy_f32_lanes(y: &mut [f32], a_bits: u32, x: &[f32]) {
    let n8 = y.len().min(x.len()) / 8;
    if n8 == 0 {
        return;
    }
    // SAFETY: reads n8 * 8 floats of `x` and reads and writes n8 * 8 floats of `y`, inside both
    // slices (`y` is borrowed mutably); the caller guarantees AVX2.
    unsafe {
        asm_with_clobbers_rw!(
            "vmovd xmm8, {s:e}",
            "vbroadcastss ymm8, xmm8",
            "2:",
            "vmulps ymm9, ymm8, ymmword ptr [{x}]",
            "vaddps ymm9, ymm9, ymmword ptr [{y}]",
            "vmovups ymmword ptr [{y}], ymm9",
            "add {x}, 32",
            "add {y}, 32",
            "dec {n}",
            "jnz 2b",
            s = in(reg) a_bits,
            x = inout(reg) x.as_ptr() => _,
            y = inout(reg) y.as_mut_ptr() => _,
            n = inout(reg) n8 => _,
        );
    }
}

#[cfg(test)]
#[path = "exact_asm_tests.rs"]
mod tests;
