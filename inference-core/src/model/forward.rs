//! The forward pass: batched prefill (every matmul sees all tokens of a chunk at once) and decode.
//!
//! Each token's result is computed by row-wise operations only (norms, RoPE, activations, per-row
//! activation quantisation inside the matmul, and attention over its own causal window in position
//! order), so splitting a prompt into batches, chunks or forks gives bit-identical logits.

use super::attention::{attention, AttentionScratch};
use super::config::Arch;
use super::ops::{self, rms_norm_in_place, Rope};
use super::weights::Linear;
use super::{KvCache, LogitsRequest, Model, ModelError};
use crate::kernels::{MatmulContext, RowSelection, SharedJob, VecF32};
use crate::parallel::for_each_chunk_mut;
use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

/// Tokens per prefill chunk: bounds the activation memory while keeping matrix-matrix work.
pub const CHUNK: usize = 64;

/// Evaluates `tokens` (already validated) and returns the requested logits.
pub(super) fn run(
    model: &Model<'_>,
    cache: &mut KvCache,
    tokens: &[u32],
    req: LogitsRequest<'_>,
) -> Result<Vec<f32>, ModelError> {
    let d = model.config.n_embd;
    let mut logits = Vec::new();
    let mut last_hidden = Vec::new();
    let mut mm = MatmulContext::new(model.isa, &*model.par);
    let mut capture = HiddenCapture::new(req);
    for chunk in tokens.chunks(CHUNK) {
        let last_only = !matches!(req, LogitsRequest::All);
        let mut x = run_chunk(model, &mut mm, cache, chunk, last_only, &mut capture)?;
        match req {
            LogitsRequest::All => {
                let n = chunk.len();
                norm_rows(&mut x, &model.weights.output_norm, model.config.rms_eps, d);
                let mut out = vec![0.0f32; n * model.config.n_vocab];
                linear(
                    &mut mm,
                    &model.weights.output,
                    &x,
                    n,
                    &mut out,
                    RowSelection::All,
                )?;
                logits.extend_from_slice(&out);
            }
            _ => last_hidden = x.split_off(x.len() - d),
        }
    }
    let rows = match req {
        LogitsRequest::All => {
            finish(model, &mut logits);
            return Ok(logits);
        }
        LogitsRequest::Last => RowSelection::All,
        LogitsRequest::LastRows(ids) => RowSelection::Rows(ids),
        LogitsRequest::LastHidden(_) => return Ok(capture.row),
    };
    rms_norm_in_place(
        &mut last_hidden,
        &model.weights.output_norm,
        model.config.rms_eps,
    );
    let n_out = match rows {
        RowSelection::Rows(ids) => ids.len(),
        _ => model.config.n_vocab,
    };
    let mut out = vec![0.0f32; n_out];
    if n_out > 0 {
        linear(
            &mut mm,
            &model.weights.output,
            &last_hidden,
            1,
            &mut out,
            rows,
        )?;
    }
    finish(model, &mut out);
    Ok(out)
}

/// `LogitsRequest::LastHidden(layer)`: the last token's residual stream after `layer` blocks,
/// taken from each chunk in turn (the last chunk's is the prompt's). Empty for other requests.
pub(in crate::model) struct HiddenCapture {
    layer: Option<usize>,
    pub(in crate::model) row: Vec<f32>,
}

impl HiddenCapture {
    pub(in crate::model) fn new(req: LogitsRequest<'_>) -> Self {
        let layer = match req {
            LogitsRequest::LastHidden(layer) => Some(layer),
            _ => None,
        };
        HiddenCapture {
            layer,
            row: Vec::new(),
        }
    }

    /// Called after `blocks` blocks with the chunk's rows `x` (`d` values each, the last token's
    /// last): keeps that row when these are the blocks asked for.
    pub(in crate::model) fn after_blocks(&mut self, blocks: usize, x: &[f32], d: usize) {
        if self.layer == Some(blocks) {
            self.row.clear();
            self.row.extend_from_slice(&x[x.len() - d..]);
        }
    }
}

fn finish(model: &Model<'_>, logits: &mut [f32]) {
    if let Some(cap) = model.config.final_logit_softcap {
        ops::softcap(logits, cap);
    }
}

fn norm_rows(x: &mut [f32], w: &[f32], eps: f32, width: usize) {
    for row in x.chunks_exact_mut(width) {
        rms_norm_in_place(row, w, eps);
    }
}

/// `out[t][r] = W[r] · x[t] (+ bias[r])` for `n` tokens.
fn linear(
    mm: &mut MatmulContext<'_>,
    l: &Linear<'_>,
    x: &[f32],
    n: usize,
    out: &mut [f32],
    rows: RowSelection<'_>,
) -> Result<(), ModelError> {
    mm.run_packed(&l.weight, l.packed.as_deref(), x, n, out, rows)
        .map_err(|e| ModelError::Quant(format!("{}: {e}", l.weight.name)))?;
    add_bias(l, out);
    Ok(())
}

/// Adds `l`'s bias (if any) to every token's row of `out`.
fn add_bias(l: &Linear<'_>, out: &mut [f32]) {
    if let Some(b) = &l.bias {
        for row in out.chunks_exact_mut(l.rows) {
            for (o, &bv) in row.iter_mut().zip(b) {
                *o += bv;
            }
        }
    }
}

/// [`linear`] for several weights that read the same `x` (one quantisation, one dispatch).
fn linear_shared(
    mm: &mut MatmulContext<'_>,
    x: &[f32],
    n: usize,
    jobs: &mut [(&Linear<'_>, &mut [f32])],
) -> Result<(), ModelError> {
    let mut weights: Vec<_> = jobs
        .iter_mut()
        .map(|(l, o)| SharedJob {
            w: &l.weight,
            packed: l.packed.as_deref(),
            out: o,
        })
        .collect();
    mm.run_shared_jobs(x, n, &mut weights).map_err(|e| {
        let names: Vec<&str> = jobs.iter().map(|(l, _)| l.weight.name).collect();
        ModelError::Quant(format!("{}: {e}", names.join("+")))
    })?;
    for (l, out) in jobs.iter_mut() {
        add_bias(l, out);
    }
    Ok(())
}

/// The input embeddings of `tokens` (row per token; Gemma 3 scales them by sqrt(n_embd)).
pub(super) fn embed_tokens(model: &Model<'_>, tokens: &[u32]) -> Result<Vec<f32>, ModelError> {
    let (c, w) = (&model.config, &model.weights);
    let d = c.n_embd;
    let mut x = vec![0.0f32; tokens.len() * d];
    for (row, &id) in x.chunks_exact_mut(d).zip(tokens) {
        let bytes = w
            .token_embd
            .row(id as usize)
            .ok_or(ModelError::BadTokenId {
                id,
                n_vocab: c.n_vocab,
            })?;
        crate::quant::dequantize_row(w.token_embd.ty, bytes, row)
            .map_err(|e| ModelError::Quant(format!("token_embd: {e}")))?;
        if c.arch == Arch::Gemma3 {
            let s = ops::sqrtf(d as f32);
            row.iter_mut().for_each(|v| *v *= s);
        }
    }
    Ok(x)
}

/// Runs one chunk through every layer, appends its K/V to `cache` and returns its hidden states.
/// With `last_only`, the returned hidden states are the last token's only (the final layer skips
/// the other rows after caching their keys and values). `capture` keeps the chunk's last token's
/// residual stream after the blocks it asks for.
fn run_chunk(
    model: &Model<'_>,
    mm: &mut MatmulContext<'_>,
    cache: &mut KvCache,
    tokens: &[u32],
    last_only: bool,
    capture: &mut HiddenCapture,
) -> Result<Vec<f32>, ModelError> {
    let c = &model.config;
    let w = &model.weights;
    let (n, d) = (tokens.len(), c.n_embd);
    let start = cache.len();
    let mut x = embed_tokens(model, tokens)?;
    capture.after_blocks(0, &x, d);
    let (q_w, k_w, v_w) = (
        c.n_head * c.head_dim,
        c.n_head_kv * c.head_dim,
        c.n_head_kv * c.head_dim_v,
    );
    let mut xn = vec![0.0f32; n * d];
    let mut q = vec![0.0f32; n * q_w];
    let mut k = vec![0.0f32; n * k_w];
    let mut v = vec![0.0f32; n * v_w];
    let mut attn = vec![0.0f32; n * c.n_head * c.head_dim_v];
    let mut proj = vec![0.0f32; n * d];
    let mut gate = vec![0.0f32; n * c.n_ff];
    let mut up = vec![0.0f32; n * c.n_ff];
    let mut attention_scratch = AttentionScratch::default();
    let mut angles: Vec<(&Rope, Vec<(f32, f32)>)> = Vec::new();
    // Rows still computed: all n, except in the final layer when only the last token's hidden
    // state is wanted (its K/V rows are still computed and cached for every token).
    let (mut m, mut t0) = (n, 0);
    for (il, lw) in w.layers.iter().enumerate() {
        xn.copy_from_slice(&x);
        norm_rows(&mut xn, &lw.attn_norm, c.rms_eps, d);
        // Q with K and V unless the final layer keeps only the last token's query.
        let trim = last_only && il + 1 == w.layers.len() && n > 1;
        if trim {
            linear_shared(mm, &xn, n, &mut [(&lw.wk, &mut k), (&lw.wv, &mut v)])?;
        } else {
            linear_shared(
                mm,
                &xn,
                n,
                &mut [(&lw.wk, &mut k), (&lw.wv, &mut v), (&lw.wq, &mut q)],
            )?;
        }
        if let Some(kn) = &lw.k_norm {
            norm_rows(&mut k, kn, c.rms_eps, c.head_dim);
        }
        let rope = &model.ropes[il];
        // The chunk's RoPE angles, computed once per distinct configuration (not per layer).
        let cs_at = match angles.iter().position(|(r, _)| *r == rope) {
            Some(i) => i,
            None => {
                angles.push((rope, rope.angles(start..start + n)));
                angles.len() - 1
            }
        };
        let cs = &angles[cs_at].1;
        let half = cs.len() / n;
        for t in 0..n {
            let row = &cs[t * half..(t + 1) * half];
            rope.apply_angles(&mut k[t * k_w..(t + 1) * k_w], c.head_dim, row);
        }
        cache.push_layer(il, &k, &v);
        if trim {
            (m, t0) = (1, n - 1);
            x.drain(..t0 * d);
            xn.drain(..t0 * d);
            linear(mm, &lw.wq, &xn, m, &mut q[..q_w], RowSelection::All)?;
        }
        let q = &mut q[..m * q_w];
        if let Some(qn) = &lw.q_norm {
            norm_rows(q, qn, c.rms_eps, c.head_dim);
        }
        for t in 0..m {
            let row = &cs[(t0 + t) * half..(t0 + t + 1) * half];
            rope.apply_angles(&mut q[t * q_w..(t + 1) * q_w], c.head_dim, row);
        }
        let attn = &mut attn[..m * c.n_head * c.head_dim_v];
        attention(
            model,
            cache,
            il,
            start + t0..start + n,
            q,
            attn,
            &mut attention_scratch,
        );
        let proj = &mut proj[..m * d];
        linear(mm, &lw.wo, attn, m, proj, RowSelection::All)?;
        if let Some(pn) = &lw.post_attn_norm {
            norm_rows(proj, pn, c.rms_eps, d);
        }
        x.iter_mut().zip(proj.iter()).for_each(|(a, b)| *a += b);

        xn.copy_from_slice(&x);
        norm_rows(&mut xn, &lw.ffn_norm, c.rms_eps, d);
        let (gate, up) = (&mut gate[..m * c.n_ff], &mut up[..m * c.n_ff]);
        linear_shared(mm, &xn, m, &mut [(&lw.ffn_gate, gate), (&lw.ffn_up, up)])?;
        let (simd, up) = (VecF32::new(model.isa), &*up);
        // One token's row per task (elementwise, so the split does not change a value).
        for_each_chunk_mut(&*model.par, gate, c.n_ff, &|t, g| {
            let u = &up[t * c.n_ff..][..g.len()];
            match (c.arch, simd) {
                (Arch::Gemma3, _) => ops::geglu(g, u),
                (_, Some(v)) => v.swiglu(g, u),
                (_, None) => ops::swiglu(g, u),
            }
        });
        linear(mm, &lw.ffn_down, gate, m, proj, RowSelection::All)?;
        if let Some(pn) = &lw.post_ffn_norm {
            norm_rows(proj, pn, c.rms_eps, d);
        }
        x.iter_mut().zip(proj.iter()).for_each(|(a, b)| *a += b);
        capture.after_blocks(il + 1, &x, d);
    }
    cache.commit(n);
    Ok(x)
}
