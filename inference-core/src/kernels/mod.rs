//! Dot-product kernels: a scalar reference path and an AVX2+FMA path chosen at run time.
//!
//! The SIMD code is compiled only where the target has SSE2 in its ABI: soft-float targets
//! such as `x86_64-unknown-none` (where LLVM cannot lower AVX2 intrinsics) get the scalar
//! path, and [`Isa::detect`] returns [`Isa::Scalar`] there.

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod avx2;
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod avx2_attn;
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod avx2_f32;
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod avx2_k8;
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod avx2_ktile;
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod avx2_q8k;
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod avx2_tile;
// The soft-float bare-metal build's exact kernels (compiled on every x86_64 host for the tests).
#[cfg(all(target_arch = "x86_64", any(test, not(target_feature = "sse2"))))]
mod exact_asm;
mod k8_packed;
mod matmul;
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod matmul_k8;
pub mod scalar;

pub use k8_packed::K8Packed;
pub use matmul::{matmul, MatmulContext, MatmulError, RowSelection, SharedJob};

use crate::gguf::GgmlType;
use crate::quant::QuantizedActs;

/// The instruction set the kernels use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Portable scalar reference code.
    Scalar,
    /// AVX2 + FMA + F16C (x86_64 only; only valid when [`Isa::detect`] returned it).
    Avx2,
}

impl Isa {
    /// The best instruction set this CPU and OS support, found with CPUID and XGETBV
    /// (never from compile-time target features). Works in no_std.
    /// The result is cached after the first call (CPUID is slow under a hypervisor).
    pub fn detect() -> Isa {
        use core::sync::atomic::{AtomicU8, Ordering};
        static DETECTED: AtomicU8 = AtomicU8::new(0);
        match DETECTED.load(Ordering::Relaxed) {
            1 => return Isa::Scalar,
            2 => return Isa::Avx2,
            _ => {}
        }
        #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
        let isa = if cpu_has_avx2_fma() {
            Isa::Avx2
        } else {
            Isa::Scalar
        };
        #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
        let isa = Isa::Scalar;
        DETECTED.store(if isa == Isa::Avx2 { 2 } else { 1 }, Ordering::Relaxed);
        isa
    }

    /// `self`, but never more than what the CPU supports (so a forced `Avx2` is safe).
    pub fn clamp_to_cpu(self) -> Isa {
        match self {
            Isa::Scalar => Isa::Scalar,
            Isa::Avx2 => Isa::detect(),
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn cpu_has_avx2_fma() -> bool {
    use core::arch::x86_64::__cpuid_count;
    let max_leaf = __cpuid_count(0, 0).eax;
    if max_leaf < 7 {
        return false;
    }
    let l1 = __cpuid_count(1, 0);
    let fma = l1.ecx & (1 << 12) != 0;
    let f16c = l1.ecx & (1 << 29) != 0;
    let osxsave = l1.ecx & (1 << 27) != 0;
    let avx = l1.ecx & (1 << 28) != 0;
    if !(fma && f16c && osxsave && avx) {
        return false;
    }
    let (lo, _hi): (u32, u32);
    // SAFETY: XGETBV with ECX=0 is valid because CPUID.1:ECX.OSXSAVE is set (checked above);
    // it only reads XCR0 into EDX:EAX.
    unsafe {
        core::arch::asm!("xgetbv", in("ecx") 0u32, out("eax") lo, out("edx") _hi, options(nomem, nostack, preserves_flags));
    }
    if lo & 0b110 != 0b110 {
        return false; // the OS does not save XMM and YMM state
    }
    __cpuid_count(7, 0).ebx & (1 << 5) != 0
}

/// Up to this many query heads of a KV group share one pass over a key or value row
/// ([`VecF32::scores8`], [`VecF32::weighted_rows_heads`]).
pub const GROUP_HEADS_MAX: usize = 6;

/// SIMD f32 routines for attention (dot, axpy, softmax). Exists only where the CPU has AVX2
/// and FMA, so callers keep their portable code for [`VecF32::new`] returning None.
#[derive(Clone, Copy, Debug)]
pub struct VecF32 {
    _avx2: (),
}

impl VecF32 {
    /// The SIMD routines when `isa` (clamped to the CPU) is AVX2.
    pub fn new(isa: Isa) -> Option<VecF32> {
        (isa.clamp_to_cpu() == Isa::Avx2).then_some(VecF32 { _avx2: () })
    }

    /// `sum(a[i] * b[i])` over the shorter length.
    #[inline]
    pub fn dot(self, a: &[f32], b: &[f32]) -> f32 {
        #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
        // SAFETY: a VecF32 exists only when the CPU supports AVX2 and FMA (see `new`).
        return unsafe { avx2_f32::dot_f32(a, b) };
        #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    /// [`VecF32::weighted_rows`] for `heads` heads at once: `o` holds the heads' rows one after the
    /// other, head h's weights are `p[h * p_stride..][..keys]`. Bit-identical to one
    /// `weighted_rows` per head; returns false (doing nothing) unless each row is a multiple of 16
    /// floats, there are at most 6 heads and `p` and `v` hold every weight and row.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn weighted_rows_heads(
        self,
        o: &mut [f32],
        heads: usize,
        p: &[f32],
        p_stride: usize,
        keys: usize,
        v: &[f32],
        stride: usize,
    ) -> bool {
        #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
        // SAFETY: as in `dot`.
        return unsafe {
            avx2_f32::weighted_rows_heads_f32(o, heads, p, p_stride, keys, v, stride)
        };
        #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
        {
            let _ = (o, heads, p, p_stride, keys, v, stride);
            false
        }
    }

    /// Packs 8 key rows (each at least `out.len() / 8` floats) into one dims-major block for
    /// [`VecF32::scores8`]; false (nothing written) unless `out.len()` is a multiple of 64.
    #[inline]
    pub fn pack_keys8(self, rows: [&[f32]; 8], out: &mut [f32]) -> bool {
        #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
        // SAFETY: as in `dot`.
        return unsafe { avx2_attn::pack_keys8_f32(rows, out) };
        #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
        {
            let _ = (rows, out);
            false
        }
    }

    /// Scaled scores of `heads` query rows against packed key blocks, 8 keys per block:
    /// `out[h * out_stride + 8b + i]`, each one FMA chain over the dimensions in order. False
    /// (nothing written) unless the shapes fit and `heads <= GROUP_HEADS_MAX`.
    #[inline]
    pub fn scores8(
        self,
        q: &[f32],
        heads: usize,
        blocks: &[f32],
        scale: f32,
        out: &mut [f32],
        out_stride: usize,
    ) -> bool {
        #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
        // SAFETY: as in `dot`.
        return unsafe { avx2_attn::scores8_f32(q, heads, blocks, scale, out, out_stride) };
        #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
        {
            let _ = (q, heads, blocks, scale, out, out_stride);
            false
        }
    }

    /// `y[i] += a * x[i]` over the shorter length.
    #[inline]
    pub fn axpy(self, y: &mut [f32], a: f32, x: &[f32]) {
        #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
        // SAFETY: as in `dot`.
        unsafe {
            avx2_f32::axpy_f32(y, a, x)
        };
        #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
        y.iter_mut().zip(x).for_each(|(v, &u)| *v += a * u);
    }

    /// `o[d] += sum_j p[j] * v[j * stride + d]`, keys in order, when `o.len()` is a multiple of
    /// 8 and `v` holds every row; returns false (doing nothing) otherwise.
    #[inline]
    pub fn weighted_rows(self, o: &mut [f32], p: &[f32], v: &[f32], stride: usize) -> bool {
        if !o.len().is_multiple_of(8) || p.is_empty() || v.len() < (p.len() - 1) * stride + o.len()
        {
            return false;
        }
        #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
        // SAFETY: as in `dot`.
        unsafe {
            avx2_f32::weighted_rows_f32(o, p, v, stride)
        };
        #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
        for (j, &pj) in p.iter().enumerate() {
            self.axpy(o, pj, &v[j * stride..j * stride + o.len()]);
        }
        true
    }

    /// `gate[i] = silu(gate[i]) * up[i]` (SwiGLU) over the shorter length, with the polynomial
    /// exp of [`VecF32::softmax`].
    #[inline]
    pub fn swiglu(self, gate: &mut [f32], up: &[f32]) {
        #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
        // SAFETY: as in `dot`.
        unsafe {
            avx2_f32::swiglu_f32(gate, up)
        };
        #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
        for (g, &u) in gate.iter_mut().zip(up) {
            *g = *g / (1.0 + libm::expf(-*g)) * u;
        }
    }

    /// Softmax in place (polynomial exp; within a few ulp of libm).
    #[inline]
    pub fn softmax(self, x: &mut [f32]) {
        #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
        // SAFETY: as in `dot`.
        unsafe {
            avx2_f32::softmax_f32(x)
        };
        #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
        {
            let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for v in x.iter_mut() {
                *v = libm::expf(*v - max);
                sum += *v;
            }
            x.iter_mut().for_each(|v| *v /= sum);
        }
    }
}

/// On the soft-float bare-metal build: the scalar result for Q4_1 and Q8_0 rows computed by the
/// exact `asm!` kernels (bit-identical to [`scalar`]), when the CPU has AVX2 and F16C; None for
/// other types, a CPU without them, or activations too short for `token`.
#[cfg(all(target_arch = "x86_64", not(target_feature = "sse2")))]
#[inline]
pub(crate) fn exact_scalar(
    ty: GgmlType,
    w: &[u8],
    acts: &QuantizedActs,
    token: usize,
    nb: usize,
) -> Option<f32> {
    if !exact_asm::available() {
        return None;
    }
    match (ty, acts) {
        (GgmlType::Q4_1, QuantizedActs::Q8_1(a)) => {
            let a = a.get(token * nb..(token + 1) * nb)?;
            // SAFETY: available() returned true (AVX2, F16C and YMM state enabled).
            Some(f32::from_bits(unsafe { exact_asm::dot_q4_1_q8_1(w, a) }))
        }
        (GgmlType::Q8_0, QuantizedActs::Q8_0(a)) => {
            let a = a.get(token * nb..(token + 1) * nb)?;
            // SAFETY: as above.
            Some(f32::from_bits(unsafe { exact_asm::dot_q8_0_q8_0(w, a) }))
        }
        _ => None,
    }
}

/// On the soft-float bare-metal build: [`crate::model::ops::dot`] of equal-length slices by the
/// exact `asm!` kernel (bit-identical), when the CPU has AVX2; None otherwise.
#[cfg(all(target_arch = "x86_64", not(target_feature = "sse2")))]
#[inline]
pub(crate) fn exact_dot_f32(a: &[f32], b: &[f32]) -> Option<f32> {
    if a.len() != b.len() || !exact_asm::available() {
        return None;
    }
    // SAFETY: available() returned true.
    let mut sum = f32::from_bits(unsafe { exact_asm::dot_f32_lanes(a, b) });
    let n8 = a.len() / 8 * 8;
    for (x, y) in a[n8..].iter().zip(&b[n8..]) {
        sum += x * y;
    }
    Some(sum)
}

/// On the soft-float bare-metal build: [`crate::model::ops::axpy`] by the exact `asm!` kernel
/// (bit-identical), when the CPU has AVX2; false (nothing done) otherwise.
#[cfg(all(target_arch = "x86_64", not(target_feature = "sse2")))]
#[inline]
pub(crate) fn exact_axpy_f32(y: &mut [f32], a: f32, x: &[f32]) -> bool {
    if !exact_asm::available() {
        return false;
    }
    // SAFETY: available() returned true.
    unsafe { exact_asm::axpy_f32_lanes(y, a.to_bits(), x) };
    let n = y.len().min(x.len());
    let n8 = n / 8 * 8;
    for (yv, &xv) in y[n8..n].iter_mut().zip(&x[n8..n]) {
        *yv += a * xv;
    }
    true
}

/// Dot product of one weight row (`w`, type `ty`) with token `token` of `acts`, where each
/// token row has `row_len` elements. Returns None when the types or lengths do not match.
pub fn dot_row(
    ty: GgmlType,
    w: &[u8],
    acts: &QuantizedActs,
    token: usize,
    row_len: usize,
    isa: Isa,
) -> Option<f32> {
    let nb = row_len / ty.block_size();
    if !row_len.is_multiple_of(ty.block_size()) || w.len() != nb * ty.type_size() {
        return None;
    }
    let isa = isa.clamp_to_cpu();
    #[cfg(all(target_arch = "x86_64", not(target_feature = "sse2")))]
    if let Some(v) = exact_scalar(ty, w, acts, token, nb) {
        return Some(v);
    }
    macro_rules! pick {
        ($f:ident, $blocks:expr, $per_row:expr) => {{
            let a = $blocks.get(token * $per_row..(token + 1) * $per_row)?;
            Some(match isa {
                Isa::Scalar => scalar::$f(w, a),
                #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
                // SAFETY: clamp_to_cpu returned Avx2, so the CPU and OS support AVX2 and FMA.
                Isa::Avx2 => unsafe { avx2::$f(w, a) },
                #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
                Isa::Avx2 => scalar::$f(w, a),
            })
        }};
    }
    match (ty, acts) {
        (GgmlType::F32, QuantizedActs::F32(x)) => pick!(dot_f32_f32, x, row_len),
        (GgmlType::F16, QuantizedActs::F32(x)) => pick!(dot_f16_f32, x, row_len),
        (GgmlType::Q4_0, QuantizedActs::Q8_0(a)) => pick!(dot_q4_0_q8_0, a, nb),
        (GgmlType::Q4_1, QuantizedActs::Q8_1(a)) => pick!(dot_q4_1_q8_1, a, nb),
        (GgmlType::Q5_0, QuantizedActs::Q8_0(a)) => pick!(dot_q5_0_q8_0, a, nb),
        (GgmlType::Q8_0, QuantizedActs::Q8_0(a)) => pick!(dot_q8_0_q8_0, a, nb),
        (GgmlType::Q4_K, QuantizedActs::Q8K(a)) => pick!(dot_q4_k_q8_k, a, nb),
        (GgmlType::Q6_K, QuantizedActs::Q8K(a)) => pick!(dot_q6_k_q8_k, a, nb),
        _ => None,
    }
}
