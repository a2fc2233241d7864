//! AVX2 + FMA attention scores with the keys in the vector lanes.
//!
//! Cached key rows are packed 8 positions at a time into dims-major blocks (`block[d * 8 + i]` is
//! dimension d of key i), so one FMA updates the scores of 8 keys and a score needs no horizontal
//! sum. Each score is one FMA chain over the dimensions in order, then one multiply by the scale,
//! whichever kernel call, block pairing or batch computed it.

use super::avx2_k8::transpose8;
use super::GROUP_HEADS_MAX;
use core::arch::x86_64::*;

/// Packs 8 key rows (each at least `out.len() / 8` floats; pass a zero row past the last key) into
/// one dims-major block. Returns false, writing nothing, unless `out.len()` is a multiple of 64.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn pack_keys8_f32(rows: [&[f32]; 8], out: &mut [f32]) -> bool {
    let hd = out.len() / 8;
    if !out.len().is_multiple_of(64) || rows.iter().any(|r| r.len() < hd) {
        return false;
    }
    for d0 in (0..hd).step_by(8) {
        let r: [__m256i; 8] = core::array::from_fn(|i| {
            // SAFETY: d0 + 8 <= hd <= every row's length.
            _mm256_castps_si256(unsafe { _mm256_loadu_ps(rows[i].as_ptr().add(d0)) })
        });
        // The same 32-bit lane moves as the K-quant tile's weights (bits are only moved).
        for (k, v) in transpose8(r).iter().enumerate() {
            // SAFETY: (d0 + k) * 8 + 8 <= hd * 8 = out.len().
            unsafe {
                _mm256_storeu_ps(out.as_mut_ptr().add((d0 + k) * 8), _mm256_castsi256_ps(*v))
            };
        }
    }
    true
}

/// Scores of `heads` query rows (`q[h * hd..][..hd]`, at most [`GROUP_HEADS_MAX`]) against the
/// packed key blocks `blocks` (each `hd * 8` floats): `out[h * out_stride + 8b + i] = scale *
/// sum_d q[h][d] * key_(8b + i)[d]`, the sum one FMA chain in dimension order. Returns false,
/// writing nothing, unless the shapes fit.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn scores8_f32(
    q: &[f32],
    heads: usize,
    blocks: &[f32],
    scale: f32,
    out: &mut [f32],
    out_stride: usize,
) -> bool {
    let hd = q.len() / heads.max(1);
    let nb = blocks.len() / (8 * hd.max(1));
    let fits = heads > 0
        && heads <= GROUP_HEADS_MAX
        && hd > 0
        && q.len() == heads * hd
        && blocks.len() == nb * 8 * hd
        && out_stride >= nb * 8
        && out.len() >= (heads - 1) * out_stride + nb * 8;
    if !fits {
        return false;
    }
    let sv = _mm256_set1_ps(scale);
    let mut b = 0;
    // Two blocks per pass (12 accumulators for 6 heads), then a last single block.
    while b < nb {
        let two = b + 1 < nb;
        let mut acc = [[_mm256_setzero_ps(); 2]; GROUP_HEADS_MAX];
        for d in 0..hd {
            // SAFETY: (b + 1) * 8 * hd <= blocks.len() (the second only when `two`), d < hd.
            let (k0, k1) = unsafe {
                let p = blocks.as_ptr().add(b * 8 * hd + d * 8);
                (
                    _mm256_loadu_ps(p),
                    if two {
                        _mm256_loadu_ps(p.add(8 * hd))
                    } else {
                        _mm256_setzero_ps()
                    },
                )
            };
            for (h, a) in acc.iter_mut().enumerate().take(heads) {
                // SAFETY: h * hd + d < heads * hd = q.len().
                let qv = _mm256_set1_ps(unsafe { *q.get_unchecked(h * hd + d) });
                a[0] = _mm256_fmadd_ps(qv, k0, a[0]);
                if two {
                    a[1] = _mm256_fmadd_ps(qv, k1, a[1]);
                }
            }
        }
        for (h, a) in acc.iter().enumerate().take(heads) {
            for (j, v) in a.iter().enumerate().take(if two { 2 } else { 1 }) {
                // SAFETY: h * out_stride + (b + j) * 8 + 8 <= (heads - 1) * out_stride + nb * 8 <= out.len().
                unsafe {
                    _mm256_storeu_ps(
                        out.as_mut_ptr().add(h * out_stride + (b + j) * 8),
                        _mm256_mul_ps(*v, sv),
                    )
                };
            }
        }
        b += if two { 2 } else { 1 };
    }
    true
}
