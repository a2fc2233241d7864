//! Causal (optionally windowed) attention of a chunk's queries over the cached keys and values.
//!
//! With the AVX2 kernels, the keys the chunk can see are first packed per KV head into blocks of 8
//! positions with the dimensions outermost, and a group's query heads are scored against them with
//! the keys in the vector lanes (`VecF32::scores8`): no horizontal sums, and the packing is shared
//! by every token of the chunk. Work is split into tasks of one KV head and a tile of up to
//! [`TILE_TOKENS`] consecutive tokens, which walk the value rows in blocks of [`KEY_BLOCK`]
//! positions while they are in L1. Each (token, head) result is computed by the same kernels in
//! the same order over its own causal window (each score one FMA chain over the dimensions, softmax,
//! then the weighted sum of values in position order), so it does not depend on the tile, the
//! chunk or the fork it was computed in: logits stay bit-identical across batchings.

use super::cache::LayerView;
use super::ops::{axpy, dot, softmax};
use super::{KvCache, Model};
use crate::kernels::{VecF32, GROUP_HEADS_MAX};
use crate::parallel::{for_each_chunk_mut, Parallel};
use alloc::vec;
use alloc::vec::Vec;
use core::marker::PhantomData;
use core::ops::Range;
use core::sync::atomic::{AtomicBool, Ordering};

/// Buffers [`attention`] reuses from call to call (layer to layer).
#[derive(Default)]
pub(super) struct AttentionScratch {
    packed_keys: Vec<f32>,
    scores: Vec<f32>,
}

/// Tokens whose queries share one pass over the cache.
const TILE_TOKENS: usize = 8;
/// Key blocks (8 positions of one KV head) packed per task.
const PACK_BLOCKS: usize = 16;
/// Cached positions whose key or value rows (one KV head's slice) are reused while in L1.
const KEY_BLOCK: usize = 32;

/// One token of a tile: its causal window and where its scores live in the task's buffer.
struct TokenWindow {
    /// Index of the token in the chunk.
    t: usize,
    /// First and one-past-last cached position it attends to.
    first: usize,
    end: usize,
    /// Offset of its `group * row` scores (head-major).
    scores_at: usize,
    /// Scores per head row, and where position `first` sits in it (packed keys score whole
    /// blocks of 8; otherwise `row` is the window length and `skip` 0).
    row: usize,
    skip: usize,
}

impl TokenWindow {
    fn len(&self) -> usize {
        self.end - self.first
    }

    /// The part of `jb..je` this token attends to.
    fn clip(&self, jb: usize, je: usize) -> Option<(usize, usize)> {
        let (a, b) = (jb.max(self.first), je.min(self.end));
        (a < b).then_some((a, b))
    }
}

/// Attention of the queries at `positions` over layer `il` of `cache`, which already holds their
/// own keys and values. `q` and `out` are token-major rows of all query heads.
pub(super) fn attention(
    model: &Model<'_>,
    cache: &KvCache,
    il: usize,
    positions: Range<usize>,
    q: &[f32],
    out: &mut [f32],
    scratch: &mut AttentionScratch,
) {
    let (start, n) = (positions.start, positions.len());
    let c = &model.config;
    let window = c.layers[il].window;
    let view = cache.layer_view(il, start + n);
    let shared = SharedRows::new(out);
    let geometry = Geometry {
        hd: c.head_dim,
        hdv: c.head_dim_v,
        k_w: c.n_head_kv * c.head_dim,
        v_w: c.n_head_kv * c.head_dim_v,
        group: c.n_head / c.n_head_kv,
        n_head: c.n_head,
        scale: c.attn_scale,
        simd: VecF32::new(model.isa),
    };
    // Positions any token of the chunk attends to (the first token's window starts earliest).
    let lo = window.map_or(0, |w| (start + 1).saturating_sub(w));
    let AttentionScratch {
        packed_keys,
        scores: scores_buf,
    } = scratch;
    let packed = geometry.pack_keys(&view, lo, start + n, &*model.par, packed_keys);
    let tiles = n.div_ceil(TILE_TOKENS);
    // Scores of one task: at most TILE_TOKENS rows of `group` heads over the widest window
    // (whole blocks of 8 when packed). Every score a task reads it has written first.
    let per_task = geometry.group * TILE_TOKENS * 8 * ((start + n - lo).div_ceil(8) + 1);
    let n_tasks = tiles * c.n_head_kv;
    // Consecutive tasks share a KV head (its rows stay warm in L2 across the tiles).
    let task = |task: usize, scores: &mut [f32]| {
        let (kvh, tile) = (task / tiles, task % tiles);
        let mut tokens = Vec::with_capacity(TILE_TOKENS);
        let mut total = 0;
        for t in tile * TILE_TOKENS..((tile + 1) * TILE_TOKENS).min(n) {
            let pos = start + t;
            let first = window.map_or(0, |w| (pos + 1).saturating_sub(w));
            let (row, skip) = match packed {
                Some(_) => {
                    let (b0, b1) = ((first - lo) / 8, (pos - lo) / 8 + 1);
                    (8 * (b1 - b0), first - lo - 8 * b0)
                }
                None => (pos + 1 - first, 0),
            };
            tokens.push(TokenWindow {
                t,
                first,
                end: pos + 1,
                scores_at: total,
                row,
                skip,
            });
            total += geometry.group * row;
        }
        let scores = &mut scores[..total];
        match &packed {
            Some(p) => geometry.score_packed(p, lo, kvh, q, &tokens, scores),
            None => geometry.score(&view, kvh, q, &tokens, scores),
        }
        for tw in &tokens {
            let len = tw.len();
            for h in 0..geometry.group {
                let sh = &mut scores[tw.scores_at + h * tw.row + tw.skip..][..len];
                match geometry.simd {
                    Some(v) => v.softmax(sh),
                    None => softmax(sh),
                }
            }
        }
        let width = geometry.group * geometry.hdv;
        let mut outs: Vec<&mut [f32]> = tokens
            .iter()
            .map(|tw| {
                // SAFETY: row (token t, KV head kvh) belongs to this task alone: tasks are distinct
                // (kvh, tile) pairs and each token lies in one tile, so the rows never alias.
                unsafe { shared.row(tw.t * (geometry.n_head / geometry.group) + kvh, width) }
            })
            .collect();
        outs.iter_mut().for_each(|o| o.fill(0.0));
        geometry.weigh_values(&view, kvh, &tokens, scores, &mut outs);
    };
    let scores = crate::scratch(scores_buf, n_tasks * per_task, 0.0);
    for_each_chunk_mut(&*model.par, scores, per_task, &task);
}

/// The layer's attention shape and kernels.
struct Geometry {
    hd: usize,
    hdv: usize,
    k_w: usize,
    v_w: usize,
    group: usize,
    n_head: usize,
    scale: f32,
    simd: Option<VecF32>,
}

impl Geometry {
    /// Packs the key rows of positions `lo..end` into blocks of 8 positions (the last one padded
    /// with zero rows), KV head by KV head: block b of head h at `(h * blocks + b) * 8 * hd`. None
    /// when the kernels do not fit this geometry (then [`Geometry::score`] reads the rows).
    fn pack_keys<'b>(
        &self,
        view: &LayerView<'_>,
        lo: usize,
        end: usize,
        par: &dyn Parallel,
        buf: &'b mut Vec<f32>,
    ) -> Option<&'b [f32]> {
        let v = self.simd?;
        let n_kv = self.n_head / self.group;
        if !self.hd.is_multiple_of(8) || self.group > GROUP_HEADS_MAX || end <= lo {
            return None;
        }
        let mut rows: Vec<&[f32]> = Vec::with_capacity(end - lo);
        let mut base = 0;
        for (kr, _) in &view.runs {
            let run = kr.len() / self.k_w;
            for j in lo.max(base)..end.min(base + run) {
                rows.push(&kr[(j - base) * self.k_w..][..self.k_w]);
            }
            base += run;
        }
        let (blocks, block) = ((end - lo).div_ceil(8), 8 * self.hd);
        let zero = vec![0.0f32; self.hd];
        // Every float is overwritten below.
        let packed = crate::scratch(buf, n_kv * blocks * block, 0.0);
        let failed = AtomicBool::new(false);
        // PACK_BLOCKS blocks per task, numbered head-major across the KV heads.
        for_each_chunk_mut(par, packed, PACK_BLOCKS * block, &|task, part| {
            for (k, out) in part.chunks_exact_mut(block).enumerate() {
                let (kvh, b) = (
                    (task * PACK_BLOCKS + k) / blocks,
                    (task * PACK_BLOCKS + k) % blocks,
                );
                let keys: [&[f32]; 8] = core::array::from_fn(|i| {
                    rows.get(8 * b + i)
                        .map_or(&zero[..], |r| &r[kvh * self.hd..][..self.hd])
                });
                if !v.pack_keys8(keys, out) {
                    failed.store(true, Ordering::Relaxed);
                }
            }
        });
        (!failed.load(Ordering::Relaxed)).then_some(&*packed)
    }

    /// [`Geometry::score`] from the packed keys (`lo` = position of the first packed key).
    fn score_packed(
        &self,
        packed: &[f32],
        lo: usize,
        kvh: usize,
        q: &[f32],
        tokens: &[TokenWindow],
        scores: &mut [f32],
    ) {
        let (hd, group, block) = (self.hd, self.group, 8 * self.hd);
        let head = packed.len() / (self.n_head / group);
        for tw in tokens {
            let (b0, b1) = ((tw.first - lo) / 8, (tw.end - 1 - lo) / 8 + 1);
            let qg = &q[(tw.t * self.n_head + kvh * group) * hd..][..group * hd];
            let blocks = &packed[kvh * head + b0 * block..kvh * head + b1 * block];
            let out = &mut scores[tw.scores_at..][..group * tw.row];
            let done = self
                .simd
                .is_some_and(|v| v.scores8(qg, group, blocks, self.scale, out, tw.row));
            debug_assert!(done, "pack_keys checked the geometry");
        }
    }

    /// Scaled scores of every head of the group of KV head `kvh`, for every token of the tile,
    /// read from the cached rows one key at a time.
    fn score(
        &self,
        view: &LayerView<'_>,
        kvh: usize,
        q: &[f32],
        tokens: &[TokenWindow],
        scores: &mut [f32],
    ) {
        let (hd, group) = (self.hd, self.group);
        let mut base = 0;
        for (kr, _) in &view.runs {
            let run = kr.len() / self.k_w;
            for tw in tokens {
                let Some((a, b)) = tw.clip(base, base + run) else {
                    continue;
                };
                let qg = &q[(tw.t * self.n_head + kvh * group) * hd..][..group * hd];
                for j in a..b {
                    let kj = &kr[(j - base) * self.k_w + kvh * hd..][..hd];
                    for h in 0..group {
                        let qh = &qg[h * hd..][..hd];
                        let s = match self.simd {
                            Some(v) => v.dot(qh, kj),
                            None => dot(qh, kj),
                        };
                        scores[tw.scores_at + h * tw.row + j - tw.first] = s * self.scale;
                    }
                }
            }
            base += run;
        }
    }

    /// `outs[i]` (the group's heads of tile token i) += the softmaxed scores times the value rows,
    /// in position order.
    fn weigh_values(
        &self,
        view: &LayerView<'_>,
        kvh: usize,
        tokens: &[TokenWindow],
        scores: &[f32],
        outs: &mut [&mut [f32]],
    ) {
        let (hdv, v_w, group) = (self.hdv, self.v_w, self.group);
        let mut base = 0;
        for (_, vr) in &view.runs {
            let run = vr.len() / v_w;
            for jb in (base..base + run).step_by(KEY_BLOCK) {
                let je = (jb + KEY_BLOCK).min(base + run);
                for (tw, o) in tokens.iter().zip(outs.iter_mut()) {
                    let Some((a, b)) = tw.clip(jb, je) else {
                        continue;
                    };
                    let row = tw.row;
                    let rows = &vr[(a - base) * v_w + kvh * hdv..];
                    let p_all = &scores[tw.scores_at + tw.skip + a - tw.first..];
                    if self.simd.is_some_and(|v| {
                        v.weighted_rows_heads(o, group, p_all, row, b - a, rows, v_w)
                    }) {
                        continue;
                    }
                    for (hi, oh) in o.chunks_exact_mut(hdv).enumerate() {
                        let p = &p_all[hi * row..][..b - a];
                        let done = self.simd.is_some_and(|v| v.weighted_rows(oh, p, rows, v_w));
                        if !done {
                            for (jj, &pj) in p.iter().enumerate() {
                                let vj = &rows[jj * v_w..][..hdv];
                                match self.simd {
                                    Some(v) => v.axpy(oh, pj, vj),
                                    None => axpy(oh, pj, vj),
                                }
                            }
                        }
                    }
                }
            }
            base += run;
        }
    }
}

/// Lets parallel tasks write disjoint rows of one output buffer.
struct SharedRows<'s> {
    ptr: *mut f32,
    len: usize,
    _borrow: PhantomData<&'s mut [f32]>,
}

// SAFETY: the only access is `row`, whose callers write pairwise disjoint rows.
unsafe impl Sync for SharedRows<'_> {}

impl<'s> SharedRows<'s> {
    fn new(buf: &'s mut [f32]) -> Self {
        SharedRows {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
            _borrow: PhantomData,
        }
    }

    /// Row `i` of `width` floats.
    ///
    /// # Safety
    /// No two live calls may use the same `i` (rows must not alias).
    #[allow(clippy::mut_from_ref)]
    unsafe fn row(&self, i: usize, width: usize) -> &mut [f32] {
        let start = (i * width).min(self.len);
        let end = (start + width).min(self.len);
        // SAFETY: start..end lies inside the borrowed buffer; the caller guarantees disjointness.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.add(start), end - start) }
    }
}
