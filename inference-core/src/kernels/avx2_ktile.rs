//! AVX2 kernels for the K-quants (Q4_K, Q6_K) x Q8_K: a row dot product and a register tile of
//! `TR` weight rows x `TC` tokens that decodes each weight superblock once and reuses it for
//! every token of the tile (prefill).
//!
//! Both paths compute, per superblock, the same exact integer sums (`maddubs` of unsigned weight
//! values with signed activations, `madd` with the sub-block scales, the min/offset term from the
//! activation block sums) and fold them into one f32 accumulator with the same FMA sequence, so a
//! row gives bit-identical results on either path: logits never depend on how a batch was tiled.

use super::avx2::{f16_at, hsum_ps};
use super::avx2_tile::TR;
use crate::quant::BlockQ8K;
use core::arch::x86_64::*;

const Q4_K_BYTES: usize = 144;
const Q6_K_BYTES: usize = 210;

/// One weight superblock decoded for the integer path: 256 unsigned values (chunk k = values
/// `32k..32k + 32`, matching activation bytes `32k..`), a 16 x i16 scale vector per chunk, the
/// 16 x i16 coefficients of the activation block sums, and the f32 factors.
#[derive(Clone, Copy)]
#[repr(C, align(32))]
struct Decoded {
    q: [__m256i; 8],
    sc: [__m256i; 8],
    bm: __m256i,
    d: f32,
    dmin: f32,
}

/// The 8 six-bit scales and 8 six-bit mins of a Q4_K superblock, as bytes of two u64.
#[inline(always)]
fn q4_k_scales_mins(b: &[u8]) -> (u64, u64) {
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

/// The two 32-value chunks of Q4_K group `g` (low nibbles = chunk 2g, high nibbles = chunk 2g + 1).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q4_k_chunks(b: &[u8], g: usize) -> (__m256i, __m256i) {
    let m4 = _mm256_set1_epi8(0x0f);
    let src = &b[16 + 32 * g..16 + 32 * g + 32];
    // SAFETY: src has exactly 32 bytes.
    let q = unsafe { _mm256_loadu_si256(src.as_ptr() as *const __m256i) };
    (
        _mm256_and_si256(q, m4),
        _mm256_and_si256(_mm256_srli_epi16(q, 4), m4),
    )
}

/// The four 32-value chunks `4n..4n + 4` of a Q6_K superblock, as unsigned values 0..63.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q6_k_chunks(b: &[u8], n: usize) -> [__m256i; 4] {
    let m4 = _mm256_set1_epi8(0x0f);
    let m30 = _mm256_set1_epi8(0x30);
    let (l0, l1, h) = (
        &b[64 * n..64 * n + 32],
        &b[64 * n + 32..64 * n + 64],
        &b[128 + 32 * n..160 + 32 * n],
    );
    // SAFETY: each slice has exactly 32 bytes.
    let (ql0, ql1, qh) = unsafe {
        (
            _mm256_loadu_si256(l0.as_ptr() as *const __m256i),
            _mm256_loadu_si256(l1.as_ptr() as *const __m256i),
            _mm256_loadu_si256(h.as_ptr() as *const __m256i),
        )
    };
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

/// Q4_K: `acc += d * sumi - dmin * summ` (per lane), the one rounding sequence both paths use.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn fold_q4_k(acc: __m256, sumi: __m256i, summ: __m256i, d: f32, dmin: f32, yd: f32) -> __m256 {
    let acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(d * yd), acc);
    _mm256_fnmadd_ps(_mm256_cvtepi32_ps(summ), _mm256_set1_ps(dmin * yd), acc)
}

/// Q6_K: `acc += d * (sumi + offset)` (the offset sum is exact in i32).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn fold_q6_k(acc: __m256, sumi: __m256i, offs: __m256i, d: f32, yd: f32) -> __m256 {
    let s = _mm256_add_epi32(sumi, offs);
    _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d * yd), acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_q4_k_q8_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    let mut acc = _mm256_setzero_ps();
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
        acc = fold_q4_k(acc, sumi, summ, f16_at(b, 0), f16_at(b, 2), y.d);
    }
    hsum_ps(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_q6_k_q8_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    let mut acc = _mm256_setzero_ps();
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
        acc = fold_q6_k(acc, sumi, offs, f16_at(b, 208), y.d);
    }
    hsum_ps(acc)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn decode_q4_k(b: &[u8], out: &mut Decoded) {
    let (sc, mins) = q4_k_scales_mins(b);
    for g in 0..4 {
        let (lo, hi) = q4_k_chunks(b, g);
        out.q[2 * g] = lo;
        out.q[2 * g + 1] = hi;
    }
    for k in 0..8 {
        out.sc[k] = _mm256_set1_epi16((sc >> (8 * k)) as u8 as i16);
    }
    out.bm = q4_k_min_coeffs(mins);
    out.d = f16_at(b, 0);
    out.dmin = f16_at(b, 2);
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn decode_q6_k(b: &[u8], out: &mut Decoded) {
    for n in 0..2 {
        let q = q6_k_chunks(b, n);
        out.q[4 * n..4 * n + 4].copy_from_slice(&q);
    }
    for k in 0..8 {
        out.sc[k] = q6_k_scale(b, k);
    }
    out.bm = q6_k_offset_coeffs(b);
    out.d = f16_at(b, 208);
    out.dmin = 0.0;
}

/// Most tokens one [`rows_k`] call handles (bounds its f32 accumulators on the stack).
pub const KT_MAX: usize = 64;

/// The tile loop shared by both types: `K6` selects Q6_K (offset folded into the integer sum)
/// over Q4_K (mins folded in f32). Row r, token c lands in `out[r * n + c]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn rows_k<const K6: bool>(w: [&[u8]; TR], a: &[BlockQ8K], n: usize, out: &mut [f32]) {
    let bytes = if K6 { Q6_K_BYTES } else { Q4_K_BYTES };
    if n == 0 || n > KT_MAX || !a.len().is_multiple_of(n) || out.len() != TR * n {
        return;
    }
    let nb = a.len() / n;
    if w.iter().any(|x| x.len() != nb * bytes) {
        return;
    }
    let zero = Decoded {
        q: [_mm256_setzero_si256(); 8],
        sc: [_mm256_setzero_si256(); 8],
        bm: _mm256_setzero_si256(),
        d: 0.0,
        dmin: 0.0,
    };
    let mut dec = [zero; TR];
    let mut acc = [[_mm256_setzero_ps(); KT_MAX]; TR];
    for i in 0..nb {
        for (r, dr) in dec.iter_mut().enumerate() {
            let b = &w[r][i * bytes..(i + 1) * bytes];
            if K6 {
                decode_q6_k(b, dr);
            } else {
                decode_q4_k(b, dr);
            }
        }
        let mut c = 0;
        while c < n {
            let m = (n - c).min(4);
            let ys: [&BlockQ8K; 4] = core::array::from_fn(|j| &a[(c + j.min(m - 1)) * nb + i]);
            for (dr, ar) in dec.iter().zip(acc.iter_mut()) {
                let mut s = [_mm256_setzero_si256(); 4];
                for k in 0..8 {
                    let (q, sc) = (dr.q[k], dr.sc[k]);
                    for (sj, y) in s.iter_mut().zip(&ys) {
                        *sj = _mm256_add_epi32(*sj, scaled(q, y_chunk(y, k), sc));
                    }
                }
                for j in 0..m {
                    let bias = _mm256_madd_epi16(dr.bm, y_bsums(ys[j]));
                    let a = &mut ar[c + j];
                    *a = if K6 {
                        fold_q6_k(*a, s[j], bias, dr.d, ys[j].d)
                    } else {
                        fold_q4_k(*a, s[j], bias, dr.d, dr.dmin, ys[j].d)
                    };
                }
            }
            c += m;
        }
    }
    for (r, ar) in acc.iter().enumerate() {
        for (c, &v) in ar[..n].iter().enumerate() {
            out[r * n + c] = hsum_ps(v);
        }
    }
}

/// `out[r * n + c] = dot(w[r], token c of a)` for Q4_K weight rows and `n <= KT_MAX` Q8_K
/// tokens of `a.len() / n` blocks each. Writes nothing when the shapes disagree.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn rows_q4_k_q8_k(w: [&[u8]; TR], a: &[BlockQ8K], n: usize, out: &mut [f32]) {
    rows_k::<false>(w, a, n, out)
}

/// As [`rows_q4_k_q8_k`] for Q6_K weight rows.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn rows_q6_k_q8_k(w: [&[u8]; TR], a: &[BlockQ8K], n: usize, out: &mut [f32]) {
    rows_k::<true>(w, a, n, out)
}
