//! AVX2 prefill tile for the K-quants (Q4_K, Q6_K) x Q8_K: 8 weight rows x up to [`KT_MAX`]
//! tokens, with the rows in the vector lanes.
//!
//! Each weight superblock of the 8 rows is decoded once into an interleaved form: vector `v` holds
//! values `4v..4v + 4` of every row (4 bytes per row), so one broadcast group of 4 activation bytes
//! and one `maddubs` give 8 rows x 4 products. The `maddubs` results of a scale sub-block are
//! summed in i16 (exact: Q4_K's 16 products of at most 15 x 128 per lane reach 30720, Q6_K's 4 of
//! 63 x 128 reach 32256) before the one `madd` with the rows' scales, so 32 values of 8 rows cost 9
//! integer multiplies, where a layout with the values in the lanes needs 16 (a `maddubs` and a
//! `madd` per row). The min/offset term comes from the activation block sums. Per superblock the
//! exact integer sums of each row are folded into f32 by the scalar reference formula
//! (`kernels::scalar`), lane by lane, so a row gives bit-identical results here, in the AVX2 row
//! dot and in the scalar code.

use super::avx2::f16_at;
use super::avx2_ktile::{load32, q4_k_nibbles, q4_k_scales_mins, q6_k_unpack};
use super::k8_packed as packed;
use crate::quant::BlockQ8K;
use core::arch::x86_64::*;

/// Weight rows per tile (one per f32 lane).
pub const K8_ROWS: usize = 8;
/// Most tokens one call handles (bounds its f32 accumulators on the stack).
pub const KT_MAX: usize = 64;
/// Tokens that share each loaded weight vector.
const TOKENS: usize = 4;

/// Where a tile reads the superblocks of its 8 weight rows from.
#[derive(Clone, Copy)]
pub enum K8Rows<'w> {
    /// The rows as stored in the GGUF (decoded superblock by superblock).
    Rows([&'w [u8]; K8_ROWS]),
    /// A row group's records of a [`packed::K8Packed`] (regrouped at load).
    Packed(&'w [u8]),
}

const Q4_K_BYTES: usize = 144;
const Q6_K_BYTES: usize = 210;

/// One superblock of the 8 rows, interleaved. Q4_K: `sc[s]` (s < 8) scales 32-value sub-block s
/// (quads `8s..8s + 8`); Q6_K: `sc[g]` (g < 16) scales 16-value group g (quads `4g..4g + 4`).
/// Scales are i16 with row r's in lanes 2r and 2r + 1. `bias[p]` pairs with the activation block
/// sums `2p, 2p + 1`: Q4_K the row's sub-block min twice, Q6_K -32 x the two group scales.
#[repr(C, align(32))]
struct Interleaved {
    q: [__m256i; 64],
    sc: [__m256i; 16],
    bias: [__m256i; 8],
    d: [f32; K8_ROWS],
    dmin: [f32; K8_ROWS],
}

/// 8 x 8 transpose of 32-bit elements: output k holds element k of every input, input order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn transpose8(r: [__m256i; 8]) -> [__m256i; 8] {
    let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
    let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
    let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
    let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
    let t4 = _mm256_unpacklo_epi32(r[4], r[5]);
    let t5 = _mm256_unpackhi_epi32(r[4], r[5]);
    let t6 = _mm256_unpacklo_epi32(r[6], r[7]);
    let t7 = _mm256_unpackhi_epi32(r[6], r[7]);
    // u0: elements 0 | 4 of rows 0-3, u1: 1 | 5, u2: 2 | 6, u3: 3 | 7; u4..u7 the same, rows 4-7.
    let u0 = _mm256_unpacklo_epi64(t0, t2);
    let u1 = _mm256_unpackhi_epi64(t0, t2);
    let u2 = _mm256_unpacklo_epi64(t1, t3);
    let u3 = _mm256_unpackhi_epi64(t1, t3);
    let u4 = _mm256_unpacklo_epi64(t4, t6);
    let u5 = _mm256_unpackhi_epi64(t4, t6);
    let u6 = _mm256_unpacklo_epi64(t5, t7);
    let u7 = _mm256_unpackhi_epi64(t5, t7);
    [
        _mm256_permute2x128_si256(u0, u4, 0x20),
        _mm256_permute2x128_si256(u1, u5, 0x20),
        _mm256_permute2x128_si256(u2, u6, 0x20),
        _mm256_permute2x128_si256(u3, u7, 0x20),
        _mm256_permute2x128_si256(u0, u4, 0x31),
        _mm256_permute2x128_si256(u1, u5, 0x31),
        _mm256_permute2x128_si256(u2, u6, 0x31),
        _mm256_permute2x128_si256(u3, u7, 0x31),
    ]
}

/// The 32 bytes at `off` of each of the 8 rows' blocks (a loop, not a closure, so that it inlines
/// into the target-feature code).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn load32x8(b: &[&[u8]; K8_ROWS], off: usize) -> [__m256i; K8_ROWS] {
    let mut r = [_mm256_setzero_si256(); K8_ROWS];
    for (v, row) in r.iter_mut().zip(b) {
        *v = load32(row, off);
    }
    r
}

/// Byte transpose of an 8 x 8 matrix held as 8 u64 (row r = `x[r]`, column c = byte c): byte c
/// of output r is byte r of input c.
#[inline(always)]
fn transpose_bytes8(mut x: [u64; 8]) -> [u64; 8] {
    // Swap the off-diagonal 4x4, then 2x2, then 1x1 blocks.
    for (step, mask) in [
        (4, 0x0000_0000_ffff_ffffu64),
        (2, 0x0000_ffff_0000_ffff),
        (1, 0x00ff_00ff_00ff_00ff),
    ] {
        for r in (0..8).filter(|r| r & step == 0) {
            let t = ((x[r] >> (8 * step)) ^ x[r + step]) & mask;
            x[r] ^= t << (8 * step);
            x[r + step] ^= t;
        }
    }
    x
}

/// The 8 bytes of `col` (one per row), zero- or sign-extended, in lanes 2r and 2r + 1 as i16.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn row_pairs(col: u64, signed: bool) -> __m256i {
    let b = _mm_cvtsi64_si128(col as i64);
    let v = if signed {
        _mm256_cvtepi8_epi32(b)
    } else {
        _mm256_cvtepu8_epi32(b)
    };
    let lo = _mm256_and_si256(v, _mm256_set1_epi32(0xffff));
    _mm256_or_si256(lo, _mm256_slli_epi32(v, 16))
}

impl Interleaved {
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn zeroed() -> Interleaved {
        let z = _mm256_setzero_si256();
        Interleaved {
            q: [z; 64],
            sc: [z; 16],
            bias: [z; 8],
            d: [0.0; K8_ROWS],
            dmin: [0.0; K8_ROWS],
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn load_q4_k(&mut self, b: [&[u8]; K8_ROWS]) {
        for g in 0..4 {
            // Dword k of group g holds quad 16g + k (low nibbles) and 16g + 8 + k (high): the
            // nibble masks commute with moving whole dwords, so transpose the packed bytes once.
            let t = transpose8(load32x8(&b, 16 + 32 * g));
            for (k, x) in t.iter().enumerate() {
                (self.q[16 * g + k], self.q[16 * g + 8 + k]) = q4_k_nibbles(*x);
            }
        }
        let (mut scales, mut mins) = ([0u64; K8_ROWS], [0u64; K8_ROWS]);
        for r in 0..K8_ROWS {
            (scales[r], mins[r]) = q4_k_scales_mins(b[r]);
        }
        let (scales, mins) = (transpose_bytes8(scales), transpose_bytes8(mins));
        for s in 0..8 {
            self.sc[s] = row_pairs(scales[s], false);
            self.bias[s] = row_pairs(mins[s], false);
        }
        for (r, row) in b.iter().enumerate() {
            (self.d[r], self.dmin[r]) = (f16_at(row, 0), f16_at(row, 2));
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn load_q6_k(&mut self, b: [&[u8]; K8_ROWS]) {
        for n in 0..2 {
            // The unpacking is bytewise, so it commutes with the dword transposes.
            let ql0 = transpose8(load32x8(&b, 64 * n));
            let ql1 = transpose8(load32x8(&b, 64 * n + 32));
            let qh = transpose8(load32x8(&b, 128 + 32 * n));
            for k in 0..8 {
                // Chunk 4n + j holds values 32(4n + j).., so quad 8(4n + j) + k.
                for (j, v) in q6_k_unpack(ql0[k], ql1[k], qh[k]).iter().enumerate() {
                    self.q[8 * (4 * n + j) + k] = *v;
                }
            }
        }
        let col = |o: usize| -> [u64; 8] {
            core::array::from_fn(|r| {
                let s = &b[r][o..o + 8];
                u64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]])
            })
        };
        let (lo, hi) = (transpose_bytes8(col(192)), transpose_bytes8(col(200)));
        for g in 0..8 {
            self.sc[g] = row_pairs(lo[g], true);
            self.sc[8 + g] = row_pairs(hi[g], true);
        }
        self.q6_k_bias();
        for (d, row) in self.d.iter_mut().zip(b) {
            *d = f16_at(row, 208);
        }
    }

    /// Q6_K's offset pairs from the group scales: lanes 2r, 2r + 1 of `bias[p]` = -32 x row r's
    /// scales of groups 2p and 2p + 1.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn q6_k_bias(&mut self) {
        let zero = _mm256_setzero_si256();
        for p in 0..8 {
            let pair = _mm256_blend_epi16(self.sc[2 * p], self.sc[2 * p + 1], 0b1010_1010);
            self.bias[p] = _mm256_sub_epi16(zero, _mm256_slli_epi16(pair, 5));
        }
    }

    /// [`Interleaved::load_q4_k`] from a packed record (the same values, without the transposes).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn load_q4_k_packed(&mut self, rec: &[u8]) {
        for g in 0..4 {
            for k in 0..8 {
                let x = load32(rec, 32 * (8 * g + k));
                (self.q[16 * g + k], self.q[16 * g + 8 + k]) = q4_k_nibbles(x);
            }
        }
        for s in 0..8 {
            self.sc[s] = row_pairs(u64_at(rec, packed::Q4_K_SCALES + 8 * s), false);
            self.bias[s] = row_pairs(u64_at(rec, packed::Q4_K_MINS + 8 * s), false);
        }
        self.d = f32x8_at(rec, packed::Q4_K_D);
        self.dmin = f32x8_at(rec, packed::Q4_K_DMIN);
    }

    /// [`Interleaved::load_q6_k`] from a packed record.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn load_q6_k_packed(&mut self, rec: &[u8]) {
        for n in 0..2 {
            for k in 0..8 {
                let at = |p: usize| load32(rec, 32 * (8 * (3 * n + p) + k));
                for (j, v) in q6_k_unpack(at(0), at(1), at(2)).iter().enumerate() {
                    self.q[8 * (4 * n + j) + k] = *v;
                }
            }
        }
        for g in 0..16 {
            self.sc[g] = row_pairs(u64_at(rec, packed::Q6_K_SCALES + 8 * g), true);
        }
        self.q6_k_bias();
        self.d = f32x8_at(rec, packed::Q6_K_D);
    }
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let s = &b[off..off + 8];
    u64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]])
}

fn f32x8_at(b: &[u8], off: usize) -> [f32; K8_ROWS] {
    core::array::from_fn(|r| {
        let s = &b[off + 4 * r..off + 4 * r + 4];
        f32::from_le_bytes([s[0], s[1], s[2], s[3]])
    })
}

/// Activation bytes `4v..4v + 4` in every 32-bit lane.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn y_quad(y: &BlockQ8K, v: usize) -> __m256i {
    let s = &y.qs[4 * v..4 * v + 4];
    _mm256_set1_epi32(i32::from_le_bytes([
        s[0] as u8, s[1] as u8, s[2] as u8, s[3] as u8,
    ]))
}

/// Block sums `2p, 2p + 1` in every 32-bit lane (as an i16 pair).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn y_bsum_pair(y: &BlockQ8K, p: usize) -> __m256i {
    let (a, b) = (
        y.bsums[2 * p] as u16 as u32,
        y.bsums[2 * p + 1] as u16 as u32,
    );
    _mm256_set1_epi32((a | b << 16) as i32)
}

/// Exact per-row integer sums of one superblock for `TOKENS` tokens: (weights x activations,
/// bias pairs x block sums).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn superblock_sums<const K6: bool, const T: usize>(
    dec: &Interleaved,
    ys: &[&BlockQ8K; T],
) -> ([__m256i; T], [__m256i; T]) {
    let mut sumi = [_mm256_setzero_si256(); T];
    // Quads summed in i16 before a scale: 8 (one 32-value sub-block) for Q4_K, 2 for Q6_K.
    let (per_scale, span) = if K6 { (2, 4) } else { (8, 8) };
    for s in 0..64 / span {
        for half in 0..span / per_scale {
            let v0 = s * span + half * per_scale;
            let mut a16 = [_mm256_setzero_si256(); T];
            for v in v0..v0 + per_scale {
                let w = dec.q[v];
                for (a, y) in a16.iter_mut().zip(ys) {
                    *a = _mm256_add_epi16(*a, _mm256_maddubs_epi16(w, y_quad(y, v)));
                }
            }
            for (si, a) in sumi.iter_mut().zip(&a16) {
                *si = _mm256_add_epi32(*si, _mm256_madd_epi16(*a, dec.sc[s]));
            }
        }
    }
    let mut bias = [_mm256_setzero_si256(); T];
    for p in 0..8 {
        for (b, y) in bias.iter_mut().zip(ys) {
            *b = _mm256_add_epi32(*b, _mm256_madd_epi16(dec.bias[p], y_bsum_pair(y, p)));
        }
    }
    (sumi, bias)
}

/// `acc += d*yd * sumi - dmin*yd * summ` (Q4_K) or `acc += d*yd * (sumi + offset)` (Q6_K), each
/// lane rounded exactly as the scalar reference.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn fold<const K6: bool>(
    acc: __m256,
    dec: &Interleaved,
    sumi: __m256i,
    bias: __m256i,
    yd: f32,
) -> __m256 {
    // SAFETY: d and dmin are [f32; 8] = 32 bytes; the loads are unaligned.
    let (d, dmin) = unsafe {
        (
            _mm256_loadu_ps(dec.d.as_ptr()),
            _mm256_loadu_ps(dec.dmin.as_ptr()),
        )
    };
    let yd = _mm256_set1_ps(yd);
    let t = if K6 {
        _mm256_mul_ps(
            _mm256_mul_ps(d, yd),
            _mm256_cvtepi32_ps(_mm256_add_epi32(sumi, bias)),
        )
    } else {
        _mm256_sub_ps(
            _mm256_mul_ps(_mm256_mul_ps(d, yd), _mm256_cvtepi32_ps(sumi)),
            _mm256_mul_ps(_mm256_mul_ps(dmin, yd), _mm256_cvtepi32_ps(bias)),
        )
    };
    _mm256_add_ps(acc, t)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn rows8<const K6: bool>(w: K8Rows<'_>, a: &[BlockQ8K], stride: usize, n: usize, out: &mut [f32]) {
    let (bytes, record) = if K6 {
        (Q6_K_BYTES, packed::Q6_K_RECORD)
    } else {
        (Q4_K_BYTES, packed::Q4_K_RECORD)
    };
    let (nb, shapes_agree) = match w {
        K8Rows::Rows(rows) => {
            let nb = rows[0].len() / bytes;
            (nb, rows.iter().all(|x| x.len() == nb * bytes))
        }
        K8Rows::Packed(p) => (p.len() / record, p.len().is_multiple_of(record)),
    };
    if n == 0
        || n > KT_MAX
        || n > stride
        || nb == 0
        || !shapes_agree
        || a.len() < (nb - 1) * stride + n
        || out.len() != K8_ROWS * n
    {
        return;
    }
    let mut dec = Interleaved::zeroed();
    let mut acc = [_mm256_setzero_ps(); KT_MAX];
    for i in 0..nb {
        match (w, K6) {
            (K8Rows::Rows(rows), _) => {
                let mut blocks: [&[u8]; K8_ROWS] = [&[]; K8_ROWS];
                for (b, row) in blocks.iter_mut().zip(&rows) {
                    *b = &row[i * bytes..(i + 1) * bytes];
                }
                if K6 {
                    dec.load_q6_k(blocks);
                } else {
                    dec.load_q4_k(blocks);
                }
            }
            (K8Rows::Packed(p), true) => dec.load_q6_k_packed(&p[i * record..(i + 1) * record]),
            (K8Rows::Packed(p), false) => dec.load_q4_k_packed(&p[i * record..(i + 1) * record]),
        }
        // Superblock i of every token, contiguous.
        let col = &a[i * stride..i * stride + n];
        if n == 1 {
            // One token (decode): no group to fill.
            let (sumi, bias) = superblock_sums::<K6, 1>(&dec, &[&col[0]]);
            acc[0] = fold::<K6>(acc[0], &dec, sumi[0], bias[0], col[0].d);
            continue;
        }
        let mut c = 0;
        while c < n {
            let m = (n - c).min(TOKENS);
            // A short last group repeats its last token; only the first m results are kept.
            let mut ys: [&BlockQ8K; TOKENS] = [&col[c]; TOKENS];
            for (j, y) in ys.iter_mut().enumerate().skip(1) {
                *y = &col[c + j.min(m - 1)];
            }
            let (sumi, bias) = superblock_sums::<K6, TOKENS>(&dec, &ys);
            for j in 0..m {
                acc[c + j] = fold::<K6>(acc[c + j], &dec, sumi[j], bias[j], ys[j].d);
            }
            c += m;
        }
    }
    for (o, v) in out.chunks_exact_mut(K8_ROWS).zip(&acc[..n]) {
        // SAFETY: o has exactly 8 floats; the store is unaligned.
        unsafe { _mm256_storeu_ps(o.as_mut_ptr(), *v) };
    }
}

/// `out[c * 8 + r] = dot(w[r], token c)` (token-major) for 8 Q4_K weight rows of `nb` superblocks
/// (as stored, or a packed row group) and `n <= KT_MAX` tokens of Q8_K activations laid out
/// superblock-major: superblock i of token c at `a[i * stride + c]` (`n <= stride`). Writes
/// nothing when the shapes disagree.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn rows8_q4_k_q8_k(w: K8Rows<'_>, a: &[BlockQ8K], stride: usize, n: usize, out: &mut [f32]) {
    rows8::<false>(w, a, stride, n, out)
}

/// As [`rows8_q4_k_q8_k`] for Q6_K weight rows.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn rows8_q6_k_q8_k(w: K8Rows<'_>, a: &[BlockQ8K], stride: usize, n: usize, out: &mut [f32]) {
    rows8::<true>(w, a, stride, n, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose8_moves_element_k_of_row_r_to_lane_r_of_output_k() {
        if !std::is_x86_feature_detected!("avx2") {
            return;
        }
        let rows: [__m256i; 8] = core::array::from_fn(|r| {
            let v: [i32; 8] = core::array::from_fn(|k| (10 * r + k) as i32);
            // SAFETY: [i32; 8] is 32 bytes.
            unsafe { _mm256_loadu_si256(v.as_ptr() as *const __m256i) }
        });
        // SAFETY: AVX2 is present (checked above).
        let t = unsafe { transpose8(rows) };
        for (k, v) in t.iter().enumerate() {
            let mut lanes = [0i32; 8];
            // SAFETY: as above.
            unsafe { _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, *v) };
            let want: [i32; 8] = core::array::from_fn(|r| (10 * r + k) as i32);
            assert_eq!(lanes, want, "output {k}");
        }
    }
}
