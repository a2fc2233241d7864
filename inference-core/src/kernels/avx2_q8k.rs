//! AVX2 Q8_K activation quantisation, bit-identical to [`crate::quant::quantize_block_q8_k`] for
//! finite inputs: the same largest magnitude (max is exact in any order), the same first value
//! that has it, the same f32 multiply and round-half-to-even by the magic-number addition.

use crate::quant::{BlockQ8K, QK_K};
use core::arch::x86_64::*;

/// Quantises the 256 values of `c` into `out`. Returns false, writing nothing, unless `c` holds
/// exactly 256 values.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn quantize_block_q8_k(c: &[f32], out: &mut BlockQ8K) -> bool {
    let Ok(c) = <&[f32; QK_K]>::try_from(c) else {
        return false;
    };
    let load = |i: usize| -> __m256 {
        // SAFETY: i < 32, so 8i + 8 <= 256 = c.len().
        unsafe { _mm256_loadu_ps(c.as_ptr().add(8 * i)) }
    };
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let mut m = _mm256_setzero_ps();
    for i in 0..32 {
        m = _mm256_max_ps(m, _mm256_and_ps(load(i), abs_mask));
    }
    let mut lanes = [0f32; 8];
    // SAFETY: lanes holds 8 floats.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), m) };
    let amax = lanes.iter().fold(0.0f32, |a, &v| a.max(v));
    *out = BlockQ8K::ZERO;
    if amax == 0.0 {
        return true;
    }
    // The first value whose magnitude is amax.
    let target = _mm256_set1_ps(amax);
    let mut max = 0.0;
    for i in 0..32 {
        let hit = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(
            _mm256_and_ps(load(i), abs_mask),
            target,
        ));
        if hit != 0 {
            max = c[8 * i + hit.trailing_zeros() as usize];
            break;
        }
    }
    let iscale = -127.0 / max;
    let (sv, magic) = (_mm256_set1_ps(iscale), _mm256_set1_ps(12_582_912.0));
    let (mant, bias, top) = (
        _mm256_set1_epi32(0x007f_ffff),
        _mm256_set1_epi32(0x0040_0000),
        _mm256_set1_epi32(127),
    );
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for k in 0..8 {
        // 32 values: four vectors of 8 rounded to i32, packed to bytes in order.
        let q: [__m256i; 4] = [0, 1, 2, 3].map(|j| {
            let r = _mm256_add_ps(_mm256_mul_ps(sv, load(4 * k + j)), magic);
            let n = _mm256_sub_epi32(_mm256_and_si256(_mm256_castps_si256(r), mant), bias);
            _mm256_min_epi32(n, top)
        });
        let w = _mm256_packs_epi16(
            _mm256_packs_epi32(q[0], q[1]),
            _mm256_packs_epi32(q[2], q[3]),
        );
        let w = _mm256_permutevar8x32_epi32(w, order);
        // SAFETY: 32k + 32 <= 256 = out.qs.len().
        unsafe { _mm256_storeu_si256(out.qs.as_mut_ptr().add(32 * k) as *mut __m256i, w) };
    }
    out.fill_bsums();
    out.d = 1.0 / iscale;
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::quantize_block_q8_k as scalar;

    #[test]
    fn matches_the_scalar_quantiser_bit_for_bit() {
        if !std::is_x86_feature_detected!("avx2") || !std::is_x86_feature_detected!("fma") {
            return;
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        };
        for case in 0..400 {
            let scale = [1e-3f32, 0.7, 3.0, 250.0][case % 4];
            let mut x: Vec<f32> = (0..QK_K).map(|_| rnd() * scale).collect();
            match case % 5 {
                // Ties on the largest magnitude, of both signs: the first one decides.
                1 => {
                    x[200] = -2.0 * scale;
                    x[17] = 2.0 * scale;
                }
                // Values on the rounding half-way points.
                2 => x.iter_mut().for_each(|v| *v = (*v * 8.0).round() / 8.0),
                3 => x.iter_mut().take(255).for_each(|v| *v = 0.0),
                4 => x.iter_mut().for_each(|v| *v = 0.0),
                _ => {}
            }
            let mut got = BlockQ8K::ZERO;
            // SAFETY: AVX2 and FMA were detected above.
            assert!(unsafe { quantize_block_q8_k(&x, &mut got) });
            assert_eq!(got, scalar(&x), "case {case}");
        }
        let mut got = BlockQ8K::ZERO;
        // SAFETY: as above.
        assert!(!unsafe { quantize_block_q8_k(&[0.0; 255], &mut got) });
    }
}
