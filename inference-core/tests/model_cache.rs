//! Forward pass and KV cache behaviour: batch splits, forks and checkpoints give bit-identical logits;
//! bad input is refused with an error. On the synthetic model and (when present) SmolLM2.

mod common;

use inference_core::model::{KvCache, LogitsRequest, Model, ModelError};
use inference_core::parallel::ThreadPool;
use inference_core::synthetic::tiny_llama_gguf;

fn last(model: &Model<'_>, tokens: &[u32]) -> Vec<f32> {
    let mut cache = KvCache::new(model, 256);
    model
        .forward(&mut cache, tokens, LogitsRequest::Last)
        .unwrap()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Fork, checkpoint/restore and batch-split identities on `model` for `prefix` + `suffix`.
fn check_identities(model: &Model<'_>, prefix: &[u32], suffix: &[u32], other: &[u32]) {
    let whole: Vec<u32> = prefix.iter().chain(suffix).copied().collect();
    let reference = last(model, &whole);

    // A fork shares the prefix and gives the same logits as the whole prompt in one batch.
    let mut base = KvCache::new(model, 256);
    model
        .forward(&mut base, prefix, LogitsRequest::Last)
        .unwrap();
    let mut fork = base.fork();
    assert_eq!(fork.len(), prefix.len());
    assert!(
        fork.shared_segments() >= 1,
        "the fork must share the prefix"
    );
    let forked = model
        .forward(&mut fork, suffix, LogitsRequest::Last)
        .unwrap();
    assert_eq!(
        bits(&forked),
        bits(&reference),
        "fork + suffix differs from the whole prompt"
    );

    // The original cache is untouched by the fork's work and can take another suffix.
    let other_whole: Vec<u32> = prefix.iter().chain(other).copied().collect();
    let from_base = model
        .forward(&mut base, other, LogitsRequest::Last)
        .unwrap();
    assert_eq!(bits(&from_base), bits(&last(model, &other_whole)));

    // Checkpoint / restore: run one suffix, roll back, run it again.
    let mut cache = KvCache::new(model, 256);
    model
        .forward(&mut cache, prefix, LogitsRequest::Last)
        .unwrap();
    let cp = cache.checkpoint();
    model
        .forward(&mut cache, other, LogitsRequest::Last)
        .unwrap();
    cache.restore(cp).unwrap();
    assert_eq!(cache.len(), prefix.len());
    let restored = model
        .forward(&mut cache, suffix, LogitsRequest::Last)
        .unwrap();
    assert_eq!(
        bits(&restored),
        bits(&reference),
        "restore + suffix differs"
    );

    // Restoring a fork to inside its shared prefix, then re-running, also matches.
    let mut fork2 = base.fork();
    fork2
        .restore(inference_core::model::KvCache::new(model, 1).checkpoint())
        .unwrap();
    assert!(fork2.is_empty());
    let again = model
        .forward(&mut fork2, &whole, LogitsRequest::Last)
        .unwrap();
    assert_eq!(bits(&again), bits(&reference));

    // Token-by-token decode gives the same logits as one batch.
    let mut step = KvCache::new(model, 256);
    let mut out = Vec::new();
    for &t in &whole {
        out = model.forward(&mut step, &[t], LogitsRequest::Last).unwrap();
    }
    assert_eq!(
        bits(&out),
        bits(&reference),
        "token-by-token decode differs from the batch"
    );
}

#[test]
fn synthetic_fork_checkpoint_and_batch_split_are_bit_identical() {
    let bytes = tiny_llama_gguf(7);
    let model = Model::load(&bytes).unwrap();
    let prefix: Vec<u32> = (0..40).map(|i| (i * 7 + 3) % 256).collect();
    check_identities(&model, &prefix, &[10, 20, 30, 40, 50], &[5, 6]);
}

#[test]
fn synthetic_threads_match_sequential_bitwise() {
    let bytes = tiny_llama_gguf(11);
    let seq = Model::load(&bytes).unwrap();
    let mut par = Model::load(&bytes).unwrap();
    par.set_parallel(Box::new(ThreadPool::new(2)));
    let tokens: Vec<u32> = (0..70).map(|i| (i * 13 + 1) % 256).collect();
    assert_eq!(bits(&last(&seq, &tokens)), bits(&last(&par, &tokens)));
}

#[test]
fn synthetic_last_rows_and_all_agree_with_last() {
    let bytes = tiny_llama_gguf(3);
    let model = Model::load(&bytes).unwrap();
    let n_vocab = model.config().n_vocab;
    let tokens = [1u32, 2, 3, 4, 5, 6];
    let full = last(&model, &tokens);
    assert_eq!(full.len(), n_vocab);
    let rows = [5u32, 0, (n_vocab - 1) as u32];
    let mut cache = KvCache::new(&model, 64);
    let some = model
        .forward(&mut cache, &tokens, LogitsRequest::LastRows(&rows))
        .unwrap();
    assert_eq!(some.len(), 3);
    for (i, &r) in rows.iter().enumerate() {
        assert_eq!(some[i].to_bits(), full[r as usize].to_bits());
    }
    let mut cache = KvCache::new(&model, 64);
    let all = model
        .forward(&mut cache, &tokens, LogitsRequest::All)
        .unwrap();
    assert_eq!(all.len(), tokens.len() * n_vocab);
    assert_eq!(bits(&all[(tokens.len() - 1) * n_vocab..]), bits(&full));
    assert_eq!(bits(&all[..n_vocab]), bits(&last(&model, &tokens[..1])));
}

#[test]
fn bad_input_is_an_error_and_leaves_the_cache_unchanged() {
    let bytes = tiny_llama_gguf(5);
    let model = Model::load(&bytes).unwrap();
    let n_vocab = model.config().n_vocab as u32;
    let mut cache = KvCache::new(&model, 8);
    assert_eq!(
        model.forward(&mut cache, &[], LogitsRequest::Last),
        Err(ModelError::EmptyInput)
    );
    assert!(matches!(
        model.forward(&mut cache, &[1, 2, n_vocab], LogitsRequest::Last),
        Err(ModelError::BadTokenId { id, .. }) if id == n_vocab
    ));
    assert!(matches!(
        model.forward(&mut cache, &[1], LogitsRequest::LastRows(&[n_vocab + 5])),
        Err(ModelError::BadTokenId { .. })
    ));
    model
        .forward(&mut cache, &[1, 2, 3, 4, 5], LogitsRequest::Last)
        .unwrap();
    assert!(matches!(
        model.forward(&mut cache, &[1, 2, 3, 4], LogitsRequest::Last),
        Err(ModelError::ContextOverflow {
            cached: 5,
            requested: 4,
            capacity: 8
        })
    ));
    assert_eq!(cache.len(), 5);
    let mut longer = KvCache::new(&model, 8);
    model
        .forward(&mut longer, &[1, 2, 3, 4, 5, 6], LogitsRequest::Last)
        .unwrap();
    let cp = longer.checkpoint();
    longer
        .restore(KvCache::new(&model, 8).checkpoint())
        .unwrap();
    assert!(matches!(
        longer.restore(cp),
        Err(ModelError::BadCheckpoint { .. })
    ));
}

#[test]
fn unsupported_architecture_is_refused_by_name() {
    let mut bytes = tiny_llama_gguf(1);
    // Same-length rename of every "llama" (the architecture and its metadata key prefix).
    let n = bytes.len();
    for i in 0..n.saturating_sub(5) {
        if &bytes[i..i + 5] == b"llama" {
            bytes[i..i + 5].copy_from_slice(b"mamba");
        }
    }
    let result = Model::load(&bytes).map(|_| ());
    match result {
        Err(e @ ModelError::UnsupportedArchitecture(_)) => {
            assert!(e.to_string().contains("mamba"), "{e}")
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("an unknown architecture was accepted"),
    }
}

#[test]
fn smollm2_fork_and_checkpoint_are_bit_identical() {
    let Some(bytes) = common::read_model(common::SMOLLM2) else {
        return;
    };
    let mut model = Model::load(&bytes).unwrap();
    model.set_parallel(Box::new(ThreadPool::new(2)));
    let tok = model.tokenizer();
    let prefix = tok.encode(
        "<|im_start|>system\nYou judge actions.<|im_end|>\n<|im_start|>user\n",
        true,
        true,
    );
    let suffix = tok.encode(
        "rm -rf /home<|im_end|>\n<|im_start|>assistant\n",
        false,
        true,
    );
    let other = tok.encode("ls -la<|im_end|>\n", false, true);
    check_identities(&model, &prefix, &suffix, &other);
}

/// When only the last token's logits are asked, the last layer runs its attention output and FFN
/// for that token alone, but still caches every token's K/V: over several 64-token chunks the
/// result equals the last row of `All`, and a continuation after it equals a fresh run.
#[test]
fn synthetic_last_only_shortcut_over_several_chunks() {
    let bytes = tiny_llama_gguf(5);
    let model = Model::load(&bytes).unwrap();
    let n_vocab = model.config().n_vocab;
    let tokens: Vec<u32> = (0..150).map(|i| (i * 31 + 7) % 256).collect();
    let mut cache = KvCache::new(&model, 256);
    let all = model
        .forward(&mut cache, &tokens, LogitsRequest::All)
        .unwrap();
    let mut cache = KvCache::new(&model, 256);
    let last_only = model
        .forward(&mut cache, &tokens, LogitsRequest::Last)
        .unwrap();
    assert_eq!(bits(&all[149 * n_vocab..]), bits(&last_only));
    let more = [9u32, 8, 7, 6, 5];
    let continued = model
        .forward(&mut cache, &more, LogitsRequest::Last)
        .unwrap();
    let whole: Vec<u32> = tokens.iter().chain(more.iter()).copied().collect();
    assert_eq!(bits(&continued), bits(&last(&model, &whole)));
}
