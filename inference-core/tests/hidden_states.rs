//! `LogitsRequest::LastHidden`: the last token's residual stream after a chosen number of blocks.
//! Block 0 is the token's embedding; the last block's output, normed and multiplied by the output
//! rows, gives the logits; chunking and forks do not change it; it leaves the cache as a logits
//! request does; a layer past the model is refused. Native and llama.cpp-compatible arithmetic.

use inference_core::model::{Arithmetic, KvCache, LogitsRequest, Model, ModelError};
use inference_core::quant::dequantize_row;
use inference_core::synthetic::tiny_llama_gguf;

const PROMPT: [u32; 7] = [1, 5, 9, 14, 3, 22, 7];

fn hidden(model: &Model<'_>, tokens: &[u32], layer: usize) -> Vec<f32> {
    let mut cache = KvCache::new(model, 256);
    model
        .forward(&mut cache, tokens, LogitsRequest::LastHidden(layer))
        .unwrap()
}

/// RMS norm as the models use it (the crate's own is internal).
fn rms_norm(x: &mut [f32], w: &[f32], eps: f32) {
    let mean = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let s = 1.0 / (mean + eps).sqrt();
    x.iter_mut().zip(w).for_each(|(v, g)| *v *= s * g);
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn models(bytes: &[u8]) -> Vec<Model<'_>> {
    [Arithmetic::Native, Arithmetic::LlamaCppCompat]
        .into_iter()
        .map(|a| {
            let mut m = Model::load(bytes).unwrap();
            m.set_arithmetic(a);
            m
        })
        .collect()
}

#[test]
fn block_zero_is_the_embedding_of_the_last_token() {
    let bytes = tiny_llama_gguf(11);
    for model in models(&bytes) {
        let emb = &model.weights().token_embd;
        let mut want = vec![0.0f32; model.config().n_embd];
        let last = *PROMPT.last().unwrap() as usize;
        dequantize_row(emb.ty, emb.row(last).unwrap(), &mut want).unwrap();
        assert_eq!(bits(&hidden(&model, &PROMPT, 0)), bits(&want));
    }
}

#[test]
fn the_last_block_normed_and_projected_gives_the_logits() {
    let bytes = tiny_llama_gguf(12);
    for model in models(&bytes) {
        let cfg = model.config();
        let n_layer = model.weights().layers.len();
        let mut h = hidden(&model, &PROMPT, n_layer);
        assert_eq!(h.len(), cfg.n_embd);
        rms_norm(&mut h, &model.weights().output_norm, cfg.rms_eps);
        let mut cache = KvCache::new(&model, 256);
        let logits = model
            .forward(&mut cache, &PROMPT, LogitsRequest::Last)
            .unwrap();
        let out = &model.weights().output.weight;
        let mut row = vec![0.0f32; cfg.n_embd];
        let mut worst = 0.0f32;
        let scale = logits.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        for (i, &l) in logits.iter().enumerate() {
            dequantize_row(out.ty, out.row(i).unwrap(), &mut row).unwrap();
            let dot: f32 = row.iter().zip(&h).map(|(a, b)| a * b).sum();
            worst = worst.max((dot - l).abs());
        }
        // The matmul quantises its activations (Q8), the f32 dot here does not.
        assert!(
            worst <= 0.05 * scale.max(1.0),
            "{:?}: hidden state x output rows differs from the logits by {worst} (scale {scale})",
            model.arithmetic()
        );
    }
}

#[test]
fn chunks_and_forks_give_the_same_hidden_state_and_leave_the_cache_as_logits_do() {
    let bytes = tiny_llama_gguf(13);
    let model = Model::load(&bytes).unwrap();
    let n_layer = model.weights().layers.len();
    for layer in 0..=n_layer {
        let whole = hidden(&model, &PROMPT, layer);
        let mut base = KvCache::new(&model, 256);
        model
            .forward(&mut base, &PROMPT[..3], LogitsRequest::LastHidden(layer))
            .unwrap();
        let mut fork = base.fork();
        let forked = model
            .forward(&mut fork, &PROMPT[3..], LogitsRequest::LastHidden(layer))
            .unwrap();
        assert_eq!(bits(&forked), bits(&whole), "layer {layer}");
        // Each block changes the state: no two layers give the same vector.
        if layer > 0 {
            assert_ne!(bits(&whole), bits(&hidden(&model, &PROMPT, layer - 1)));
        }
    }
    // A cache filled by a hidden-state request serves the next tokens as one filled for logits.
    let mut a = KvCache::new(&model, 256);
    let mut b = KvCache::new(&model, 256);
    model
        .forward(&mut a, &PROMPT, LogitsRequest::LastHidden(1))
        .unwrap();
    model.forward(&mut b, &PROMPT, LogitsRequest::Last).unwrap();
    let next = [4u32, 8];
    let la = model.forward(&mut a, &next, LogitsRequest::Last).unwrap();
    let lb = model.forward(&mut b, &next, LogitsRequest::Last).unwrap();
    assert_eq!(bits(&la), bits(&lb));
}

#[test]
fn a_block_past_the_model_is_refused_and_the_cache_is_unchanged() {
    let bytes = tiny_llama_gguf(14);
    let model = Model::load(&bytes).unwrap();
    let n_layer = model.weights().layers.len();
    let mut cache = KvCache::new(&model, 256);
    model
        .forward(&mut cache, &PROMPT[..2], LogitsRequest::Last)
        .unwrap();
    let err = model
        .forward(
            &mut cache,
            &PROMPT[2..],
            LogitsRequest::LastHidden(n_layer + 1),
        )
        .unwrap_err();
    assert_eq!(
        err,
        ModelError::BadLayer {
            layer: n_layer + 1,
            n_layer
        }
    );
    assert_eq!(cache.len(), 2);
}

#[test]
fn a_prompt_longer_than_a_chunk_gives_its_last_tokens_state() {
    let bytes = tiny_llama_gguf(15);
    for model in models(&bytes) {
        let n_vocab = model.config().n_vocab as u32;
        // 70 tokens: two prefill chunks of the native path (64 + 6).
        let long: Vec<u32> = (0..70u32).map(|i| 1 + (i * 7) % (n_vocab - 1)).collect();
        let n_layer = model.weights().layers.len();
        for layer in [0, 1, n_layer] {
            let whole = hidden(&model, &long, layer);
            let mut cache = KvCache::new(&model, 256);
            model
                .forward(&mut cache, &long[..69], LogitsRequest::LastRows(&[]))
                .unwrap();
            let split = model
                .forward(&mut cache, &long[69..], LogitsRequest::LastHidden(layer))
                .unwrap();
            assert_eq!(
                bits(&whole),
                bits(&split),
                "{:?}, layer {layer}",
                model.arithmetic()
            );
        }
    }
}
