//! Weight rows to f32.

use super::{f16_at, QuantError, QK, QK_K};
use crate::gguf::GgmlType;

/// Dequantises one row of `out.len()` elements stored as `ty` in `bytes`.
pub fn dequantize_row(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
    let n = out.len();
    if !ty.is_supported_for_compute() {
        return Err(QuantError::UnsupportedType(ty));
    }
    if !n.is_multiple_of(ty.block_size()) {
        return Err(QuantError::NotBlockMultiple { ty, n });
    }
    let expected = n / ty.block_size() * ty.type_size();
    if bytes.len() != expected {
        return Err(QuantError::BadLength {
            ty,
            expected,
            got: bytes.len(),
        });
    }
    let bs = ty.type_size();
    match ty {
        GgmlType::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        GgmlType::F16 => {
            for (i, o) in out.iter_mut().enumerate() {
                *o = f16_at(bytes, 2 * i);
            }
        }
        GgmlType::Q4_0 => {
            for (b, o) in bytes.chunks_exact(bs).zip(out.chunks_exact_mut(QK)) {
                let d = f16_at(b, 0);
                for j in 0..16 {
                    o[j] = ((b[2 + j] & 0xf) as i32 - 8) as f32 * d;
                    o[j + 16] = ((b[2 + j] >> 4) as i32 - 8) as f32 * d;
                }
            }
        }
        GgmlType::Q4_1 => {
            for (b, o) in bytes.chunks_exact(bs).zip(out.chunks_exact_mut(QK)) {
                let (d, m) = (f16_at(b, 0), f16_at(b, 2));
                for j in 0..16 {
                    o[j] = (b[4 + j] & 0xf) as f32 * d + m;
                    o[j + 16] = (b[4 + j] >> 4) as f32 * d + m;
                }
            }
        }
        GgmlType::Q5_0 => {
            for (b, o) in bytes.chunks_exact(bs).zip(out.chunks_exact_mut(QK)) {
                let d = f16_at(b, 0);
                let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
                for j in 0..16 {
                    let h0 = (((qh >> j) << 4) & 0x10) as u8;
                    let h1 = ((qh >> (j + 12)) & 0x10) as u8;
                    o[j] = (((b[6 + j] & 0xf) | h0) as i32 - 16) as f32 * d;
                    o[j + 16] = (((b[6 + j] >> 4) | h1) as i32 - 16) as f32 * d;
                }
            }
        }
        GgmlType::Q8_0 => {
            for (b, o) in bytes.chunks_exact(bs).zip(out.chunks_exact_mut(QK)) {
                let d = f16_at(b, 0);
                for j in 0..32 {
                    o[j] = b[2 + j] as i8 as f32 * d;
                }
            }
        }
        GgmlType::Q4_K => {
            for (b, o) in bytes.chunks_exact(bs).zip(out.chunks_exact_mut(QK_K)) {
                dequant_q4_k_block(b, o);
            }
        }
        GgmlType::Q6_K => {
            for (b, o) in bytes.chunks_exact(bs).zip(out.chunks_exact_mut(QK_K)) {
                dequant_q6_k_block(b, o);
            }
        }
        _ => return Err(QuantError::UnsupportedType(ty)),
    }
    Ok(())
}

/// The 6-bit (scale, min) pair `j` (0..8) of a Q4_K `scales[12]` field.
#[inline(always)]
pub(crate) fn q4_k_scale_min(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

fn dequant_q4_k_block(b: &[u8], o: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let scales = &b[4..16];
    let qs = &b[16..144];
    for g in 0..4 {
        let (sc1, m1) = q4_k_scale_min(2 * g, scales);
        let (sc2, m2) = q4_k_scale_min(2 * g + 1, scales);
        let (d1, mn1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, mn2) = (d * sc2 as f32, dmin * m2 as f32);
        let q = &qs[32 * g..32 * g + 32];
        for l in 0..32 {
            o[64 * g + l] = d1 * (q[l] & 0xf) as f32 - mn1;
            o[64 * g + 32 + l] = d2 * (q[l] >> 4) as f32 - mn2;
        }
    }
}

/// The 256 signed 6-bit values (-32..31) of a Q6_K block, in element order.
#[inline(always)]
pub(crate) fn q6_k_values(b: &[u8], v: &mut [i8; QK_K]) {
    for n in 0..2 {
        let ql = &b[64 * n..64 * n + 64];
        let qh = &b[128 + 32 * n..128 + 32 * n + 32];
        let o = &mut v[128 * n..128 * n + 128];
        for l in 0..32 {
            o[l] = ((ql[l] & 0xf) | ((qh[l] & 3) << 4)) as i8 - 32;
            o[l + 32] = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
            o[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
            o[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
        }
    }
}

fn dequant_q6_k_block(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 208);
    let mut v = [0i8; QK_K];
    q6_k_values(b, &mut v);
    for (g, chunk) in o.chunks_exact_mut(16).enumerate() {
        let sc = b[192 + g] as i8 as f32;
        for (x, &q) in chunk.iter_mut().zip(&v[16 * g..16 * g + 16]) {
            *x = d * sc * q as f32;
        }
    }
}
