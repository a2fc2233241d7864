//! AVX2 + FMA f32 vector routines for attention: dot product, `y += a * x`, and softmax with a
//! polynomial `exp` (max relative error about 2 ulp over the range softmax uses).

use super::avx2::hsum_ps;
use super::GROUP_HEADS_MAX;
use core::arch::x86_64::*;

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n elements are inside both slices.
        unsafe {
            let (pa, pb) = (a.as_ptr().add(i), b.as_ptr().add(i));
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa), _mm256_loadu_ps(pb), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(8)), _mm256_loadu_ps(pb.add(8)), acc1);
        }
        i += 16;
    }
    if i + 8 <= n {
        // SAFETY: i + 8 <= n elements are inside both slices.
        unsafe {
            let v = _mm256_mul_ps(
                _mm256_loadu_ps(a.as_ptr().add(i)),
                _mm256_loadu_ps(b.as_ptr().add(i)),
            );
            acc0 = _mm256_add_ps(acc0, v);
        }
        i += 8;
    }
    let mut s = hsum_ps(_mm256_add_ps(acc0, acc1));
    for j in i..n {
        s += a[j] * b[j];
    }
    s
}

#[target_feature(enable = "avx2,fma,f16c")]
pub fn axpy_f32(y: &mut [f32], a: f32, x: &[f32]) {
    let n = y.len().min(x.len());
    let av = _mm256_set1_ps(a);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n elements are inside both slices.
        unsafe {
            let py = y.as_mut_ptr().add(i);
            let v = _mm256_fmadd_ps(av, _mm256_loadu_ps(x.as_ptr().add(i)), _mm256_loadu_ps(py));
            _mm256_storeu_ps(py, v);
        }
        i += 8;
    }
    for j in i..n {
        y[j] += a * x[j];
    }
}

/// e^x for 8 lanes, x in [-87, 88]; smaller inputs give 0 (through the clamp and a flush).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn exp8(x: __m256) -> __m256 {
    let x = _mm256_min_ps(x, _mm256_set1_ps(88.0));
    let tiny = _mm256_cmp_ps(x, _mm256_set1_ps(-87.0), _CMP_LT_OQ);
    let x = _mm256_max_ps(x, _mm256_set1_ps(-87.0));
    // x = n ln2 + r, |r| <= ln2 / 2, with ln2 split in a high part exact in f32 and a low part.
    let n = _mm256_round_ps(
        _mm256_mul_ps(x, _mm256_set1_ps(core::f32::consts::LOG2_E)),
        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
    );
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_145_75), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428_606_8e-6), r);
    // Taylor terms of e^r up to r^7 (enough for |r| <= 0.347 at f32 precision).
    let c = |v: f32| _mm256_set1_ps(v);
    let mut p = c(1.0 / 5040.0);
    p = _mm256_fmadd_ps(p, r, c(1.0 / 720.0));
    p = _mm256_fmadd_ps(p, r, c(1.0 / 120.0));
    p = _mm256_fmadd_ps(p, r, c(1.0 / 24.0));
    p = _mm256_fmadd_ps(p, r, c(1.0 / 6.0));
    p = _mm256_fmadd_ps(p, r, c(0.5));
    p = _mm256_fmadd_ps(p, r, c(1.0));
    p = _mm256_fmadd_ps(p, r, c(1.0));
    let pow2 = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)),
        23,
    );
    let e = _mm256_mul_ps(p, _mm256_castsi256_ps(pow2));
    _mm256_andnot_ps(tiny, e)
}

/// `gate[i] = silu(gate[i]) * up[i]` (SwiGLU) over the shorter length, silu through [`exp8`].
#[target_feature(enable = "avx2,fma,f16c")]
pub fn swiglu_f32(gate: &mut [f32], up: &[f32]) {
    let n = gate.len().min(up.len());
    let one = _mm256_set1_ps(1.0);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n elements are inside gate and up.
        unsafe {
            let pg = gate.as_mut_ptr().add(i);
            let x = _mm256_loadu_ps(pg);
            let e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
            let s = _mm256_div_ps(x, _mm256_add_ps(one, e));
            _mm256_storeu_ps(pg, _mm256_mul_ps(s, _mm256_loadu_ps(up.as_ptr().add(i))));
        }
        i += 8;
    }
    for (g, &u) in gate[i..n].iter_mut().zip(&up[i..n]) {
        *g = *g / (1.0 + exp1(-*g)) * u;
    }
}

/// e^x of one value, through the same lanes as [`exp8`].
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn exp1(x: f32) -> f32 {
    _mm256_cvtss_f32(exp8(_mm256_set1_ps(x)))
}

/// Softmax in place: `x[i] = e^(x[i] - max) / sum`.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn softmax_f32(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let n = x.len();
    let mv = _mm256_set1_ps(max);
    let mut sum = _mm256_setzero_ps();
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n elements are inside x.
        unsafe {
            let p = x.as_mut_ptr().add(i);
            let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(p), mv));
            _mm256_storeu_ps(p, e);
            sum = _mm256_add_ps(sum, e);
        }
        i += 8;
    }
    let mut s = hsum_ps(sum);
    for v in &mut x[i..] {
        *v = exp1(*v - max);
        s += *v;
    }
    let inv = _mm256_set1_ps(1.0 / s);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: as above.
        unsafe {
            let p = x.as_mut_ptr().add(i);
            _mm256_storeu_ps(p, _mm256_mul_ps(_mm256_loadu_ps(p), inv));
        }
        i += 8;
    }
    let inv = 1.0 / s;
    for v in &mut x[i..] {
        *v *= inv;
    }
}

/// `o[d] += sum_j p[j] * v[j * stride + d]` for `d < o.len()` (a multiple of 8), keys in order:
/// per element the same FMA sequence as repeated [`axpy_f32`], with `o` held in registers.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn weighted_rows_f32(o: &mut [f32], p: &[f32], v: &[f32], stride: usize) {
    let w = o.len();
    if !w.is_multiple_of(8) || p.is_empty() || v.len() < (p.len() - 1) * stride + w {
        return;
    }
    let mut d0 = 0;
    while d0 < w {
        let nv = ((w - d0) / 8).min(8);
        let mut acc = [_mm256_setzero_ps(); 8];
        for (i, a) in acc.iter_mut().enumerate().take(nv) {
            // SAFETY: d0 + 8i + 8 <= w.
            *a = unsafe { _mm256_loadu_ps(o.as_ptr().add(d0 + 8 * i)) };
        }
        for (j, &pj) in p.iter().enumerate() {
            let pv = _mm256_set1_ps(pj);
            // SAFETY: j * stride + d0 + 8 * nv <= (p.len() - 1) * stride + w <= v.len().
            let row = unsafe { v.as_ptr().add(j * stride + d0) };
            for (i, a) in acc.iter_mut().enumerate().take(nv) {
                // SAFETY: see above.
                *a = _mm256_fmadd_ps(pv, unsafe { _mm256_loadu_ps(row.add(8 * i)) }, *a);
            }
        }
        for (i, a) in acc.iter().enumerate().take(nv) {
            // SAFETY: d0 + 8i + 8 <= w.
            unsafe { _mm256_storeu_ps(o.as_mut_ptr().add(d0 + 8 * i), *a) };
        }
        d0 += 8 * nv;
    }
}

/// [`weighted_rows_f32`] for the `o.len() / w` heads of a KV group at once (`w = o.len() / heads`
/// floats per head, a multiple of 16; at most [`GROUP_HEADS_MAX`] heads): `o[h * w + d] += sum_j
/// p[h * p_stride + j] * v[j * stride + d]`, keys in order, each 16-float chunk of a value row
/// loaded once for every head. Per element the same FMA sequence as repeated [`axpy_f32`], so the
/// result is bit-identical. Returns false, writing nothing, for shapes that do not fit
/// (`group_rows_fit`).
#[target_feature(enable = "avx2,fma,f16c")]
pub fn weighted_rows_heads_f32(
    o: &mut [f32],
    heads: usize,
    p: &[f32],
    p_stride: usize,
    keys: usize,
    v: &[f32],
    stride: usize,
) -> bool {
    let fit = group_rows_fit(o.len(), heads, p.len(), p_stride, keys, v.len(), stride);
    let Some(w) = fit else {
        return false;
    };
    let mut d0 = 0;
    while d0 < w {
        let mut acc = [[_mm256_setzero_ps(); 2]; GROUP_HEADS_MAX];
        for (h, a) in acc.iter_mut().enumerate().take(heads) {
            // SAFETY: h * w + d0 + 16 <= heads * w = o.len().
            unsafe {
                let po = o.as_ptr().add(h * w + d0);
                *a = [_mm256_loadu_ps(po), _mm256_loadu_ps(po.add(8))];
            }
        }
        for j in 0..keys {
            // SAFETY: j * stride + d0 + 16 <= (keys - 1) * stride + w <= v.len(), and
            // h * p_stride + j < (heads - 1) * p_stride + keys <= p.len().
            unsafe {
                let row = v.as_ptr().add(j * stride + d0);
                let (v0, v1) = (_mm256_loadu_ps(row), _mm256_loadu_ps(row.add(8)));
                for (h, a) in acc.iter_mut().enumerate().take(heads) {
                    let pv = _mm256_set1_ps(*p.get_unchecked(h * p_stride + j));
                    a[0] = _mm256_fmadd_ps(pv, v0, a[0]);
                    a[1] = _mm256_fmadd_ps(pv, v1, a[1]);
                }
            }
        }
        for (h, a) in acc.iter().enumerate().take(heads) {
            // SAFETY: as for the loads.
            unsafe {
                let po = o.as_mut_ptr().add(h * w + d0);
                _mm256_storeu_ps(po, a[0]);
                _mm256_storeu_ps(po.add(8), a[1]);
            }
        }
        d0 += 16;
    }
    true
}

/// The width of one head's row when `heads` output rows (`o_len` floats), their weights (`p_len`,
/// head h's at `h * p_stride`, `keys` each) and `keys` value rows (`v_len`, `stride` apart) fit
/// [`weighted_rows_heads_f32`]: rows a multiple of 16 floats, 1 to [`GROUP_HEADS_MAX`] heads.
#[allow(clippy::too_many_arguments)]
fn group_rows_fit(
    o_len: usize,
    heads: usize,
    p_len: usize,
    p_stride: usize,
    keys: usize,
    v_len: usize,
    stride: usize,
) -> Option<usize> {
    let w = o_len / heads.max(1);
    let fits = (1..=GROUP_HEADS_MAX).contains(&heads)
        && w.is_multiple_of(16)
        && o_len == heads * w
        && keys >= 1
        && p_len >= (heads - 1) * p_stride + keys
        && v_len >= (keys - 1) * stride + w;
    fits.then_some(w)
}
