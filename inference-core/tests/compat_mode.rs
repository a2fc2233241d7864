//! `Arithmetic::LlamaCppCompat` on the synthetic model: selectable, close to the native mode, and,
//! like it, independent of how a prompt is split (a fork continued with the suffix gives the
//! whole prompt's logits bit for bit).

use inference_core::model::{Arithmetic, KvCache, LogitsRequest, Model};
use inference_core::synthetic::tiny_llama_gguf;

fn tokens(model: &Model<'_>) -> Vec<u32> {
    let t = model
        .tokenizer()
        .encode("hello world, the quick brown fox", true, true);
    assert!(t.len() >= 4, "{t:?}");
    t
}

fn logits(model: &Model<'_>, toks: &[u32]) -> Vec<f32> {
    let mut cache = KvCache::new(model, toks.len());
    model
        .forward(&mut cache, toks, LogitsRequest::Last)
        .unwrap()
}

#[test]
fn default_is_native_and_compat_is_close_but_different() {
    let bytes = tiny_llama_gguf(11);
    let mut model = Model::load(&bytes).unwrap();
    assert_eq!(model.arithmetic(), Arithmetic::Native);
    let toks = tokens(&model);
    let native = logits(&model, &toks);
    model.set_arithmetic(Arithmetic::LlamaCppCompat);
    let compat = logits(&model, &toks);
    assert_eq!(native.len(), compat.len());
    assert_ne!(native, compat);
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in native.iter().zip(&compat) {
        ab += x as f64 * y as f64;
        aa += x as f64 * x as f64;
        bb += y as f64 * y as f64;
    }
    let cos = ab / (aa.sqrt() * bb.sqrt());
    assert!(cos > 0.99, "cosine {cos}");
    // Deterministic.
    assert_eq!(compat, logits(&model, &toks));
}

#[test]
fn compat_fork_and_split_match_the_whole_prompt_bit_for_bit() {
    let bytes = tiny_llama_gguf(12);
    let mut model = Model::load(&bytes).unwrap();
    model.set_arithmetic(Arithmetic::LlamaCppCompat);
    let toks = tokens(&model);
    let whole = logits(&model, &toks);
    let cut = toks.len() / 2;
    let mut cache = KvCache::new(&model, toks.len());
    model
        .forward(&mut cache, &toks[..cut], LogitsRequest::Last)
        .unwrap();
    let mut fork = cache.fork();
    let split = model
        .forward(&mut fork, &toks[cut..], LogitsRequest::Last)
        .unwrap();
    assert_eq!(split, whole);
    // Selected rows equal the same rows of the full vector; All's last row equals Last.
    let rows = [3u32, 0, 7];
    let mut c2 = KvCache::new(&model, toks.len());
    let sel = model
        .forward(&mut c2, &toks, LogitsRequest::LastRows(&rows))
        .unwrap();
    assert_eq!(
        sel,
        rows.iter().map(|&r| whole[r as usize]).collect::<Vec<_>>()
    );
    let mut c3 = KvCache::new(&model, toks.len());
    let all = model.forward(&mut c3, &toks, LogitsRequest::All).unwrap();
    assert_eq!(&all[all.len() - whole.len()..], &whole[..]);
}
