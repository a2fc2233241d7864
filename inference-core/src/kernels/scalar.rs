//! Scalar reference dot products (weight row bytes x quantised activation row), as ggml defines them.

use crate::quant::dequant_internals::{q4_k_scale_min, q6_k_values};
use crate::quant::{f16_at, BlockQ8K, BlockQ8_0, BlockQ8_1, QK_K};

pub fn dot_q4_0_q8_0(w: &[u8], a: &[BlockQ8_0]) -> f32 {
    let mut sum = 0.0f32;
    for (b, y) in w.chunks_exact(18).zip(a) {
        let mut sumi = 0i32;
        for j in 0..16 {
            let q = b[2 + j];
            sumi += ((q & 0xf) as i32 - 8) * y.qs[j] as i32
                + ((q >> 4) as i32 - 8) * y.qs[j + 16] as i32;
        }
        sum += sumi as f32 * (f16_at(b, 0) * y.d);
    }
    sum
}

pub fn dot_q4_1_q8_1(w: &[u8], a: &[BlockQ8_1]) -> f32 {
    let mut sum = 0.0f32;
    for (b, y) in w.chunks_exact(20).zip(a) {
        let mut sumi = 0i32;
        for j in 0..16 {
            let q = b[4 + j];
            sumi += (q & 0xf) as i32 * y.qs[j] as i32 + (q >> 4) as i32 * y.qs[j + 16] as i32;
        }
        sum += sumi as f32 * (f16_at(b, 0) * y.d) + f16_at(b, 2) * y.s;
    }
    sum
}

pub fn dot_q5_0_q8_0(w: &[u8], a: &[BlockQ8_0]) -> f32 {
    let mut sum = 0.0f32;
    for (b, y) in w.chunks_exact(22).zip(a) {
        let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        let mut sumi = 0i32;
        for j in 0..16 {
            let h0 = (((qh >> j) << 4) & 0x10) as u8;
            let h1 = ((qh >> (j + 12)) & 0x10) as u8;
            let x0 = ((b[6 + j] & 0xf) | h0) as i32 - 16;
            let x1 = ((b[6 + j] >> 4) | h1) as i32 - 16;
            sumi += x0 * y.qs[j] as i32 + x1 * y.qs[j + 16] as i32;
        }
        sum += sumi as f32 * (f16_at(b, 0) * y.d);
    }
    sum
}

pub fn dot_q8_0_q8_0(w: &[u8], a: &[BlockQ8_0]) -> f32 {
    let mut sum = 0.0f32;
    for (b, y) in w.chunks_exact(34).zip(a) {
        let sumi: i32 = b[2..34]
            .iter()
            .zip(&y.qs)
            .map(|(&q, &v)| q as i8 as i32 * v as i32)
            .sum();
        sum += sumi as f32 * (f16_at(b, 0) * y.d);
    }
    sum
}

pub fn dot_q4_k_q8_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (b, y) in w.chunks_exact(144).zip(a) {
        let (d, dmin) = (f16_at(b, 0) * y.d, f16_at(b, 2) * y.d);
        let scales = &b[4..16];
        let qs = &b[16..144];
        let (mut sumi, mut summ) = (0i32, 0i32);
        for j in 0..8 {
            let (sc, m) = q4_k_scale_min(j, scales);
            let q = &qs[32 * (j / 2)..32 * (j / 2) + 32];
            let shift = 4 * (j % 2);
            let s: i32 = (0..32)
                .map(|l| ((q[l] >> shift) & 0xf) as i32 * y.qs[32 * j + l] as i32)
                .sum();
            sumi += sc as i32 * s;
            summ += m as i32 * (y.bsums[2 * j] as i32 + y.bsums[2 * j + 1] as i32);
        }
        sum += d * sumi as f32 - dmin * summ as f32;
    }
    sum
}

pub fn dot_q6_k_q8_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    let mut v = [0i8; QK_K];
    for (b, y) in w.chunks_exact(210).zip(a) {
        q6_k_values(b, &mut v);
        let mut sumi = 0i32;
        for g in 0..16 {
            let s: i32 = (16 * g..16 * g + 16)
                .map(|l| v[l] as i32 * y.qs[l] as i32)
                .sum();
            sumi += b[192 + g] as i8 as i32 * s;
        }
        sum += f16_at(b, 208) * y.d * sumi as f32;
    }
    sum
}

pub fn dot_f32_f32(w: &[u8], x: &[f32]) -> f32 {
    w.chunks_exact(4)
        .zip(x)
        .map(|(c, &v)| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) * v)
        .sum()
}

pub fn dot_f16_f32(w: &[u8], x: &[f32]) -> f32 {
    (0..x.len().min(w.len() / 2))
        .map(|i| f16_at(w, 2 * i) * x[i])
        .sum()
}
