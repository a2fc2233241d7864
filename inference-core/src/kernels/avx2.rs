//! AVX2 + FMA dot products (maddubs/madd based, like ggml). Only called after
//! [`super::Isa::detect`] found AVX2, FMA and OS support for the YMM state.
//!
//! Every function requires `w.len() >= a.len() * block bytes` (checked by the callers in
//! `kernels`), so all loads below stay inside the slices.

pub use super::avx2_ktile::{dot_q4_k_q8_k, dot_q6_k_q8_k};
use crate::quant::{BlockQ8_0, BlockQ8_1};
use core::arch::x86_64::*;

/// The f16 at `b[off..off + 2]` as f32, converted with F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn f16_at(b: &[u8], off: usize) -> f32 {
    let bits = u16::from_le_bytes([b[off], b[off + 1]]);
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn hsum_ps(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// 16 bytes of packed nibbles to 32 bytes 0..15: low nibbles first, then high nibbles.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn nibbles_32(p: *const u8) -> __m256i {
    // SAFETY: the caller guarantees 16 readable bytes at p.
    let t = unsafe { _mm_loadu_si128(p as *const __m128i) };
    let both = _mm256_insertf128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    _mm256_and_si256(both, _mm256_set1_epi8(0x0f))
}

/// Exact i32 products summed pairwise: unsigned x times signed y, 8 lanes of 4 products each.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn int_sum_us8(ux: __m256i, sy: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(ux, sy), _mm256_set1_epi16(1))
}

/// As [`int_sum_us8`] for signed x.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn int_sum_i8(x: __m256i, y: __m256i) -> __m256i {
    int_sum_us8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x))
}

/// The exact integer sums of the low and high 128-bit halves of `s`, as f32 in lanes 0..4
/// and 4..8. The row kernels and the tiles (see `avx2_tile`) both accumulate these two
/// halves per block, so a row gives bit-identical results on either path.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn halves_f32(s: __m256i) -> __m256 {
    let h = _mm256_hadd_epi32(s, s);
    _mm256_cvtepi32_ps(_mm256_hadd_epi32(h, h))
}

/// Low-half accumulator plus high-half accumulator.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn finish_halves(acc: __m256) -> f32 {
    _mm256_cvtss_f32(acc) + _mm_cvtss_f32(_mm256_extractf128_ps(acc, 1))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn load32(p: *const i8) -> __m256i {
    // SAFETY: the caller guarantees 32 readable bytes at p.
    unsafe { _mm256_loadu_si256(p as *const __m256i) }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_q4_0_q8_0(w: &[u8], a: &[BlockQ8_0]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (b, y) in w.chunks_exact(18).zip(a) {
        let d = _mm256_set1_ps(f16_at(b, 0) * y.d);
        // SAFETY: b has 18 bytes (16 at offset 2); y.qs has 32.
        let (qx, qy) = unsafe { (nibbles_32(b.as_ptr().add(2)), load32(y.qs.as_ptr())) };
        let qx = _mm256_sub_epi8(qx, _mm256_set1_epi8(8));
        acc = _mm256_fmadd_ps(d, halves_f32(int_sum_i8(qx, qy)), acc);
    }
    finish_halves(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_q4_1_q8_1(w: &[u8], a: &[BlockQ8_1]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut summs = _mm_setzero_ps();
    for (b, y) in w.chunks_exact(20).zip(a) {
        // SAFETY: b has 20 bytes (d and m at 0..4, 16 nibble bytes at 4); y.qs has 32.
        let (dm, qx, qy) = unsafe {
            (
                _mm_cvtph_ps(_mm_cvtsi32_si128(core::ptr::read_unaligned(
                    b.as_ptr() as *const i32
                ))),
                nibbles_32(b.as_ptr().add(4)),
                load32(y.qs.as_ptr()),
            )
        };
        // dm = [d, m, 0, 0]; the minimum term m * s accumulates in lane 1.
        summs = _mm_fmadd_ps(dm, _mm_setr_ps(0.0, y.s, 0.0, 0.0), summs);
        let d = _mm256_set1_ps(_mm_cvtss_f32(dm) * y.d);
        acc = _mm256_fmadd_ps(d, halves_f32(int_sum_us8(qx, qy)), acc);
    }
    let mut lanes = [0f32; 4];
    // SAFETY: lanes has 4 f32.
    unsafe { _mm_storeu_ps(lanes.as_mut_ptr(), summs) };
    finish_halves(acc) + lanes[1]
}

/// 32 bits to 32 bytes: 0xff where the bit is set.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn bits_to_bytes(bits: u32) -> __m256i {
    let shuf = _mm256_set_epi64x(
        0x0303_0303_0303_0303,
        0x0202_0202_0202_0202,
        0x0101_0101_0101_0101,
        0,
    );
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(bits as i32), shuf);
    let bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe));
    _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_q5_0_q8_0(w: &[u8], a: &[BlockQ8_0]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (b, y) in w.chunks_exact(22).zip(a) {
        let d = _mm256_set1_ps(f16_at(b, 0) * y.d);
        let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        // SAFETY: b has 22 bytes (16 at offset 6); y.qs has 32.
        let (qx, qy) = unsafe { (nibbles_32(b.as_ptr().add(6)), load32(y.qs.as_ptr())) };
        let hi = _mm256_andnot_si256(bits_to_bytes(qh), _mm256_set1_epi8(0xf0u8 as i8));
        let qx = _mm256_or_si256(qx, hi);
        acc = _mm256_fmadd_ps(d, halves_f32(int_sum_i8(qx, qy)), acc);
    }
    finish_halves(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_q8_0_q8_0(w: &[u8], a: &[BlockQ8_0]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (b, y) in w.chunks_exact(34).zip(a) {
        let d = _mm256_set1_ps(f16_at(b, 0) * y.d);
        // SAFETY: b has 34 bytes (32 at offset 2); y.qs has 32.
        let (qx, qy) = unsafe {
            (
                load32(b.as_ptr().add(2) as *const i8),
                load32(y.qs.as_ptr()),
            )
        };
        acc = _mm256_fmadd_ps(d, halves_f32(int_sum_i8(qx, qy)), acc);
    }
    finish_halves(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_f32_f32(w: &[u8], x: &[f32]) -> f32 {
    let n = x.len().min(w.len() / 4);
    let mut acc = _mm256_setzero_ps();
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n elements are inside both slices.
        let (wv, xv) = unsafe {
            (
                _mm256_loadu_ps(w.as_ptr().add(4 * i) as *const f32),
                _mm256_loadu_ps(x.as_ptr().add(i)),
            )
        };
        acc = _mm256_fmadd_ps(wv, xv, acc);
        i += 8;
    }
    let mut s = hsum_ps(acc);
    for (j, &xj) in x.iter().enumerate().take(n).skip(i) {
        s += f32::from_le_bytes([w[4 * j], w[4 * j + 1], w[4 * j + 2], w[4 * j + 3]]) * xj;
    }
    s
}

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_f16_f32(w: &[u8], x: &[f32]) -> f32 {
    let n = x.len().min(w.len() / 2);
    let mut acc = _mm256_setzero_ps();
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n elements are inside both slices (16 bytes of f16 at 2i).
        let (wh, xv) = unsafe {
            (
                _mm_loadu_si128(w.as_ptr().add(2 * i) as *const __m128i),
                _mm256_loadu_ps(x.as_ptr().add(i)),
            )
        };
        acc = _mm256_fmadd_ps(_mm256_cvtph_ps(wh), xv, acc);
        i += 8;
    }
    let mut s = hsum_ps(acc);
    for (j, &xj) in x.iter().enumerate().take(n).skip(i) {
        s += f16_at(w, 2 * j) * xj;
    }
    s
}
