//! ggml block formats: weight dequantisation and llama.cpp-style 8-bit activation quantisation.
//!
//! Weight blocks are read straight from the GGUF bytes (little-endian, ggml layout):
//! Q4_0 `d:f16, qs[16]`; Q4_1 `d:f16, m:f16, qs[16]`; Q5_0 `d:f16, qh[4], qs[16]`;
//! Q8_0 `d:f16, qs[32] i8`; Q4_K `d:f16, dmin:f16, scales[12], qs[128]` (256 per superblock);
//! Q6_K `ql[128], qh[64], scales[16] i8, d:f16`.

mod act;
mod dequant;

/// Block decoding helpers shared with the dot-product kernels.
pub(crate) mod dequant_internals {
    pub(crate) use super::dequant::{q4_k_scale_min, q6_k_values};
}

pub use act::{
    quantize_block_q8_k, quantize_row_q8_0, quantize_row_q8_1, quantize_row_q8_k, BlockQ8K,
    BlockQ8_0, BlockQ8_1, QuantizedActs,
};
pub use dequant::dequantize_row;

use crate::gguf::GgmlType;
use core::fmt;

/// Elements per block of the 32-element formats.
pub const QK: usize = 32;
/// Elements per K-quant superblock.
pub const QK_K: usize = 256;

/// Why a quantisation routine refused its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantError {
    /// The kernels do not compute with this type.
    UnsupportedType(GgmlType),
    /// A length is not what the type and row length require.
    BadLength {
        ty: GgmlType,
        expected: usize,
        got: usize,
    },
    /// The row length is not a multiple of the type's block size.
    NotBlockMultiple { ty: GgmlType, n: usize },
}

impl fmt::Display for QuantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuantError::UnsupportedType(t) => {
                write!(f, "tensor type {t} is not supported for compute")
            }
            QuantError::BadLength { ty, expected, got } => {
                write!(f, "{ty}: expected {expected} bytes/elements, got {got}")
            }
            QuantError::NotBlockMultiple { ty, n } => {
                write!(
                    f,
                    "{ty}: row length {n} is not a multiple of the block size {}",
                    ty.block_size()
                )
            }
        }
    }
}

/// The activation format llama.cpp pairs with a weight type for its quantized dot product,
/// or None for F32/F16 weights (computed in f32).
pub fn activation_type(weight: GgmlType) -> Option<GgmlType> {
    match weight {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => Some(GgmlType::Q8_0),
        GgmlType::Q4_1 => Some(GgmlType::Q8_1),
        GgmlType::Q4_K | GgmlType::Q6_K => Some(GgmlType::Q8_K),
        _ => None,
    }
}

/// f16 bits (little-endian at `b[0..2]`) to f32.
#[inline(always)]
pub fn f16_at(b: &[u8], off: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[off], b[off + 1]])).to_f32()
}

/// Round half away from zero (C `roundf`) for values well inside the i32 range.
#[inline(always)]
pub fn round_away(v: f32) -> i32 {
    if v >= 0.0 {
        (v + 0.5) as i32
    } else {
        (v - 0.5) as i32
    }
}

/// Round half to even (ggml's `nearest_int`) for |v| < 2^22.
#[inline(always)]
pub(crate) fn nearest_int(v: f32) -> i32 {
    let val = v + 12_582_912.0;
    (val.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}
