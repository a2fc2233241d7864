//! The forward pass in llama.cpp's graph order (`llm_build_llama`, `llm_build_qwen2`,
//! `llm_build_gemma3`) with the arithmetic of `dot` and `math`.
//!
//! The whole prompt (up to llama.cpp's default micro-batch of 512) is one batch, as in the
//! reference run. Every result is still computed per row, so a fork, a checkpoint or a split
//! batch gives the same logits as long as the K/V rows it reuses came from this mode too.

use super::dot;
use super::math::{f16r, flash_attn_row, rms_norm, rope_apply, rope_cache, v_silu};
use crate::gguf::GgmlType;
use crate::model::config::Arch;
use crate::model::forward::HiddenCapture;
use crate::model::weights::Linear;
use crate::model::{ops, KvCache, LogitsRequest, Model, ModelError};
use alloc::format;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

/// llama.cpp's default micro-batch (`n_ubatch`).
const UBATCH: usize = 512;

/// Weight rows per parallel task.
const ROWS_PER_TASK: usize = 32;

/// Evaluates `tokens` (already validated) and returns the requested logits.
pub(in crate::model) fn run(
    model: &Model<'_>,
    cache: &mut KvCache,
    tokens: &[u32],
    req: LogitsRequest<'_>,
) -> Result<Vec<f32>, ModelError> {
    let c = &model.config;
    let w = &model.weights;
    let all = matches!(req, LogitsRequest::All);
    let mut capture = HiddenCapture::new(req);
    let mut logits = Vec::new();
    let mut last = Vec::new();
    for chunk in tokens.chunks(UBATCH) {
        let mut x = run_chunk(model, cache, chunk, !all, &mut capture)?;
        for row in x.chunks_exact_mut(c.n_embd) {
            rms_norm(row, &w.output_norm, c.rms_eps);
        }
        if all {
            logits.extend(linear(model, &w.output, &x, None)?);
        } else {
            last = x;
        }
    }
    let mut out = match req {
        LogitsRequest::All => logits,
        LogitsRequest::Last => linear(model, &w.output, &last, None)?,
        LogitsRequest::LastRows(ids) => linear(model, &w.output, &last, Some(ids))?,
        LogitsRequest::LastHidden(_) => return Ok(capture.row),
    };
    if let Some(cap) = c.final_logit_softcap {
        ops::softcap(&mut out, cap);
    }
    Ok(out)
}

/// `x` (tokens of `l.cols` values) times the weight rows `rows` (all when None), plus the bias.
fn linear(
    model: &Model<'_>,
    l: &Linear<'_>,
    x: &[f32],
    rows: Option<&[u32]>,
) -> Result<Vec<f32>, ModelError> {
    let wt = &l.weight;
    let ty = wt.ty;
    let bad = || ModelError::Quant(format!("{}: {} has no compat kernel", wt.name, ty.name()));
    let acts = dot::quantize(ty, x, l.cols).ok_or_else(bad)?;
    // llama.cpp repacks Q4_K matrices with a multiple of 8 rows into its interleaved layout.
    let repacked = ty == GgmlType::Q4_K && wt.n_rows().is_multiple_of(8);
    let n_out = rows.map_or(wt.n_rows(), <[u32]>::len);
    let n = acts.len();
    let out: Vec<AtomicU32> = (0..n * n_out).map(|_| AtomicU32::new(0)).collect();
    let task = |task: usize| {
        let mut col = vec![0.0f32; n];
        for j in task * ROWS_PER_TASK..((task + 1) * ROWS_PER_TASK).min(n_out) {
            let r = rows.map_or(j, |ids| ids[j] as usize);
            let Some(wr) = wt.row(r) else { continue };
            dot::dot_rows(ty, wr, &acts, repacked, &mut col);
            for (t, v) in col.iter().enumerate() {
                out[t * n_out + j].store(v.to_bits(), Ordering::Relaxed);
            }
        }
    };
    model.par.for_each(n_out.div_ceil(ROWS_PER_TASK), &task);
    let mut y: Vec<f32> = out
        .into_iter()
        .map(|v| f32::from_bits(v.into_inner()))
        .collect();
    if let Some(b) = &l.bias {
        for row in y.chunks_exact_mut(n_out) {
            for (j, o) in row.iter_mut().enumerate() {
                let r = rows.map_or(j, |ids| ids[j] as usize);
                *o += b.get(r).copied().unwrap_or(0.0);
            }
        }
    }
    Ok(y)
}

fn norm_rows(x: &mut [f32], w: &[f32], eps: f32, width: usize) {
    for row in x.chunks_exact_mut(width) {
        rms_norm(row, w, eps);
    }
}

/// Runs one batch through every layer, appends its K/V to `cache` and returns the hidden states
/// (of the last token only with `last_only`, which llama.cpp selects after the last attention).
fn run_chunk(
    model: &Model<'_>,
    cache: &mut KvCache,
    tokens: &[u32],
    last_only: bool,
    capture: &mut HiddenCapture,
) -> Result<Vec<f32>, ModelError> {
    let c = &model.config;
    let w = &model.weights;
    let (n, d) = (tokens.len(), c.n_embd);
    let start = cache.len();
    let mut x = super::super::forward::embed_tokens(model, tokens)?;
    capture.after_blocks(0, &x, d);
    let hd = c.head_dim;
    let (q_w, k_w) = (c.n_head * hd, c.n_head_kv * hd);
    let neox = c.arch.rope_neox();
    // Gemma 3 scales Q before attention and runs attention with scale 1.
    let (q_scale, kq_scale) = match c.arch {
        Arch::Gemma3 => (Some(c.attn_scale), 1.0),
        _ => (None, c.attn_scale),
    };
    for (il, lw) in w.layers.iter().enumerate() {
        let la = &c.layers[il];
        let mut xn = x.clone();
        norm_rows(&mut xn, &lw.attn_norm, c.rms_eps, d);
        let mut q = linear(model, &lw.wq, &xn, None)?;
        let mut k = linear(model, &lw.wk, &xn, None)?;
        let v = linear(model, &lw.wv, &xn, None)?;
        if let Some(qn) = &lw.q_norm {
            norm_rows(&mut q, qn, c.rms_eps, hd);
        }
        if let Some(kn) = &lw.k_norm {
            norm_rows(&mut k, kn, c.rms_eps, hd);
        }
        for t in 0..n {
            let cs = rope_cache(start + t, c.rope_dim, la.rope_base, la.rope_scale);
            rope_apply(&mut q[t * q_w..(t + 1) * q_w], hd, &cs, neox);
            rope_apply(&mut k[t * k_w..(t + 1) * k_w], hd, &cs, neox);
        }
        if let Some(s) = q_scale {
            q.iter_mut().for_each(|v| *v *= s);
        }
        cache.push_layer(il, &k, &v);
        let attn = attention(model, cache, il, start, n, &q, kq_scale);
        let mut proj = linear(model, &lw.wo, &attn, None)?;
        if last_only && il + 1 == w.layers.len() && x.len() > d {
            x.drain(..x.len() - d);
            proj.drain(..proj.len() - d);
        }
        if let Some(pn) = &lw.post_attn_norm {
            norm_rows(&mut proj, pn, c.rms_eps, d);
        }
        x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);

        let mut xn = x.clone();
        norm_rows(&mut xn, &lw.ffn_norm, c.rms_eps, d);
        let mut gate = linear(model, &lw.ffn_gate, &xn, None)?;
        let up = linear(model, &lw.ffn_up, &xn, None)?;
        match c.arch {
            Arch::Gemma3 => ops::geglu(&mut gate, &up),
            Arch::Llama | Arch::Qwen2 => {
                gate.iter_mut()
                    .zip(&up)
                    .for_each(|(g, &u)| *g = v_silu(*g) * u);
            }
        }
        let mut down = linear(model, &lw.ffn_down, &gate, None)?;
        if let Some(pn) = &lw.post_ffn_norm {
            norm_rows(&mut down, pn, c.rms_eps, d);
        }
        x.iter_mut().zip(&down).for_each(|(a, b)| *a += b);
        capture.after_blocks(il + 1, &x, d);
    }
    cache.commit(n);
    Ok(x)
}

/// Flash attention of the batch's `n` queries (positions `start..start + n`) over the cached
/// keys of layer `il` (which include the batch's own), causal and windowed as the model says.
fn attention(
    model: &Model<'_>,
    cache: &KvCache,
    il: usize,
    start: usize,
    n: usize,
    q: &[f32],
    scale: f32,
) -> Vec<f32> {
    let c = &model.config;
    let (hd, hdv) = (c.head_dim, c.head_dim_v);
    let (k_w, v_w) = (c.n_head_kv * hd, c.n_head_kv * hdv);
    let group = c.n_head / c.n_head_kv;
    let window = c.layers[il].window;
    let view = cache.layer_view(il, start + n);
    // The f16 KV cache: every cached row rounded once.
    let (mut k16, mut v16) = (Vec::new(), Vec::new());
    for (kr, vr) in &view.runs {
        k16.extend(kr.iter().map(|&x| f16r(x)));
        v16.extend(vr.iter().map(|&x| f16r(x)));
    }
    let keys: Vec<(&[f32], &[f32])> = k16.chunks_exact(k_w).zip(v16.chunks_exact(v_w)).collect();
    let out: Vec<AtomicU32> = (0..n * c.n_head * hdv).map(|_| AtomicU32::new(0)).collect();
    let task = |task: usize| {
        let (t, h) = (task / c.n_head, task % c.n_head);
        let pos = start + t;
        let first = window.map_or(0, |w| (pos + 1).saturating_sub(w));
        let kvh = h / group;
        let visible = keys
            .get(first..=pos)
            .unwrap_or(&[])
            .iter()
            .map(|(k, v)| (&k[kvh * hd..][..hd], &v[kvh * hdv..][..hdv]));
        let mut o = vec![0.0f32; hdv];
        flash_attn_row(&q[(t * c.n_head + h) * hd..][..hd], visible, scale, &mut o);
        for (i, v) in o.iter().enumerate() {
            out[(t * c.n_head + h) * hdv + i].store(v.to_bits(), Ordering::Relaxed);
        }
    };
    model.par.for_each(n * c.n_head, &task);
    out.into_iter()
        .map(|v| f32::from_bits(v.into_inner()))
        .collect()
}
