//! K-quant (Q4_K, Q6_K) weights regrouped once, at load, into the form the AVX2 prefill tile
//! (`avx2_k8`) decodes each superblock of 8 rows into, minus its bytewise steps.
//!
//! Without it, the tile transposes the 8 rows' bytes and unpacks their six-bit scales and f16
//! factors for every superblock of every matmul; with 40 tokens (a verdict) that decode was about
//! a quarter of the tile's time. A packed record holds, per superblock of a group of 8 rows:
//! - the quant bytes dword-transposed: vector `v` (32 bytes) holds, for each row r, the 4 bytes
//!   the tile's `transpose8` would put in lane r (the nibble / high-bit unpacking is bytewise and
//!   stays in the tile, so a record is as small as the rows it replaces);
//! - the scale bytes byte-transposed (u64 `s`: byte r = row r's scale s; Q4_K also the mins);
//! - the superblock factors as f32 (exact: every f16 is an f32).
//!
//! The tile reads the same values either way, so its results are bit-identical with and without
//! packing (`tests/packed_weights.rs` checks it). With a packed copy a single token (decode) takes
//! the tile too: each row group's records are one contiguous stream. The packed copy is extra memory (about the size of
//! the weights) and is opt-in: `Model::pack_k_quant_weights`.

use crate::gguf::{GgmlType, TensorInfo};
use crate::quant::dequant_internals::q4_k_scale_min;
use crate::quant::f16_at;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

/// Rows per group (the tile's lanes).
pub const GROUP_ROWS: usize = 8;

const Q4_K_BYTES: usize = 144;
const Q6_K_BYTES: usize = 210;
/// Q4_K record: 32 quant vectors, 8 scale u64, 8 min u64, 8 d, 8 dmin.
pub const Q4_K_RECORD: usize = 32 * 32 + 64 + 64 + 32 + 32;
/// Q6_K record: 48 quant vectors, 16 scale u64, 8 d.
pub const Q6_K_RECORD: usize = 48 * 32 + 128 + 32;
/// Offsets inside a record.
pub const Q4_K_SCALES: usize = 1024;
pub const Q4_K_MINS: usize = 1088;
pub const Q4_K_D: usize = 1152;
pub const Q4_K_DMIN: usize = 1184;
pub const Q6_K_SCALES: usize = 1536;
pub const Q6_K_D: usize = 1664;

/// A K-quant weight regrouped into 8-row records: group g's superblock i at
/// `(g * superblocks + i) * record` bytes.
pub struct K8Packed {
    ty: GgmlType,
    n_rows: usize,
    superblocks: usize,
    data: Vec<u8>,
}

impl fmt::Debug for K8Packed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "K8Packed({}, {} rows, {} superblocks, {} bytes)",
            self.ty.name(),
            self.n_rows,
            self.superblocks,
            self.data.len()
        )
    }
}

impl K8Packed {
    /// The packed copy of `w`, or None when the tile cannot take it whole (another type, or a
    /// row count that is not a multiple of 8; such weights keep the row-by-row decode).
    pub fn new(w: &TensorInfo<'_>) -> Option<K8Packed> {
        let (row_len, n_rows) = (w.row_len(), w.n_rows());
        let (bytes, record) = record_size(w.ty)?;
        if n_rows == 0 || !n_rows.is_multiple_of(GROUP_ROWS) || !row_len.is_multiple_of(256) {
            return None;
        }
        let superblocks = row_len / 256;
        let row_bytes = w.row_bytes();
        if row_bytes != superblocks * bytes || w.data.len() < n_rows * row_bytes {
            return None;
        }
        let mut data = vec![0u8; n_rows / GROUP_ROWS * superblocks * record];
        for (g, group) in data.chunks_exact_mut(superblocks * record).enumerate() {
            for (i, rec) in group.chunks_exact_mut(record).enumerate() {
                let blocks: [&[u8]; GROUP_ROWS] = core::array::from_fn(|r| {
                    let row = &w.data[(GROUP_ROWS * g + r) * row_bytes..][..row_bytes];
                    &row[i * bytes..][..bytes]
                });
                match w.ty {
                    GgmlType::Q6_K => pack_q6_k(blocks, rec),
                    _ => pack_q4_k(blocks, rec),
                }
            }
        }
        Some(K8Packed {
            ty: w.ty,
            n_rows,
            superblocks,
            data,
        })
    }

    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Values per row.
    pub fn row_len(&self) -> usize {
        self.superblocks * 256
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// Whether this is the packed copy of a weight of `w`'s type and shape.
    pub fn fits(&self, w: &TensorInfo<'_>) -> bool {
        self.ty == w.ty && self.n_rows == w.n_rows() && self.row_len() == w.row_len()
    }

    /// The records of row group `g` (rows `8g..8g + 8`), superblock after superblock.
    pub fn group(&self, g: usize) -> &[u8] {
        let len = self.data.len() / (self.n_rows / GROUP_ROWS);
        &self.data[g * len..(g + 1) * len]
    }
}

/// (bytes of one row's superblock, bytes of a record) of a packable type.
pub fn record_size(ty: GgmlType) -> Option<(usize, usize)> {
    match ty {
        GgmlType::Q4_K => Some((Q4_K_BYTES, Q4_K_RECORD)),
        GgmlType::Q6_K => Some((Q6_K_BYTES, Q6_K_RECORD)),
        _ => None,
    }
}

/// Vectors `first..first + 8` of `rec` from the 32 bytes at `off` of each row's block: vector
/// `first + k`, lane r = row r's bytes `off + 4k..off + 4k + 4`.
fn transpose_dwords(blocks: &[&[u8]; GROUP_ROWS], off: usize, rec: &mut [u8], first: usize) {
    for k in 0..8 {
        for (r, b) in blocks.iter().enumerate() {
            let at = 32 * (first + k) + 4 * r;
            rec[at..at + 4].copy_from_slice(&b[off + 4 * k..off + 4 * k + 4]);
        }
    }
}

/// u64 `s` at `at + 8s`: byte r = byte s of `cols[r]`.
fn transpose_bytes(cols: [[u8; 8]; GROUP_ROWS], rec: &mut [u8], at: usize) {
    for s in 0..8 {
        for (r, c) in cols.iter().enumerate() {
            rec[at + 8 * s + r] = c[s];
        }
    }
}

/// The 8 six-bit scales and 8 six-bit mins of a Q4_K superblock (ggml's `get_scale_min_k4`).
fn q4_k_scales_mins(b: &[u8]) -> ([u8; 8], [u8; 8]) {
    let pairs: [(u8, u8); 8] = core::array::from_fn(|j| q4_k_scale_min(j, &b[4..16]));
    (pairs.map(|p| p.0), pairs.map(|p| p.1))
}

fn put_f32s(rec: &mut [u8], at: usize, v: impl Iterator<Item = f32>) {
    for (r, x) in v.enumerate() {
        rec[at + 4 * r..at + 4 * r + 4].copy_from_slice(&x.to_le_bytes());
    }
}

fn pack_q4_k(blocks: [&[u8]; GROUP_ROWS], rec: &mut [u8]) {
    for g in 0..4 {
        transpose_dwords(&blocks, 16 + 32 * g, rec, 8 * g);
    }
    let sm: [([u8; 8], [u8; 8]); GROUP_ROWS] =
        core::array::from_fn(|r| q4_k_scales_mins(blocks[r]));
    transpose_bytes(core::array::from_fn(|r| sm[r].0), rec, Q4_K_SCALES);
    transpose_bytes(core::array::from_fn(|r| sm[r].1), rec, Q4_K_MINS);
    put_f32s(rec, Q4_K_D, blocks.iter().map(|b| f16_at(b, 0)));
    put_f32s(rec, Q4_K_DMIN, blocks.iter().map(|b| f16_at(b, 2)));
}

fn pack_q6_k(blocks: [&[u8]; GROUP_ROWS], rec: &mut [u8]) {
    for n in 0..2 {
        for (p, off) in [64 * n, 64 * n + 32, 128 + 32 * n].into_iter().enumerate() {
            transpose_dwords(&blocks, off, rec, 8 * (3 * n + p));
        }
    }
    for (half, at) in [(192, Q6_K_SCALES), (200, Q6_K_SCALES + 64)] {
        let cols = core::array::from_fn(|r| core::array::from_fn(|s| blocks[r][half + s]));
        transpose_bytes(cols, rec, at);
    }
    put_f32s(rec, Q6_K_D, blocks.iter().map(|b| f16_at(b, 208)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_k_scales_and_mins_unpack_as_ggml_does() {
        // Bytes 4..16: scales/mins 0-3 in the low six bits of 4..8 / 8..12, their top two bits
        // feed scales/mins 4-7 with the nibbles of 12..16.
        let mut b = [0u8; Q4_K_BYTES];
        b[4..16].copy_from_slice(&[
            0xc1, 0x42, 0x03, 0x84, 0x45, 0x06, 0xc7, 0x08, 0x9a, 0xbc, 0xde, 0xf0,
        ]);
        let (sc, m) = q4_k_scales_mins(&b);
        assert_eq!(sc[..4], [0x01, 0x02, 0x03, 0x04]);
        assert_eq!(m[..4], [0x05, 0x06, 0x07, 0x08]);
        assert_eq!(sc[4], 0x0a | (3 << 4));
        assert_eq!(m[4], 0x09 | (1 << 4));
        assert_eq!(sc[6], 0x0e);
        assert_eq!(m[6], 0x0d | (3 << 4));
        assert_eq!(sc[7], 2 << 4);
        assert_eq!(m[7], 0x0f);
    }
}
