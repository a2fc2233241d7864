//! Bit-for-bit checks of the exact kernels against the scalar code (run where the CPU has AVX2).

use super::*;
use crate::gguf::GgmlType;
use crate::kernels::scalar;
use crate::quant::QuantizedActs;

/// Deterministic pseudo-random bytes (xorshift).
fn bytes(n: usize, seed: u64) -> alloc::vec::Vec<u8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

fn acts(n: usize, seed: u64) -> alloc::vec::Vec<f32> {
    bytes(n, seed)
        .iter()
        .map(|&b| (b as f32 - 127.5) / 37.0)
        .collect()
}

/// Weight rows with finite f16 scales (a small exponent in the high byte).
fn weights(nb: usize, block: usize, scales: usize, seed: u64) -> alloc::vec::Vec<u8> {
    let mut w = bytes(nb * block, seed);
    for b in w.chunks_exact_mut(block) {
        for s in 0..scales {
            b[2 * s + 1] = 0x20 | (b[2 * s + 1] & 0x8f);
        }
    }
    w
}

#[test]
fn asm_kernels_equal_the_scalar_kernels_bit_for_bit() {
    if !available() {
        return;
    }
    for (seed, nb) in [
        (1u64, 1usize),
        (2, 18),
        (3, 48),
        (4, 7),
        (5, 8),
        (7, 17),
        (8, 64),
    ] {
        let x = acts(nb * 32, seed + 100);
        let w = weights(nb, 20, 2, seed);
        let QuantizedActs::Q8_1(a) = QuantizedActs::quantize(GgmlType::Q4_1, &x, nb * 32).unwrap()
        else {
            panic!("Q4_1 pairs with Q8_1")
        };
        // SAFETY: available() returned true.
        let got = unsafe { dot_q4_1_q8_1(&w, &a) };
        assert_eq!(got, scalar::dot_q4_1_q8_1(&w, &a).to_bits());
        let w = weights(nb, 34, 1, seed + 7);
        let QuantizedActs::Q8_0(a) = QuantizedActs::quantize(GgmlType::Q8_0, &x, nb * 32).unwrap()
        else {
            panic!("Q8_0 pairs with Q8_0")
        };
        // SAFETY: as above.
        let got = unsafe { dot_q8_0_q8_0(&w, &a) };
        assert_eq!(got, scalar::dot_q8_0_q8_0(&w, &a).to_bits());
    }
}

#[test]
fn the_f16_table_converts_every_value_exactly() {
    let table = f16_table();
    for i in 0..=u16::MAX {
        // SAFETY: the table has 65536 entries.
        let got = unsafe { *table.add(i as usize) };
        assert_eq!(
            got,
            half::f16::from_bits(i).to_f32().to_bits(),
            "f16 {i:#x}"
        );
    }
}

#[test]
fn asm_f32_lanes_equal_the_portable_dot_and_axpy() {
    if !available() {
        return;
    }
    for n in [0usize, 8, 64, 200] {
        let a = acts(n, 5);
        let b = acts(n, 6);
        let n8 = n / 8 * 8;
        // SAFETY: available() returned true.
        let got = f32::from_bits(unsafe { dot_f32_lanes(&a, &b) });
        assert_eq!(
            got.to_bits(),
            crate::model::ops::dot(&a[..n8], &b[..n8]).to_bits()
        );
        let mut y = acts(n, 7);
        let mut want = y.clone();
        crate::model::ops::axpy(&mut want, 0.37, &a);
        // SAFETY: as above.
        unsafe { axpy_f32_lanes(&mut y, 0.37f32.to_bits(), &a) };
        assert_eq!(y[..n8], want[..n8]);
    }
}
