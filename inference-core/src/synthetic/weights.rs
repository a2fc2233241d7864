//! Weight quantisers (simple reference encoders producing valid ggml blocks) and a seeded PRNG.

use crate::gguf::GgmlType;
use crate::quant::{round_away, QuantError, QK, QK_K};
use alloc::vec::Vec;
use half::f16;

/// splitmix64: small, deterministic, good enough for synthetic weights.
#[derive(Clone, Debug)]
pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Prng {
        Prng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

fn h(v: f32) -> [u8; 2] {
    f16::from_f32(v).to_bits().to_le_bytes()
}

fn inv(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

/// The value with the largest magnitude (keeping its sign).
fn signed_max(x: &[f32]) -> f32 {
    x.iter()
        .fold(0.0f32, |m, &v| if v.abs() > m.abs() { v } else { m })
}

/// Encodes one row `x` as `ty` blocks, appending to `out`.
pub fn quantize_row(ty: GgmlType, x: &[f32], out: &mut Vec<u8>) -> Result<(), QuantError> {
    if !ty.is_supported_for_compute() {
        return Err(QuantError::UnsupportedType(ty));
    }
    if !x.len().is_multiple_of(ty.block_size()) {
        return Err(QuantError::NotBlockMultiple { ty, n: x.len() });
    }
    match ty {
        GgmlType::F32 => x
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        GgmlType::F16 => x.iter().for_each(|&v| out.extend_from_slice(&h(v))),
        GgmlType::Q4_0 => x.chunks_exact(QK).for_each(|c| {
            let d = signed_max(c) / -8.0;
            let id = inv(d);
            out.extend_from_slice(&h(d));
            let q = |v: f32| ((v * id + 8.5) as i32).clamp(0, 15) as u8;
            (0..16).for_each(|j| out.push(q(c[j]) | (q(c[j + 16]) << 4)));
        }),
        GgmlType::Q4_1 => x.chunks_exact(QK).for_each(|c| {
            let min = c.iter().fold(f32::INFINITY, |a, &v| a.min(v));
            let max = c.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
            let d = (max - min) / 15.0;
            let id = inv(d);
            out.extend_from_slice(&h(d));
            out.extend_from_slice(&h(min));
            let q = |v: f32| (((v - min) * id + 0.5) as i32).clamp(0, 15) as u8;
            (0..16).for_each(|j| out.push(q(c[j]) | (q(c[j + 16]) << 4)));
        }),
        GgmlType::Q5_0 => x.chunks_exact(QK).for_each(|c| {
            let d = signed_max(c) / -16.0;
            let id = inv(d);
            let q = |v: f32| ((v * id + 16.5) as i32).clamp(0, 31) as u32;
            let mut qh = 0u32;
            let mut qs = [0u8; 16];
            for j in 0..16 {
                let (a, b) = (q(c[j]), q(c[j + 16]));
                qs[j] = (a & 0xf) as u8 | (((b & 0xf) as u8) << 4);
                qh |= ((a >> 4) & 1) << j;
                qh |= ((b >> 4) & 1) << (j + 16);
            }
            out.extend_from_slice(&h(d));
            out.extend_from_slice(&qh.to_le_bytes());
            out.extend_from_slice(&qs);
        }),
        GgmlType::Q8_0 => x.chunks_exact(QK).for_each(|c| {
            let d = c.iter().fold(0.0f32, |a, &v| a.max(v.abs())) / 127.0;
            let id = inv(d);
            out.extend_from_slice(&h(d));
            c.iter()
                .for_each(|&v| out.push(round_away(v * id).clamp(-127, 127) as i8 as u8));
        }),
        GgmlType::Q4_K => x
            .chunks_exact(QK_K)
            .for_each(|c| quantize_q4_k_block(c, out)),
        GgmlType::Q6_K => x
            .chunks_exact(QK_K)
            .for_each(|c| quantize_q6_k_block(c, out)),
        _ => return Err(QuantError::UnsupportedType(ty)),
    }
    Ok(())
}

fn quantize_q4_k_block(c: &[f32], out: &mut Vec<u8>) {
    // Per 32-element sub-block: x ~ scale * q - min, q in 0..15, min >= 0.
    let mut scale = [0f32; 8];
    let mut min = [0f32; 8];
    for (j, s) in c.chunks_exact(32).enumerate() {
        let lo = s.iter().fold(0.0f32, |a, &v| a.min(v));
        let hi = s.iter().fold(0.0f32, |a, &v| a.max(v));
        scale[j] = (hi - lo) / 15.0;
        min[j] = -lo;
    }
    let d = scale.iter().fold(0.0f32, |a, &v| a.max(v)) / 63.0;
    let dmin = min.iter().fold(0.0f32, |a, &v| a.max(v)) / 63.0;
    // Round d/dmin through f16 first so the 6-bit scales are computed against stored values.
    let (d, dmin) = (f16::from_f32(d).to_f32(), f16::from_f32(dmin).to_f32());
    let mut ls = [0u8; 8];
    let mut lm = [0u8; 8];
    for j in 0..8 {
        ls[j] = round_away(scale[j] * inv(d)).clamp(0, 63) as u8;
        lm[j] = round_away(min[j] * inv(dmin)).clamp(0, 63) as u8;
    }
    let mut sc = [0u8; 12];
    for j in 0..8 {
        if j < 4 {
            sc[j] = ls[j];
            sc[j + 4] = lm[j];
        } else {
            sc[j + 4] = (ls[j] & 0xf) | ((lm[j] & 0xf) << 4);
            sc[j - 4] |= (ls[j] >> 4) << 6;
            sc[j] |= (lm[j] >> 4) << 6;
        }
    }
    out.extend_from_slice(&h(d));
    out.extend_from_slice(&h(dmin));
    out.extend_from_slice(&sc);
    let q = |j: usize, v: f32| {
        let step = d * ls[j] as f32;
        round_away((v + dmin * lm[j] as f32) * inv(step)).clamp(0, 15) as u8
    };
    for g in 0..4 {
        for l in 0..32 {
            out.push(q(2 * g, c[64 * g + l]) | (q(2 * g + 1, c[64 * g + 32 + l]) << 4));
        }
    }
}

fn quantize_q6_k_block(c: &[f32], out: &mut Vec<u8>) {
    let mut gs = [0f32; 16];
    for (g, s) in c.chunks_exact(16).enumerate() {
        gs[g] = s.iter().fold(0.0f32, |a, &v| a.max(v.abs())) / 31.0;
    }
    let d = f16::from_f32(gs.iter().fold(0.0f32, |a, &v| a.max(v)) / 127.0).to_f32();
    let mut sc = [0i8; 16];
    for g in 0..16 {
        sc[g] = round_away(gs[g] * inv(d)).clamp(-128, 127) as i8;
    }
    let mut q = [0u8; QK_K];
    for (i, v) in c.iter().enumerate() {
        let step = d * sc[i / 16] as f32;
        q[i] = (round_away(v * inv(step)).clamp(-32, 31) + 32) as u8;
    }
    let mut ql = [0u8; 128];
    let mut qh = [0u8; 64];
    for n in 0..2 {
        for l in 0..32 {
            let b = 128 * n;
            let (q1, q2, q3, q4) = (q[b + l], q[b + l + 32], q[b + l + 64], q[b + l + 96]);
            ql[64 * n + l] = (q1 & 0xf) | ((q3 & 0xf) << 4);
            ql[64 * n + l + 32] = (q2 & 0xf) | ((q4 & 0xf) << 4);
            qh[32 * n + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
        }
    }
    out.extend_from_slice(&ql);
    out.extend_from_slice(&qh);
    out.extend(sc.iter().map(|&s| s as u8));
    out.extend_from_slice(&h(d));
}
