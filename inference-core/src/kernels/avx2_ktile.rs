//! AVX2 row dot products for the K-quants (Q4_K, Q6_K) x Q8_K (decode, and rows a prefill tile
//! leaves over; the tile is `avx2_k8`).
//!
//! Per superblock they compute the exact integer sums (`maddubs` of unsigned weight values with
//! signed activations, `madd` with the sub-block scales, the min/offset term from the activation
//! block sums), reduce them to one i32 each and fold them into f32 by the scalar reference formula
//! (`kernels::scalar`), so a row gives bit-identical results here, in the tile and in the scalar
//! code: logits never depend on how a batch was tiled.

use super::avx2::f16_at;
use crate::quant::BlockQ8K;
use core::arch::x86_64::*;

const Q4_K_BYTES: usize = 144;
const Q6_K_BYTES: usize = 210;

/// The 8 six-bit scales and 8 six-bit mins of a Q4_K superblock, as bytes of two u64.
#[inline(always)]
pub(super) fn q4_k_scales_mins(b: &[u8]) -> (u64, u64) {
    let w = |o: usize| u32::from_le_bytes([b[4 + o], b[5 + o], b[6 + o], b[7 + o]]);
    let (w0, w1, w2) = (w(0), w(4), w(8));
    let sc_lo = w0 & 0x3f3f_3f3f;
    let m_lo = w1 & 0x3f3f_3f3f;
    let sc_hi = (w2 & 0x0f0f_0f0f) | (((w0 >> 6) & 0x0303_0303) << 4);
    let m_hi = ((w2 >> 4) & 0x0f0f_0f0f) | (((w1 >> 6) & 0x0303_0303) << 4);
    (
        sc_lo as u64 | (sc_hi as u64) << 32,
        m_lo as u64 | (m_hi as u64) << 32,
    )
}

/// Mins m0..m7 (bytes of `mins`) as 16 x i16 `[m0, m0, m1, m1, ..]`: one per 16-value block sum.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q4_k_min_coeffs(mins: u64) -> __m256i {
    let m = _mm_cvtsi64_si128(mins as i64);
    let dup = _mm_shuffle_epi8(
        m,
        _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7),
    );
    _mm256_cvtepu8_epi16(dup)
}

/// The 32 bytes at `b[off..]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn load32(b: &[u8], off: usize) -> __m256i {
    let s = &b[off..off + 32];
    // SAFETY: s has exactly 32 bytes.
    unsafe { _mm256_loadu_si256(s.as_ptr() as *const __m256i) }
}

/// Packed Q4_K bytes split into their low and high nibbles (bytewise, so it commutes with moving
/// whole dwords).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn q4_k_nibbles(q: __m256i) -> (__m256i, __m256i) {
    let m4 = _mm256_set1_epi8(0x0f);
    (
        _mm256_and_si256(q, m4),
        _mm256_and_si256(_mm256_srli_epi16(q, 4), m4),
    )
}

/// The two 32-value chunks of Q4_K group `g` (low nibbles = chunk 2g, high nibbles = chunk 2g + 1).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q4_k_chunks(b: &[u8], g: usize) -> (__m256i, __m256i) {
    q4_k_nibbles(load32(b, 16 + 32 * g))
}

/// The four Q6_K chunks built from low-bit vectors `ql0`, `ql1` and high-bit vector `qh`, as
/// unsigned values 0..63 (ggml's layout; bytewise, so it commutes with moving whole dwords).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn q6_k_unpack(ql0: __m256i, ql1: __m256i, qh: __m256i) -> [__m256i; 4] {
    let m4 = _mm256_set1_epi8(0x0f);
    let m30 = _mm256_set1_epi8(0x30);
    [
        _mm256_or_si256(
            _mm256_and_si256(ql0, m4),
            _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30),
        ),
        _mm256_or_si256(
            _mm256_and_si256(ql1, m4),
            _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30),
        ),
        _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
            _mm256_and_si256(qh, m30),
        ),
        _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
            _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30),
        ),
    ]
}

/// The four 32-value chunks `4n..4n + 4` of a Q6_K superblock, as unsigned values 0..63.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q6_k_chunks(b: &[u8], n: usize) -> [__m256i; 4] {
    q6_k_unpack(
        load32(b, 64 * n),
        load32(b, 64 * n + 32),
        load32(b, 128 + 32 * n),
    )
}

/// Scale vector of Q6_K chunk k: its two 16-value scales in the low and high 128-bit halves.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q6_k_scale(b: &[u8], k: usize) -> __m256i {
    let s0 = b[192 + 2 * k] as i8 as i16;
    let s1 = b[193 + 2 * k] as i8 as i16;
    _mm256_setr_m128i(_mm_set1_epi16(s0), _mm_set1_epi16(s1))
}

/// `-32 * scale` per 16-value group: the Q6_K offset, applied through the activation block sums.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q6_k_offset_coeffs(b: &[u8]) -> __m256i {
    let s = &b[192..208];
    // SAFETY: s has exactly 16 bytes.
    let v = _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(s.as_ptr() as *const __m128i) });
    _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(v, 5))
}

/// Exact i32 lanes: unsigned weight bytes x signed activation bytes, pairs summed, times `sc`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scaled(q: __m256i, y: __m256i, sc: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(q, y), sc)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn y_chunk(y: &BlockQ8K, k: usize) -> __m256i {
    let s = &y.qs[32 * k..32 * k + 32];
    // SAFETY: s has exactly 32 bytes.
    unsafe { _mm256_loadu_si256(s.as_ptr() as *const __m256i) }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn y_bsums(y: &BlockQ8K) -> __m256i {
    // SAFETY: bsums is 16 i16 = 32 bytes.
    unsafe { _mm256_loadu_si256(y.bsums.as_ptr() as *const __m256i) }
}

/// Exact sum of the eight i32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum_epi32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

/// Exact sums of the eight i32 lanes of `a` and of `b`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum2_epi32(a: __m256i, b: __m256i) -> (i32, i32) {
    let x = _mm256_hadd_epi32(a, b);
    let y = _mm_add_epi32(_mm256_castsi256_si128(x), _mm256_extracti128_si256(x, 1));
    let z = _mm_hadd_epi32(y, y);
    (_mm_cvtsi128_si32(z), _mm_extract_epi32(z, 1))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_q4_k_q8_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (b, y) in w.chunks_exact(Q4_K_BYTES).zip(a) {
        let (sc, mins) = q4_k_scales_mins(b);
        let mut sumi = _mm256_setzero_si256();
        for g in 0..4 {
            let (lo, hi) = q4_k_chunks(b, g);
            let s1 = _mm256_set1_epi16((sc >> (16 * g)) as u8 as i16);
            let s2 = _mm256_set1_epi16((sc >> (16 * g + 8)) as u8 as i16);
            sumi = _mm256_add_epi32(sumi, scaled(lo, y_chunk(y, 2 * g), s1));
            sumi = _mm256_add_epi32(sumi, scaled(hi, y_chunk(y, 2 * g + 1), s2));
        }
        let summ = _mm256_madd_epi16(q4_k_min_coeffs(mins), y_bsums(y));
        let (d, dmin) = (f16_at(b, 0) * y.d, f16_at(b, 2) * y.d);
        let (si, sm) = hsum2_epi32(sumi, summ);
        sum += d * si as f32 - dmin * sm as f32;
    }
    sum
}

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_q6_k_q8_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (b, y) in w.chunks_exact(Q6_K_BYTES).zip(a) {
        let mut sumi = _mm256_setzero_si256();
        for n in 0..2 {
            let q = q6_k_chunks(b, n);
            for (j, &qk) in q.iter().enumerate() {
                let k = 4 * n + j;
                sumi = _mm256_add_epi32(sumi, scaled(qk, y_chunk(y, k), q6_k_scale(b, k)));
            }
        }
        let offs = _mm256_madd_epi16(q6_k_offset_coeffs(b), y_bsums(y));
        sum += f16_at(b, 208) * y.d * hsum_epi32(_mm256_add_epi32(sumi, offs)) as f32;
    }
    sum
}
