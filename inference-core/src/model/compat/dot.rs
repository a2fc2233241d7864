//! Scalar copies of llama.cpp's quantized matrix-vector arithmetic on x86 with AVX2: the
//! activation rounding (`quantize_row_q8_0/q8_1` with `127/amax` and round-half-to-even, the
//! reference `quantize_row_q8_K`) and, per weight type, the dot product's lane structure and
//! accumulation order (`ggml_vec_dot_*` in `ggml-cpu/arch/x86/quants.c`, tinyBLAS' `Q0` kernels,
//! and the repacked `q4_K_8x8` gemv/gemm of `arch/x86/repack.cpp`).
//!
//! Integer partial sums are exact whatever their order, so each kernel is reduced here to what
//! rounds: which elements share an integer lane, the f32 scale products, the FMA chains over
//! blocks and the final horizontal sum.

use super::math::{f16r, hsum8, Fma};
use crate::gguf::GgmlType;
use crate::quant::dequant_internals::{q4_k_scale_min, q6_k_values};
use crate::quant::{f16_at, quantize_row_q8_k, BlockQ8K, QK, QK_K};
use alloc::vec::Vec;

/// A 32-value activation block: `d` and `s = d * sum(qs)`, both f16-rounded (Q8_0 ignores `s`).
#[derive(Clone, Copy)]
pub struct Act32 {
    d: f32,
    s: f32,
    qs: [i8; QK],
}

/// The activations of a batch of tokens in the companion format of a weight type.
pub enum Acts {
    B32(Vec<Vec<Act32>>),
    K(Vec<Vec<BlockQ8K>>),
    F32(Vec<Vec<f32>>),
}

impl Acts {
    pub fn len(&self) -> usize {
        match self {
            Acts::B32(v) => v.len(),
            Acts::K(v) => v.len(),
            Acts::F32(v) => v.len(),
        }
    }
}

/// `quantize_row_q8_0` / `quantize_row_q8_1` (AVX2) of one 32-value block.
fn act32(c: &[f32]) -> Act32 {
    let amax = c.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut qs = [0i8; QK];
    let mut sum = 0i32;
    for (q, &v) in qs.iter_mut().zip(c) {
        let r = libm::rintf(v * id) as i32;
        *q = r as i8;
        sum += r;
    }
    Act32 {
        d: f16r(d),
        s: f16r(d * sum as f32),
        qs,
    }
}

/// Quantises the rows of `x` (each `width` long) for weights of type `ty`; `None` for an
/// unsupported type or a width that is not a whole number of blocks.
pub fn quantize(ty: GgmlType, x: &[f32], width: usize) -> Option<Acts> {
    if width == 0 || !width.is_multiple_of(ty.block_size()) {
        return None;
    }
    let rows = x.chunks_exact(width);
    match ty {
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q8_0 => Some(Acts::B32(
            rows.map(|r| r.chunks_exact(QK).map(act32).collect())
                .collect(),
        )),
        GgmlType::Q4_K | GgmlType::Q6_K => {
            let mut out = Vec::new();
            for r in rows {
                let mut v = Vec::with_capacity(width / QK_K);
                quantize_row_q8_k(r, &mut v).ok()?;
                out.push(v);
            }
            Some(Acts::K(out))
        }
        GgmlType::F32 | GgmlType::F16 => Some(Acts::F32(rows.map(<[f32]>::to_vec).collect())),
        _ => None,
    }
}

/// `W[row] · x[t]` for every token `t` of `a` into `out[t]`, as llama.cpp computes it. `repacked`
/// selects the interleaved `q4_K_8x8` kernel llama.cpp uses for Q4_K matrices whose row count is
/// a multiple of 8. Each weight block is decoded once for all tokens.
pub fn dot_rows(ty: GgmlType, w: &[u8], a: &Acts, repacked: bool, out: &mut [f32]) {
    match (ty, a) {
        (GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 | GgmlType::Q4_1, Acts::B32(a)) => {
            dot_b32(ty, w, a, out)
        }
        (GgmlType::Q4_K, Acts::K(a)) if repacked => dot_q4_k_repacked(w, a, out),
        (GgmlType::Q4_K, Acts::K(a)) => dot_q4_k(w, a, out),
        (GgmlType::Q6_K, Acts::K(a)) => dot_q6_k(w, a, out),
        (GgmlType::F32 | GgmlType::F16, Acts::F32(x)) => {
            for (o, xt) in out.iter_mut().zip(x) {
                *o = dot_float(ty, w, xt);
            }
        }
        _ => out.fill(0.0),
    }
}

/// The 32 weights of a Q4_0/Q4_1/Q5_0/Q8_0 block in element order (Q4_1 unsigned), its f16
/// scale and (Q4_1) its f16 min.
fn weights_b32(ty: GgmlType, b: &[u8]) -> (f32, f32, [i32; QK]) {
    let mut x = [0i32; QK];
    let mut m = 0.0;
    match ty {
        GgmlType::Q4_0 | GgmlType::Q4_1 => {
            let (off, bias) = if ty == GgmlType::Q4_1 { (4, 0) } else { (2, 8) };
            for j in 0..16 {
                x[j] = (b[off + j] & 0xf) as i32 - bias;
                x[j + 16] = (b[off + j] >> 4) as i32 - bias;
            }
            if ty == GgmlType::Q4_1 {
                m = f16_at(b, 2);
            }
        }
        GgmlType::Q5_0 => {
            let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
            for j in 0..16 {
                let (h0, h1) = ((qh >> j) & 1, (qh >> (j + 16)) & 1);
                x[j] = ((b[6 + j] & 0xf) as u32 | (h0 << 4)) as i32 - 16;
                x[j + 16] = ((b[6 + j] >> 4) as u32 | (h1 << 4)) as i32 - 16;
            }
        }
        _ => {
            for (j, v) in x.iter_mut().enumerate() {
                *v = b[2 + j] as i8 as i32;
            }
        }
    }
    (f16_at(b, 0), m, x)
}

/// Eight i32 lanes of one 32-value group, lane `l` summing elements `4l..4l+4` (`maddubs`, then
/// `madd` with ones or with the sub-block scales).
#[inline(always)]
fn lanes32(x: &[i32], q: &[i8], s: &mut [i32; 8]) {
    for (l, sl) in s.iter_mut().enumerate() {
        let (xl, ql) = (&x[4 * l..4 * l + 4], &q[4 * l..4 * l + 4]);
        *sl += xl[0] * ql[0] as i32
            + xl[1] * ql[1] as i32
            + xl[2] * ql[2] as i32
            + xl[3] * ql[3] as i32;
    }
}

/// `ggml_vec_dot_q{4_0,5_0,8_0}_q8_0` (tinyBLAS' `tinyBLAS_Q0_AVX` has the same arithmetic) and
/// `ggml_vec_dot_q4_1_q8_1`, which adds `sum(m * s)` from a scalar FMA chain at the end.
fn dot_b32(ty: GgmlType, w: &[u8], a: &[Vec<Act32>], out: &mut [f32]) {
    let mut acc = alloc::vec![[0.0f32; 8]; a.len()];
    let mut summs = alloc::vec![0.0f32; a.len()];
    for (bi, b) in w.chunks_exact(ty.type_size()).enumerate() {
        let (dw, m, x) = weights_b32(ty, b);
        for ((acc, sm), at) in acc.iter_mut().zip(summs.iter_mut()).zip(a) {
            let Some(y) = at.get(bi) else { continue };
            if ty == GgmlType::Q4_1 {
                *sm = m.fma(y.s, *sm);
            }
            let d = dw * y.d;
            let mut s = [0i32; 8];
            lanes32(&x, &y.qs, &mut s);
            for (al, s) in acc.iter_mut().zip(s) {
                *al = d.fma(s as f32, *al);
            }
        }
    }
    for ((o, acc), sm) in out.iter_mut().zip(&acc).zip(&summs) {
        *o = hsum8(acc) + if ty == GgmlType::Q4_1 { *sm } else { 0.0 };
    }
}

/// A Q4_K block: per element `scale * q` (the 6-bit sub-block scale times the 4-bit value), and
/// the 8 sub-block mins.
fn q4_k_block(b: &[u8]) -> ([i32; QK_K], [i32; 8]) {
    let (mut sc, mut mn) = ([0i32; 8], [0i32; 8]);
    for j in 0..8 {
        let (s, m) = q4_k_scale_min(j, &b[4..16]);
        (sc[j], mn[j]) = (s as i32, m as i32);
    }
    let mut w = [0i32; QK_K];
    for g in 0..4 {
        for l in 0..32 {
            let v = b[16 + 32 * g + l];
            w[64 * g + l] = sc[2 * g] * (v & 0xf) as i32;
            w[64 * g + 32 + l] = sc[2 * g + 1] * (v >> 4) as i32;
        }
    }
    (w, mn)
}

/// The sums of the eight 32-value groups of a Q8_K block (`hadd` of the 16-value `bsums`).
fn bsums32(y: &BlockQ8K) -> [i32; 8] {
    core::array::from_fn(|j| y.bsums[2 * j] as i32 + y.bsums[2 * j + 1] as i32)
}

/// Eight lanes over a 256-value block, lane `l` summing the elements with `e mod 32` in `4l..4l+4`.
#[inline(always)]
fn lanes256(w: &[i32; QK_K], q: &[i8; QK_K]) -> [i32; 8] {
    let mut s = [0i32; 8];
    for g in 0..8 {
        lanes32(&w[32 * g..32 * g + 32], &q[32 * g..32 * g + 32], &mut s);
    }
    s
}

/// `ggml_vec_dot_q4_K_q8_K` (AVX2): 8 lanes over `e mod 32`, one FMA per block; the mins in a
/// 4-lane accumulator (`m[2i]*s[2i] + m[2i+1]*s[2i+1]`), reduced and added at the end.
fn dot_q4_k(w: &[u8], a: &[Vec<BlockQ8K>], out: &mut [f32]) {
    let mut acc = alloc::vec![[0.0f32; 8]; a.len()];
    let mut acc_m = alloc::vec![[0.0f32; 4]; a.len()];
    for (bi, b) in w.chunks_exact(144).enumerate() {
        let (wq, mn) = q4_k_block(b);
        let (dw, dminw) = (f16_at(b, 0), f16_at(b, 2));
        for ((acc, am), at) in acc.iter_mut().zip(acc_m.iter_mut()).zip(a) {
            let Some(y) = at.get(bi) else { continue };
            let (d, dmin) = (y.d * dw, -y.d * dminw);
            let s32 = bsums32(y);
            for (i, am) in am.iter_mut().enumerate() {
                let prod = mn[2 * i] * s32[2 * i] + mn[2 * i + 1] * s32[2 * i + 1];
                *am = dmin.fma(prod as f32, *am);
            }
            for (al, s) in acc.iter_mut().zip(lanes256(&wq, &y.qs)) {
                *al = d.fma(s as f32, *al);
            }
        }
    }
    for ((o, acc), am) in out.iter_mut().zip(&acc).zip(&acc_m) {
        *o = hsum8(acc) + ((am[0] + am[2]) + (am[1] + am[3]));
    }
}

/// `ggml_gemv/gemm_q4_K_8x8_q8_K` (AVX2), per output: the whole block's integer dot and its mins
/// term, each in its own FMA chain with `d * a.d` and `dmin * a.d`; the difference at the end.
fn dot_q4_k_repacked(w: &[u8], a: &[Vec<BlockQ8K>], out: &mut [f32]) {
    let mut acc = alloc::vec![(0.0f32, 0.0f32); a.len()];
    for (bi, b) in w.chunks_exact(144).enumerate() {
        let (wq, mn) = q4_k_block(b);
        let (dw, dminw) = (f16_at(b, 0), f16_at(b, 2));
        for ((acc, acc_min), at) in acc.iter_mut().zip(a) {
            let Some(y) = at.get(bi) else { continue };
            let s32 = bsums32(y);
            let isum: i32 = lanes256(&wq, &y.qs).iter().sum();
            let imin: i32 = (0..8).map(|j| mn[j] * s32[j]).sum();
            *acc = (isum as f32).fma(dw * y.d, *acc);
            *acc_min = (imin as f32).fma(dminw * y.d, *acc_min);
        }
    }
    for (o, (acc, acc_min)) in out.iter_mut().zip(&acc) {
        *o = acc - acc_min;
    }
}

/// `ggml_vec_dot_q6_K_q8_K` (AVX2): 8 lanes over `e mod 32`, one FMA per block.
fn dot_q6_k(w: &[u8], a: &[Vec<BlockQ8K>], out: &mut [f32]) {
    let mut acc = alloc::vec![[0.0f32; 8]; a.len()];
    let mut v = [0i8; QK_K];
    let mut wq = [0i32; QK_K];
    for (bi, b) in w.chunks_exact(210).enumerate() {
        q6_k_values(b, &mut v);
        for (e, (wv, &ve)) in wq.iter_mut().zip(&v).enumerate() {
            *wv = b[192 + e / 16] as i8 as i32 * ve as i32;
        }
        let dw = f16_at(b, 208);
        for (acc, at) in acc.iter_mut().zip(a) {
            let Some(y) = at.get(bi) else { continue };
            let d = y.d * dw;
            for (al, s) in acc.iter_mut().zip(lanes256(&wq, &y.qs)) {
                *al = d.fma(s as f32, *al);
            }
        }
    }
    for (o, acc) in out.iter_mut().zip(&acc) {
        *o = hsum8(acc);
    }
}

/// F32/F16 weights: an 8-lane FMA dot with `hsum8` (not checked against llama.cpp: none of the
/// supported models has float matrices).
fn dot_float(ty: GgmlType, w: &[u8], x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let width = if ty == GgmlType::F32 { 4 } else { 2 };
    for (i, (c, &xv)) in w.chunks_exact(width).zip(x).enumerate() {
        let wv = if width == 4 {
            f32::from_le_bytes([c[0], c[1], c[2], c[3]])
        } else {
            f16_at(c, 0)
        };
        acc[i % 8] = wv.fma(xv, acc[i % 8]);
    }
    hsum8(&acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Q8_0 row of `d = 1` and values `v` against activations quantised from `x`.
    #[test]
    fn q8_0_dot_is_exact_for_small_integers() {
        let mut row = alloc::vec![0u8; 34];
        row[..2].copy_from_slice(&half::f16::from_f32(1.0).to_bits().to_le_bytes());
        for j in 0..32 {
            row[2 + j] = (j as i8 - 16) as u8;
        }
        let x: Vec<f32> = (0..32).map(|j| if j == 0 { 127.0 } else { 1.0 }).collect();
        let a = quantize(GgmlType::Q8_0, &x, 32).unwrap();
        let want: f32 = (0..32).map(|j| (j as f32 - 16.0) * x[j]).sum();
        let mut out = [0.0f32];
        dot_rows(GgmlType::Q8_0, &row, &a, false, &mut out);
        assert_eq!(out[0], want);
    }

    #[test]
    fn activation_rounding_is_half_to_even() {
        // 127/amax = 1: 2.5 rounds to 2, -3.5 to -4 (round-half-away would give 3).
        let mut x = [0.0f32; 32];
        (x[0], x[1], x[2]) = (127.0, 2.5, -3.5);
        let a = act32(&x);
        assert_eq!((a.qs[1], a.qs[2]), (2, -4));
    }

    #[test]
    fn unsupported_types_are_refused() {
        assert!(quantize(GgmlType::Q8_0, &[1.0; 31], 31).is_none());
        assert!(quantize(GgmlType::Q8_K, &[1.0; 256], 256).is_none());
    }
}
