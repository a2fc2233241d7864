//! The K-quant (Q4_K, Q6_K) matmul for several tokens on AVX2: activations quantised once to
//! superblock-major Q8_K, then 8-row groups of every weight that reads them split across the
//! threads in one job (so Q, K and V, or gate and up, share one quantisation and one dispatch).
//! One token takes it too when every weight has a packed copy (`K8Packed`).

use super::avx2_k8::{rows8_q4_k_q8_k, rows8_q6_k_q8_k, K8Rows, K8_ROWS, KT_MAX};
use super::k8_packed::K8Packed;
use super::matmul::{OutPtr, RowSelection};
use crate::gguf::{GgmlType, TensorInfo};
use crate::parallel::{for_each_chunk_mut, Parallel};
use crate::quant::{quantize_block_q8_k, BlockQ8K, QK_K};
use alloc::vec::Vec;

/// One weight of a shared-input job: its selected rows (already checked against the weight, `x`
/// and the output by the caller) and where their results go.
pub(super) struct K8Weight<'a> {
    pub w: &'a TensorInfo<'a>,
    /// Its packed copy, already checked by [`usable`].
    pub packed: Option<&'a K8Packed>,
    pub rows: RowSelection<'a>,
    pub n_sel: usize,
    pub out: OutPtr,
}

/// Whether the 8-row tile takes these weights (type, and whether a usable packed copy comes with
/// it) for `n_tokens` tokens of `row_len` values: several tokens of K-quant weights, or one token
/// when every weight has a packed copy (decode: each row group's records are one stream).
pub(super) fn takes(
    weights: impl IntoIterator<Item = (GgmlType, bool)>,
    row_len: usize,
    n_tokens: usize,
) -> bool {
    n_tokens >= 1
        && row_len.is_multiple_of(QK_K)
        && weights.into_iter().all(|(t, packed)| {
            matches!(t, GgmlType::Q4_K | GgmlType::Q6_K) && (n_tokens >= 2 || packed)
        })
}

/// `packed` when the tile may read it for `w`'s selected `rows`: every row selected and the copy
/// [`K8Packed::fits`] the weight.
pub(super) fn usable<'p>(
    w: &TensorInfo<'_>,
    packed: Option<&'p K8Packed>,
    rows: RowSelection<'_>,
) -> Option<&'p K8Packed> {
    packed.filter(|p| matches!(rows, RowSelection::All) && p.fits(w))
}

/// `out[t * n_sel + j] = dot(row j of w, x[t])` for every weight of `jobs` (shapes checked, AVX2
/// present, [`takes`] true), the activations quantised once into `q8k`.
pub(super) fn run(
    q8k: &mut Vec<BlockQ8K>,
    par: &dyn Parallel,
    x: &[f32],
    row_len: usize,
    n_tokens: usize,
    jobs: &[K8Weight<'_>],
) {
    let acts = q8k_superblock_major(q8k, x, row_len, n_tokens, par);
    // Row groups of all weights, numbered weight after weight.
    let mut first = Vec::with_capacity(jobs.len() + 1);
    first.push(0);
    for j in jobs {
        first.push(first[first.len() - 1] + j.n_sel.div_ceil(K8_ROWS));
    }
    let total = first[jobs.len()];
    let n_tasks = total.min(par.n_threads().max(1) * 4);
    par.for_each(n_tasks, &|k| {
        let (g0, g1) = (total * k / n_tasks, total * (k + 1) / n_tasks);
        for (i, job) in jobs.iter().enumerate() {
            let (a, b) = (g0.max(first[i]), g1.min(first[i + 1]));
            if a >= b {
                continue;
            }
            let row_bytes = job.w.row_bytes();
            let row = |j: usize| job.rows.row(job.w, row_bytes, j);
            let groups = a - first[i]..b - first[i];
            rows8(
                job.w.ty,
                acts,
                n_tokens,
                job.n_sel,
                groups,
                row,
                job.packed,
                |t, j, v: &[f32]| {
                    // SAFETY: t < n_tokens and j + v.len() <= n_sel, inside this weight's output
                    // (checked by the caller); only this task writes the columns of its row groups.
                    unsafe { job.out.write_run(t * job.n_sel + j, v) }
                },
            );
        }
    });
}

/// Q8_K activations superblock-major: superblock i of token t at `i * n_tokens + t`, so a
/// superblock's blocks of every token are contiguous. Quantised one superblock column per task;
/// each block depends on its own 256 values only, so the blocks are the ones
/// `QuantizedActs::quantize` makes.
fn q8k_superblock_major<'b>(
    buf: &'b mut Vec<BlockQ8K>,
    x: &[f32],
    row_len: usize,
    n_tokens: usize,
    par: &dyn Parallel,
) -> &'b [BlockQ8K] {
    // Every block is overwritten below.
    let acts = crate::scratch(buf, row_len / QK_K * n_tokens, BlockQ8K::ZERO);
    for_each_chunk_mut(par, acts, n_tokens, &|i, col| {
        for (t, b) in col.iter_mut().enumerate() {
            let v = &x[t * row_len + i * QK_K..][..QK_K];
            // SAFETY: only called on the AVX2 path (Isa::Avx2 from clamp_to_cpu).
            if !unsafe { super::avx2_q8k::quantize_block_q8_k(v, b) } {
                *b = quantize_block_q8_k(v);
            }
        }
    });
    acts
}

/// Row groups `groups` (8 selected rows each; a short last group repeats its last row and keeps
/// only its own results) against every token of the superblock-major `acts`, writing each
/// token's results with `write(token, first row, values)`. With `packed` (every row selected),
/// group g is read from its records instead of `row`.
#[allow(clippy::too_many_arguments)]
fn rows8<'w>(
    ty: GgmlType,
    acts: &[BlockQ8K],
    n_tokens: usize,
    n_sel: usize,
    groups: core::ops::Range<usize>,
    row: impl Fn(usize) -> &'w [u8],
    packed: Option<&'w K8Packed>,
    write: impl Fn(usize, usize, &[f32]),
) {
    let kernel = match ty {
        GgmlType::Q6_K => rows8_q6_k_q8_k,
        _ => rows8_q4_k_q8_k,
    };
    let mut buf = [0f32; K8_ROWS * KT_MAX];
    for g in groups {
        let j = g * K8_ROWS;
        let valid = (n_sel - j).min(K8_ROWS);
        let rows = match packed {
            Some(p) => K8Rows::Packed(p.group(g)),
            None => K8Rows::Rows(core::array::from_fn(|i| row(j + i.min(valid - 1)))),
        };
        let mut t0 = 0;
        while t0 < n_tokens {
            let nt = (n_tokens - t0).min(KT_MAX);
            let out = &mut buf[..K8_ROWS * nt];
            // SAFETY: only called with Isa::Avx2 from clamp_to_cpu, so AVX2, FMA and F16C exist.
            unsafe { kernel(rows, &acts[t0..], n_tokens, nt, out) };
            for (c, r) in out.chunks_exact(K8_ROWS).enumerate() {
                write(t0 + c, j, &r[..valid]);
            }
            t0 += nt;
        }
    }
}
