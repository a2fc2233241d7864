//! Key/value cache with copy-free forks and checkpoints.
//!
//! A cache is a list of frozen, reference-counted segments (shared between forks) followed by a private
//! tail that grows as tokens are evaluated. `fork` moves the tail into a new frozen segment (no copy) and
//! gives both caches that segment; `restore` truncates, trimming a shared segment by its used length only.

use super::{Model, ModelError};
use alloc::sync::Arc;
use alloc::vec::Vec;

/// K and V of a run of positions, for every layer.
#[derive(Debug)]
struct Segment {
    /// Per layer: `len * k_width` floats.
    k: Vec<Vec<f32>>,
    /// Per layer: `len * v_width` floats.
    v: Vec<Vec<f32>>,
}

/// A position in a cache's history that it can be rolled back to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    len: usize,
}

impl Checkpoint {
    /// Number of positions cached when the checkpoint was taken.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The attention keys and values of the positions evaluated so far.
#[derive(Debug)]
pub struct KvCache {
    capacity: usize,
    n_layer: usize,
    k_width: usize,
    v_width: usize,
    /// Shared segments and how many of their positions belong to this cache.
    frozen: Vec<(Arc<Segment>, usize)>,
    frozen_len: usize,
    tail: Segment,
    tail_len: usize,
}

/// One layer's keys and values as a list of contiguous runs, oldest first.
pub(crate) struct LayerView<'c> {
    pub runs: Vec<(&'c [f32], &'c [f32])>,
}

impl KvCache {
    /// An empty cache for `model` holding at most `capacity` positions (clamped to the training context).
    pub fn new(model: &Model<'_>, capacity: usize) -> KvCache {
        let c = model.config();
        let capacity = capacity.min(c.n_ctx_train);
        let (k_width, v_width) = (c.n_head_kv * c.head_dim, c.n_head_kv * c.head_dim_v);
        KvCache {
            capacity,
            n_layer: c.n_layer,
            k_width,
            v_width,
            frozen: Vec::new(),
            frozen_len: 0,
            tail: Segment {
                k: empty_layers(c.n_layer),
                v: empty_layers(c.n_layer),
            },
            tail_len: 0,
        }
    }

    /// Positions cached.
    pub fn len(&self) -> usize {
        self.frozen_len + self.tail_len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Most positions this cache can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Positions still free.
    pub fn remaining(&self) -> usize {
        self.capacity - self.len()
    }

    /// Marks the current length so that `restore` can return to it.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint { len: self.len() }
    }

    /// Drops every position after `cp`. Fails when the cache is already shorter than `cp`.
    pub fn restore(&mut self, cp: Checkpoint) -> Result<(), ModelError> {
        if cp.len > self.len() {
            return Err(ModelError::BadCheckpoint {
                checkpoint: cp.len,
                cached: self.len(),
            });
        }
        self.truncate(cp.len);
        Ok(())
    }

    /// Drops all positions.
    pub fn clear(&mut self) {
        self.truncate(0);
    }

    fn truncate(&mut self, len: usize) {
        if len >= self.frozen_len {
            let keep = len - self.frozen_len;
            truncate_segment(&mut self.tail, keep, self.k_width, self.v_width);
            self.tail_len = keep;
            return;
        }
        truncate_segment(&mut self.tail, 0, self.k_width, self.v_width);
        self.tail_len = 0;
        let mut covered = 0;
        let mut kept = 0;
        for (_, used) in self.frozen.iter_mut() {
            if covered >= len {
                break;
            }
            *used = (*used).min(len - covered);
            covered += *used;
            kept += 1;
        }
        self.frozen.truncate(kept);
        self.frozen_len = covered;
    }

    /// A new cache that shares every cached position with this one without copying them.
    /// This cache's private tail becomes a shared frozen segment of both.
    pub fn fork(&mut self) -> KvCache {
        if self.tail_len > 0 {
            let empty = Segment {
                k: empty_layers(self.n_layer),
                v: empty_layers(self.n_layer),
            };
            let seg = core::mem::replace(&mut self.tail, empty);
            self.frozen.push((Arc::new(seg), self.tail_len));
            self.frozen_len += self.tail_len;
            self.tail_len = 0;
        }
        KvCache {
            capacity: self.capacity,
            n_layer: self.n_layer,
            k_width: self.k_width,
            v_width: self.v_width,
            frozen: self.frozen.clone(),
            frozen_len: self.frozen_len,
            tail: Segment {
                k: empty_layers(self.n_layer),
                v: empty_layers(self.n_layer),
            },
            tail_len: 0,
        }
    }

    /// Whether this cache has the geometry of `model`.
    pub(crate) fn fits(&self, model: &Model<'_>) -> bool {
        let c = model.config();
        self.n_layer == c.n_layer
            && self.k_width == c.n_head_kv * c.head_dim
            && self.v_width == c.n_head_kv * c.head_dim_v
    }

    /// Appends K and V rows (`n` positions) for `layer`; `commit` must follow once every layer is written.
    pub(crate) fn push_layer(&mut self, layer: usize, k: &[f32], v: &[f32]) {
        self.tail.k[layer].extend_from_slice(k);
        self.tail.v[layer].extend_from_slice(v);
    }

    /// Makes `n` positions pushed to every layer part of the cache.
    pub(crate) fn commit(&mut self, n: usize) {
        self.tail_len += n;
    }

    /// Undoes pushes that were not committed (after an error).
    pub(crate) fn rollback_uncommitted(&mut self) {
        truncate_segment(&mut self.tail, self.tail_len, self.k_width, self.v_width);
    }

    /// Keys and values of `layer` for the first `upto` positions, counting uncommitted pushes.
    pub(crate) fn layer_view(&self, layer: usize, upto: usize) -> LayerView<'_> {
        let mut runs = Vec::with_capacity(self.frozen.len() + 1);
        let mut left = upto;
        for (seg, used) in &self.frozen {
            if left == 0 {
                break;
            }
            let n = (*used).min(left);
            runs.push((
                &seg.k[layer][..n * self.k_width],
                &seg.v[layer][..n * self.v_width],
            ));
            left -= n;
        }
        if left > 0 {
            let n = left.min(self.tail.k[layer].len() / self.k_width.max(1));
            runs.push((
                &self.tail.k[layer][..n * self.k_width],
                &self.tail.v[layer][..n * self.v_width],
            ));
        }
        LayerView { runs }
    }

    /// Number of shared segments (for tests and diagnostics).
    pub fn shared_segments(&self) -> usize {
        self.frozen.len()
    }
}

fn empty_layers(n: usize) -> Vec<Vec<f32>> {
    (0..n).map(|_| Vec::new()).collect()
}

fn truncate_segment(seg: &mut Segment, len: usize, k_width: usize, v_width: usize) {
    for k in seg.k.iter_mut() {
        k.truncate(len * k_width);
    }
    for v in seg.v.iter_mut() {
        v.truncate(len * v_width);
    }
}
