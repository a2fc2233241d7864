//! Scalar copies of the element-wise arithmetic of llama.cpp's CPU backend (ggml-cpu, x86 AVX2/F16C
//! build): its vectorised `exp`, SiLU, horizontal sums, RMSNorm, the RoPE cache and the
//! flash-attention inner loop with an f16 V accumulator. Floating-point operations are done in the
//! same order and with the same fused multiply-adds as the C code, so results match bit for bit.

use super::glibc;
use alloc::vec::Vec;
use half::f16;

/// A fused multiply-add (one rounding) in no_std, as the C code's FMA instructions.
pub trait Fma {
    /// `self * b + c` rounded once.
    fn fma(self, b: f32, c: f32) -> f32;
}

impl Fma for f32 {
    #[inline(always)]
    fn fma(self, b: f32, c: f32) -> f32 {
        // With std, `mul_add` is the C library's `fmaf` (the FMA instruction where the CPU has
        // it); without, libm's exact software version. Both round once.
        #[cfg(feature = "std")]
        {
            extern crate std;
            self.mul_add(b, c)
        }
        #[cfg(not(feature = "std"))]
        libm::fmaf(self, b, c)
    }
}

/// Rounds to the nearest f16 value (round half to even, as F16C's `vcvtps2ph` with mode 0),
/// returned as f32: bit arithmetic for normal values, a magic-number add for subnormals.
#[inline(always)]
pub fn f16r(v: f32) -> f32 {
    let bits = v.to_bits();
    let abs = bits & 0x7fff_ffff;
    if (0x3880_0000..0x4780_0000).contains(&abs) {
        // 2^-14 <= |v| < 65536: keep 10 mantissa bits, ties to even; a carry bumps the exponent.
        let r = (abs + 0x0fff + ((abs >> 13) & 1)) & !0x1fff;
        if r >= 0x4780_0000 {
            // Rounds past 65504: infinity.
            return f32::from_bits((bits & 0x8000_0000) | 0x7f80_0000);
        }
        return f32::from_bits((bits & 0x8000_0000) | r);
    }
    if abs < 0x3880_0000 {
        // f16 subnormals: multiples of 2^-24; adding 0.5 (ulp 2^-24 at 0.5) rounds to even.
        const C: f32 = 0.5;
        let m = if v < 0.0 { -C } else { C };
        let r = (v + m) - m;
        return if r == 0.0 {
            f32::from_bits(bits & 0x8000_0000)
        } else {
            r
        };
    }
    f16::from_f32(v).to_f32()
}

/// `expf` of the C library (glibc's), as llama.cpp's scalar code calls it.
#[inline]
pub fn libc_expf(x: f32) -> f32 {
    glibc::expf(x)
}

/// ggml's `ggml_v_expf` (AVX2 + FMA), one lane: a polynomial `exp` with explicit range handling.
pub fn v_expf(x: f32) -> f32 {
    let fb = f32::from_bits;
    let r = fb(0x4b40_0000);
    let z = x.fma(fb(0x3fb8_aa3b), r);
    let n = z - r;
    let b = (-n).fma(fb(0x35bf_be8e), (-n).fma(fb(0x3f31_7200), x));
    let e = z.to_bits() << 23;
    let k = fb(e.wrapping_add(1.0f32.to_bits()));
    let u = b * b;
    let j = fb(0x3c07_2010)
        .fma(b, fb(0x3d2b_9f17))
        .fma(u, fb(0x3e2a_af33).fma(b, fb(0x3eff_fedb)))
        .fma(u, fb(0x3f7f_fff6) * b);
    if n.abs() <= 126.0 {
        return j.fma(k, k);
    }
    let g: u32 = if n <= 0.0 { 0x8200_0000 } else { 0 };
    let s1 = fb(g.wrapping_add(0x7f00_0000));
    let s2 = fb(e.wrapping_sub(g));
    if n.abs() > 192.0 {
        s1 * s1
    } else {
        s2.fma(j, s2) * s1
    }
}

/// `ggml_v_silu`, one lane: `x / (1 + exp(0 - x))`.
#[inline]
pub fn v_silu(x: f32) -> f32 {
    x / (1.0 + v_expf(0.0 - x))
}

/// `hsum_float_8`: the horizontal sum of an `__m256` (high half onto low half, then pairs).
#[inline(always)]
pub fn hsum8(a: &[f32; 8]) -> f32 {
    let r = [a[4] + a[0], a[5] + a[1], a[6] + a[2], a[7] + a[3]];
    (r[0] + r[2]) + (r[1] + r[3])
}

/// `ggml_compute_forward_rms_norm_f32` followed by the weight multiply (`ggml_mul`).
pub fn rms_norm(x: &mut [f32], w: &[f32], eps: f32) {
    let mut sum = 0.0f64;
    for &v in x.iter() {
        sum += (v * v) as f64;
    }
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0f32 / libm::sqrtf(mean + eps);
    for (v, &wv) in x.iter_mut().zip(w) {
        *v = *v * scale * wv;
    }
}

/// ggml's RoPE cache for one position: `(cos, sin)` of `pos * scale * theta_scale^i`, the angle
/// built as a running product (`theta *= theta_scale`) as `ggml_rope_cache_init` does, with
/// glibc's `cosf`/`sinf` and `powf` (an f64 `pow` rounded once gives the same `theta_scale`).
pub fn rope_cache(pos: usize, n_dims: usize, base: f32, freq_scale: f32) -> Vec<(f32, f32)> {
    let theta_scale = libm::pow(base as f64, (-2.0f32 / n_dims as f32) as f64) as f32;
    let mut theta = pos as f32;
    let mut out = Vec::with_capacity(n_dims / 2);
    for _ in 0..n_dims / 2 {
        let t = freq_scale * theta;
        out.push((glibc::cosf(t), glibc::sinf(t)));
        theta *= theta_scale;
    }
    out
}

/// Rotates every head of `x` (heads of `head_dim`, the first `2 * cs.len()` dimensions) with the
/// FMA contraction GCC gives `x0*cos - x1*sin` and `x0*sin + x1*cos`.
pub fn rope_apply(x: &mut [f32], head_dim: usize, cs: &[(f32, f32)], neox: bool) {
    let half = cs.len();
    for head in x.chunks_exact_mut(head_dim) {
        for (i, &(c, s)) in cs.iter().enumerate() {
            let (a, b) = if neox {
                (i, i + half)
            } else {
                (2 * i, 2 * i + 1)
            };
            let (x0, x1) = (head[a], head[b]);
            head[a] = x0.fma(c, -(x1 * s));
            head[b] = x0.fma(s, x1 * c);
        }
    }
}

/// `ggml_vec_dot_f16` (AVX2/F16C): four 8-lane FMA accumulators over steps of 32, reduced pairwise;
/// `GGML_F32x8_REDUCE` (x0 += x2, x1 += x3, x0 += x1, halves, two `hadd`s); the tail in f64.
/// `x` and `y` hold f16 values.
pub fn vec_dot_f16(x: &[f32], y: &[f32]) -> f32 {
    let n = x.len().min(y.len());
    let np = n & !31;
    let mut sum = [[0.0f32; 8]; 4];
    for i in (0..np).step_by(32) {
        for (j, acc) in sum.iter_mut().enumerate() {
            for (l, a) in acc.iter_mut().enumerate() {
                let k = i + j * 8 + l;
                *a = x[k].fma(y[k], *a);
            }
        }
    }
    let [s0, s1, s2, s3] = sum;
    let s: [f32; 8] = core::array::from_fn(|l| (s0[l] + s2[l]) + (s1[l] + s3[l]));
    let t0 = [s[0] + s[4], s[1] + s[5], s[2] + s[6], s[3] + s[7]];
    // Two `hadd`s: (t0 + t1) + (t2 + t3).
    let mut sumf = ((t0[0] + t0[1]) + (t0[2] + t0[3])) as f64;
    for k in np..n {
        sumf += (x[k] * y[k]) as f64;
    }
    sumf as f32
}

/// One query row of `ggml_compute_forward_flash_attn_ext_f16_one_chunk` with an f16 KV cache:
/// Q rounded to f16, `s = (K·Q) * scale`, online softmax with the V accumulator kept in f16
/// (`ggml_vec_scale_f16`, `ggml_vec_mad_f16`) and glibc's `expf`, then `VKQ / S`. `keys` yields
/// the visible (unmasked) K and V rows in position order, already rounded to f16.
pub fn flash_attn_row<'k>(
    q: &[f32],
    keys: impl Iterator<Item = (&'k [f32], &'k [f32])>,
    scale: f32,
    out: &mut [f32],
) {
    let qh: Vec<f32> = q.iter().map(|&v| f16r(v)).collect();
    let mut acc = alloc::vec![0.0f32; out.len()];
    let mut m = f32::NEG_INFINITY;
    let mut s_sum = 0.0f32;
    for (k, v) in keys {
        let s = vec_dot_f16(k, &qh) * scale;
        let (mut ms, mut vs) = (1.0f32, 1.0f32);
        if s > m {
            let m_old = m;
            m = s;
            ms = libc_expf(m_old - m);
            for a in acc.iter_mut() {
                *a = f16r(*a * ms);
            }
        } else {
            vs = libc_expf(s - m);
        }
        for (a, &x) in acc.iter_mut().zip(v) {
            *a = f16r(x.fma(vs, *a));
        }
        s_sum = s_sum.fma(ms, vs);
    }
    let inv = if s_sum == 0.0 { 0.0 } else { 1.0f32 / s_sum };
    for (o, &a) in out.iter_mut().zip(&acc) {
        *o = a * inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v_expf_is_close_to_exp() {
        for &x in &[-100.0f32, -5.5, -1.0, 0.0, 0.3, 1.0, 7.25, 80.0] {
            let want = libm::expf(x);
            assert!((v_expf(x) - want).abs() <= want * 2e-6, "{x}");
        }
        assert_eq!(v_expf(-200.0), 0.0);
    }

    /// `expf` and `powf` against the host C library, where it is glibc.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn exp_and_pow_match_glibc() {
        extern "C" {
            fn expf(x: f32) -> f32;
            fn powf(x: f32, y: f32) -> f32;
        }
        let mut bad = 0;
        let mut x = -104.0f32;
        while x < 0.0 {
            // SAFETY: expf is a pure C library function of one float.
            bad += usize::from(libc_expf(x).to_bits() != unsafe { expf(x) }.to_bits());
            x += 0.000_37;
        }
        assert_eq!(bad, 0, "expf mismatches");
        for base in [10_000.0f32, 100_000.0, 1_000_000.0, 500_000.0] {
            for dims in [32usize, 64, 80, 96, 128, 256] {
                let e = -2.0f32 / dims as f32;
                let ours = libm::pow(base as f64, e as f64) as f32;
                // SAFETY: powf is a pure C library function of two floats.
                assert_eq!(
                    ours.to_bits(),
                    unsafe { powf(base, e) }.to_bits(),
                    "{base} {dims}"
                );
            }
        }
    }

    #[test]
    fn f16_rounding_matches_the_half_crate() {
        let mut bits = 0u32;
        loop {
            let v = f32::from_bits(bits);
            let (a, b) = (f16r(v), f16::from_f32(v).to_f32());
            assert!(
                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                "{v:e}"
            );
            match bits.checked_add(4093) {
                Some(n) => bits = n,
                None => break,
            }
        }
    }

    #[test]
    fn hsum8_pairs_halves() {
        assert_eq!(hsum8(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]), 36.0);
    }

    #[test]
    fn flash_attention_of_one_key_returns_its_value() {
        let (q, k, v) = ([1.0f32; 32], [0.5f32; 32], [0.25f32, -2.0]);
        let mut out = [0.0f32; 2];
        flash_attn_row(&q, [(&k[..], &v[..])].into_iter(), 0.125, &mut out);
        assert_eq!(out, v);
    }

    #[test]
    fn rope_cache_position_zero_is_identity() {
        assert!(rope_cache(0, 8, 10_000.0, 1.0)
            .iter()
            .all(|&c| c == (1.0, 0.0)));
    }
}
