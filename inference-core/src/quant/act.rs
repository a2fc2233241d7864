//! 8-bit activation quantisation as llama.cpp does it before quantized dot products.

use super::{nearest_int, round_away, QuantError, QK, QK_K};
use crate::gguf::GgmlType;
use alloc::vec::Vec;
use half::f16;

/// A Q8_0 activation block. `d` holds the f16-rounded scale, as ggml stores it.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C, align(4))]
pub struct BlockQ8_0 {
    pub d: f32,
    pub qs: [i8; QK],
}

/// A Q8_1 activation block: `d` (f16-rounded) and `s = d * sum(qs)` (f16-rounded).
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C, align(4))]
pub struct BlockQ8_1 {
    pub d: f32,
    pub s: f32,
    pub qs: [i8; QK],
}

/// A Q8_K activation block: f32 scale, 256 values and the sums of each 16 values.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C, align(4))]
pub struct BlockQ8K {
    pub d: f32,
    pub qs: [i8; QK_K],
    pub bsums: [i16; 16],
}

impl BlockQ8K {
    /// The block of 256 zeros.
    pub const ZERO: BlockQ8K = BlockQ8K {
        d: 0.0,
        qs: [0; QK_K],
        bsums: [0; 16],
    };

    /// Sets `bsums` to the sums of each 16 values of `qs`.
    pub fn fill_bsums(&mut self) {
        for (s, g) in self.bsums.iter_mut().zip(self.qs.chunks_exact(16)) {
            *s = g.iter().map(|&q| q as i16).sum();
        }
    }
}

fn check(ty: GgmlType, x: &[f32], bs: usize) -> Result<(), QuantError> {
    if !x.len().is_multiple_of(bs) {
        return Err(QuantError::NotBlockMultiple { ty, n: x.len() });
    }
    Ok(())
}

fn f16_round(v: f32) -> f32 {
    f16::from_f32(v).to_f32()
}

/// Quantises `x` (a multiple of 32 long) to Q8_0 blocks, appending to `out`.
pub fn quantize_row_q8_0(x: &[f32], out: &mut Vec<BlockQ8_0>) -> Result<(), QuantError> {
    check(GgmlType::Q8_0, x, QK)?;
    for c in x.chunks_exact(QK) {
        let amax = c.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut qs = [0i8; QK];
        for (q, &v) in qs.iter_mut().zip(c) {
            *q = round_away(v * id) as i8;
        }
        out.push(BlockQ8_0 {
            d: f16_round(d),
            qs,
        });
    }
    Ok(())
}

/// Quantises `x` (a multiple of 32 long) to Q8_1 blocks, appending to `out`.
pub fn quantize_row_q8_1(x: &[f32], out: &mut Vec<BlockQ8_1>) -> Result<(), QuantError> {
    check(GgmlType::Q8_1, x, QK)?;
    for c in x.chunks_exact(QK) {
        let amax = c.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut qs = [0i8; QK];
        let mut sum = 0i32;
        for (q, &v) in qs.iter_mut().zip(c) {
            let r = round_away(v * id);
            *q = r as i8;
            sum += r;
        }
        out.push(BlockQ8_1 {
            d: f16_round(d),
            s: f16_round(sum as f32 * d),
            qs,
        });
    }
    Ok(())
}

/// Quantises `x` (a multiple of 256 long) to Q8_K blocks, appending to `out`.
pub fn quantize_row_q8_k(x: &[f32], out: &mut Vec<BlockQ8K>) -> Result<(), QuantError> {
    check(GgmlType::Q8_K, x, QK_K)?;
    out.extend(x.chunks_exact(QK_K).map(quantize_block_q8_k));
    Ok(())
}

/// The Q8_K block of 256 values (`c` shorter than 256 reads as zero-padded; callers pass 256).
pub fn quantize_block_q8_k(c: &[f32]) -> BlockQ8K {
    // The largest magnitude, and the first value that has it (branch-free, so it vectorises).
    let amax = c.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
    let max = c.iter().copied().find(|v| v.abs() == amax).unwrap_or(0.0);
    let mut b = BlockQ8K::ZERO;
    if amax != 0.0 {
        let iscale = -127.0 / max;
        for (q, &v) in b.qs.iter_mut().zip(c) {
            *q = nearest_int(iscale * v).min(127) as i8;
        }
        b.fill_bsums();
        b.d = 1.0 / iscale;
    }
    b
}

/// Activations of several tokens quantised to the companion format of a weight type.
#[derive(Clone, Debug)]
pub enum QuantizedActs {
    /// F32/F16 weights: the activations stay f32.
    F32(Vec<f32>),
    Q8_0(Vec<BlockQ8_0>),
    Q8_1(Vec<BlockQ8_1>),
    Q8K(Vec<BlockQ8K>),
}

impl QuantizedActs {
    /// Quantises `n_tokens` rows of `row_len` activations for a weight of type `weight`.
    pub fn quantize(
        weight: GgmlType,
        x: &[f32],
        row_len: usize,
    ) -> Result<QuantizedActs, QuantError> {
        if !weight.is_supported_for_compute() {
            return Err(QuantError::UnsupportedType(weight));
        }
        if row_len == 0
            || !x.len().is_multiple_of(row_len)
            || !row_len.is_multiple_of(weight.block_size())
        {
            return Err(QuantError::BadLength {
                ty: weight,
                expected: row_len,
                got: x.len(),
            });
        }
        Ok(match super::activation_type(weight) {
            None => QuantizedActs::F32(x.to_vec()),
            Some(GgmlType::Q8_0) => {
                let mut v = Vec::with_capacity(x.len() / QK);
                quantize_row_q8_0(x, &mut v)?;
                QuantizedActs::Q8_0(v)
            }
            Some(GgmlType::Q8_1) => {
                let mut v = Vec::with_capacity(x.len() / QK);
                quantize_row_q8_1(x, &mut v)?;
                QuantizedActs::Q8_1(v)
            }
            Some(_) => {
                let mut v = Vec::with_capacity(x.len() / QK_K);
                quantize_row_q8_k(x, &mut v)?;
                QuantizedActs::Q8K(v)
            }
        })
    }
}
