//! AVX2 register-tiled kernels for prefill: `TR` weight rows x `TC` tokens per call, so each
//! decoded weight block is reused across tokens and each activation block across rows.
//!
//! Callers guarantee every weight row has `nb` blocks, where `nb` is the number of activation
//! blocks of each token; the functions check this and return without writing otherwise.

use super::avx2::{load32, nibbles_32};
use crate::quant::{BlockQ8_0, BlockQ8_1};
use core::arch::x86_64::*;

/// Weight rows per tile.
pub const TR: usize = 4;
/// Tokens per tile.
pub const TC: usize = 4;

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_ptr(p: *const u8) -> f32 {
    // SAFETY: the caller guarantees 2 readable bytes at p.
    let bits = unsafe { core::ptr::read_unaligned(p as *const u16) };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn decode_q8_0(p: *const u8) -> (__m256i, f32) {
    // SAFETY: the caller guarantees a whole 34-byte block at p.
    unsafe { (load32(p.add(2) as *const i8), f16_ptr(p)) }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn decode_q4_0(p: *const u8) -> (__m256i, f32) {
    // SAFETY: the caller guarantees a whole 18-byte block at p.
    let (q, d) = unsafe { (nibbles_32(p.add(2)), f16_ptr(p)) };
    (_mm256_sub_epi8(q, _mm256_set1_epi8(8)), d)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn decode_q5_0(p: *const u8) -> (__m256i, f32) {
    // SAFETY: the caller guarantees a whole 22-byte block at p.
    let (q, d, qh) = unsafe {
        (
            nibbles_32(p.add(6)),
            f16_ptr(p),
            core::ptr::read_unaligned(p.add(2) as *const u32),
        )
    };
    let shuf = _mm256_set_epi64x(
        0x0303_0303_0303_0303,
        0x0202_0202_0202_0202,
        0x0101_0101_0101_0101,
        0,
    );
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(qh as i32), shuf);
    let bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe));
    let set = _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1));
    (
        _mm256_or_si256(q, _mm256_andnot_si256(set, _mm256_set1_epi8(0xf0u8 as i8))),
        d,
    )
}

/// Sums the 8 i32 lanes of each of 4 vectors pairwise: the result holds, in lanes r and r + 4,
/// the low-half and high-half partial sums of `s[r]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn reduce4(s: [__m256i; TR]) -> __m256 {
    let h01 = _mm256_hadd_epi32(s[0], s[1]);
    let h23 = _mm256_hadd_epi32(s[2], s[3]);
    _mm256_cvtepi32_ps(_mm256_hadd_epi32(h01, h23))
}

/// Adds the two halves of each tile accumulator (then `extra`, if any) into `out`, in the
/// same order as the row kernels' `finish_halves`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn store_tile(acc: [__m256; TC], extra: Option<[__m128; TC]>, out: &mut [[f32; TR]; TC]) {
    for c in 0..TC {
        let lo = _mm256_castps256_ps128(acc[c]);
        let hi = _mm256_extractf128_ps(acc[c], 1);
        let mut v = _mm_add_ps(lo, hi);
        if let Some(e) = extra {
            v = _mm_add_ps(v, e[c]);
        }
        // SAFETY: out[c] has TR = 4 f32.
        unsafe { _mm_storeu_ps(out[c].as_mut_ptr(), v) };
    }
}

macro_rules! signed_tile {
    ($name:ident, $bytes:expr, $decode:ident) => {
        /// `out[c][r] = dot(w[r], a[c])` for a weight type whose values decode to signed bytes.
        #[allow(clippy::needless_range_loop)] // `i` indexes the weight rows and both token rows
        #[target_feature(enable = "avx2,fma,f16c")]
        pub fn $name(w: [&[u8]; TR], a: [&[BlockQ8_0]; TC], out: &mut [[f32; TR]; TC]) {
            let nb = a[0].len();
            if a.iter().any(|x| x.len() != nb) || w.iter().any(|x| x.len() != nb * $bytes) {
                return;
            }
            let ones = _mm256_set1_epi16(1);
            let mut acc = [_mm256_setzero_ps(); TC];
            for i in 0..nb {
                let mut ax = [_mm256_setzero_si256(); TR];
                let mut sx = [_mm256_setzero_si256(); TR];
                let mut dx = [0f32; TR];
                for r in 0..TR {
                    // SAFETY: i < nb and every row has nb blocks of $bytes (checked above).
                    let (q, d) = unsafe { $decode(w[r].as_ptr().add(i * $bytes)) };
                    ax[r] = _mm256_sign_epi8(q, q);
                    sx[r] = q;
                    dx[r] = d;
                }
                let dx4 = _mm_setr_ps(dx[0], dx[1], dx[2], dx[3]);
                let dx8 = _mm256_set_m128(dx4, dx4);
                for c in 0..TC {
                    let y = &a[c][i];
                    // SAFETY: y.qs has 32 bytes.
                    let qy = unsafe { load32(y.qs.as_ptr()) };
                    let s: [__m256i; TR] = core::array::from_fn(|r| {
                        _mm256_madd_epi16(
                            _mm256_maddubs_epi16(ax[r], _mm256_sign_epi8(qy, sx[r])),
                            ones,
                        )
                    });
                    let d = _mm256_mul_ps(dx8, _mm256_set1_ps(y.d));
                    acc[c] = _mm256_fmadd_ps(d, reduce4(s), acc[c]);
                }
            }
            store_tile(acc, None, out);
        }
    };
}

signed_tile!(tile_q8_0_q8_0, 34, decode_q8_0);
signed_tile!(tile_q4_0_q8_0, 18, decode_q4_0);
signed_tile!(tile_q5_0_q8_0, 22, decode_q5_0);

/// `out[c][r] = dot(w[r], a[c])` for Q4_1 weights and Q8_1 activations.
#[allow(clippy::needless_range_loop)] // `i` indexes the weight rows and both token rows
#[target_feature(enable = "avx2,fma,f16c")]
pub fn tile_q4_1_q8_1(w: [&[u8]; TR], a: [&[BlockQ8_1]; TC], out: &mut [[f32; TR]; TC]) {
    let nb = a[0].len();
    if a.iter().any(|x| x.len() != nb) || w.iter().any(|x| x.len() != nb * 20) {
        return;
    }
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); TC];
    let mut acc_min = [_mm_setzero_ps(); TC];
    for i in 0..nb {
        let mut qx = [_mm256_setzero_si256(); TR];
        let mut dm = [0u16; 8];
        for r in 0..TR {
            // SAFETY: i < nb and every row has nb 20-byte blocks (checked above).
            unsafe {
                let p = w[r].as_ptr().add(i * 20);
                qx[r] = nibbles_32(p.add(4));
                dm[r] = core::ptr::read_unaligned(p as *const u16);
                dm[4 + r] = core::ptr::read_unaligned(p.add(2) as *const u16);
            }
        }
        // SAFETY: dm has 8 u16 = 16 bytes.
        let dmv = _mm256_cvtph_ps(unsafe { _mm_loadu_si128(dm.as_ptr() as *const __m128i) });
        let dx = _mm256_castps256_ps128(dmv);
        let mx = _mm256_extractf128_ps(dmv, 1);
        let dx8 = _mm256_set_m128(dx, dx);
        for c in 0..TC {
            let y = &a[c][i];
            acc_min[c] = _mm_fmadd_ps(mx, _mm_set1_ps(y.s), acc_min[c]);
            // SAFETY: y.qs has 32 bytes.
            let qy = unsafe { load32(y.qs.as_ptr()) };
            let s: [__m256i; TR] =
                core::array::from_fn(|r| _mm256_madd_epi16(_mm256_maddubs_epi16(qx[r], qy), ones));
            let d = _mm256_mul_ps(dx8, _mm256_set1_ps(y.d));
            acc[c] = _mm256_fmadd_ps(d, reduce4(s), acc[c]);
        }
    }
    store_tile(acc, Some(acc_min), out);
}
