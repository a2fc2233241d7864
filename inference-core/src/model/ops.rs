//! Element-wise and per-row operations of the transformer: norms, RoPE, activations, softmax.
//! Every routine works on one row at a time, so a token's result never depends on its batch.

use half::f16;

/// Square root (no_std).
pub fn sqrtf(x: f32) -> f32 {
    libm::sqrtf(x)
}

/// RMSNorm in place.
pub fn rms_norm_in_place(x: &mut [f32], weight: &[f32], eps: f32) {
    let mut sum = 0.0f64;
    for &v in x.iter() {
        sum += (v as f64) * (v as f64);
    }
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / sqrtf(mean + eps);
    for (v, &w) in x.iter_mut().zip(weight) {
        *v = *v * scale * w;
    }
}

/// Precomputed inverse frequencies of one RoPE configuration.
#[derive(PartialEq)]
pub struct Rope {
    inv_freq: alloc::vec::Vec<f32>,
    scale: f32,
    neox: bool,
}

impl Rope {
    /// `dim` rotated dimensions per head, frequency base `base`, position scale `scale`.
    pub fn new(dim: usize, base: f32, scale: f32, neox: bool) -> Rope {
        let inv_freq = (0..dim / 2)
            .map(|i| libm::powf(base, -2.0 * i as f32 / dim as f32))
            .collect();
        Rope {
            inv_freq,
            scale,
            neox,
        }
    }

    /// Rotates the first `dim` (construction) dimensions of every head of `x` (heads of `head_dim`)
    /// for position `pos` (the forward pass applies [`Rope::angles`] rows computed once per chunk).
    #[cfg(test)]
    pub fn apply(&self, x: &mut [f32], head_dim: usize, pos: usize) {
        self.apply_angles(x, head_dim, &self.angles(pos..pos + 1));
    }

    /// (cos, sin) of every rotated pair, a row of `dim / 2` per position of `positions`.
    pub fn angles(&self, positions: core::ops::Range<usize>) -> alloc::vec::Vec<(f32, f32)> {
        let mut cs = alloc::vec::Vec::with_capacity(positions.len() * self.inv_freq.len());
        for pos in positions {
            let p = pos as f32 * self.scale;
            cs.extend(self.inv_freq.iter().map(|&f| {
                let theta = p * f;
                (libm::cosf(theta), libm::sinf(theta))
            }));
        }
        cs
    }

    /// [`Rope::apply`] with one position's row of [`Rope::angles`].
    pub fn apply_angles(&self, x: &mut [f32], head_dim: usize, cs: &[(f32, f32)]) {
        let half = self.inv_freq.len();
        for head in x.chunks_exact_mut(head_dim) {
            for (i, &(c, s)) in cs.iter().take(half).enumerate() {
                let (a, b) = if self.neox {
                    (i, i + half)
                } else {
                    (2 * i, 2 * i + 1)
                };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * c - x1 * s;
                head[b] = x0 * s + x1 * c;
            }
        }
    }
}

/// SiLU(gate) * up, into `gate`.
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        let x = *g;
        *g = x / (1.0 + libm::expf(-x)) * u;
    }
}

/// GELU (tanh approximation)(gate) * up, into `gate`, computed as llama.cpp's CPU backend does:
/// through a table indexed by the f16 value of the input holding f16 results (exact beyond |x| >= 10).
pub fn geglu(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        let x = *g;
        *g = if x <= -10.0 {
            0.0
        } else if x >= 10.0 {
            x * u
        } else {
            let xh = f16::from_f32(x).to_f32();
            f16::from_f32(gelu_tanh(xh)).to_f32() * u
        };
    }
}

fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + libm::tanhf(SQRT_2_OVER_PI * x * (1.0 + 0.044_715 * x * x)))
}

/// Softmax in place.
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        *v = libm::expf(*v - max);
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// `cap * tanh(x / cap)` on every element.
pub fn softcap(x: &mut [f32], cap: f32) {
    for v in x.iter_mut() {
        *v = cap * libm::tanhf(*v / cap);
    }
}

/// Dot product of two f32 slices.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(all(target_arch = "x86_64", not(target_feature = "sse2")))]
    if let Some(sum) = crate::kernels::exact_dot_f32(a, b) {
        return sum;
    }
    // Eight independent lanes (chunks without bounds checks) let the compiler vectorise.
    let mut acc = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ar.iter().zip(br) {
        sum += x * y;
    }
    sum
}

/// `y += a * x`.
#[inline]
pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    #[cfg(all(target_arch = "x86_64", not(target_feature = "sse2")))]
    if crate::kernels::exact_axpy_f32(y, a, x) {
        return;
    }
    for (yv, &xv) in y.iter_mut().zip(x) {
        *yv += a * xv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_unit_weight_gives_unit_rms() {
        let mut out = [1.0f32, -2.0, 3.0, -4.0];
        rms_norm_in_place(&mut out, &[1.0; 4], 0.0);
        let rms: f32 = out.iter().map(|v| v * v).sum::<f32>() / 4.0;
        assert!((rms - 1.0).abs() < 1e-5, "{rms}");
    }

    #[test]
    fn rope_normal_and_neox_rotate_different_pairs() {
        let mut a = [1.0f32, 0.0, 0.0, 0.0];
        let mut b = a;
        Rope::new(4, 10_000.0, 1.0, false).apply(&mut a, 4, 1);
        Rope::new(4, 10_000.0, 1.0, true).apply(&mut b, 4, 1);
        // Normal rotates (0,1) by 1 rad; NeoX rotates (0,2) by 1 rad.
        assert!((a[1] - 1.0f32.sin()).abs() < 1e-6 && a[2] == 0.0);
        assert!((b[2] - 1.0f32.sin()).abs() < 1e-6 && b[1] == 0.0);
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut x = [1.0f32, 3.0, 2.0];
        softmax(&mut x);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(x[1] > x[2] && x[2] > x[0]);
    }

    #[test]
    fn gelu_tanh_matches_known_values() {
        let mut g = [1.0f32, -1.0, 0.0];
        geglu(&mut g, &[1.0; 3]);
        assert!((g[0] - 0.841_192).abs() < 1e-3 && (g[1] + 0.158_808).abs() < 1e-3 && g[2] == 0.0);
    }
}
