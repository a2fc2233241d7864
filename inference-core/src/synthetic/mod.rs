//! Deterministic synthetic GGUF files for tests: a writer and a tiny llama model with a real
//! byte-level BPE tokenizer section (GPT-2 byte mapping, a few dozen real merges, ChatML).

mod weights;
mod writer;

pub use weights::{quantize_row, Prng};
pub use writer::{ArrayValue, GgufWriter, Value};

use crate::gguf::GgmlType;
use crate::quant::QuantError;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

/// Merges of the tiny tokenizer, in rank order (GPT-2 byte-level spelling, Ġ = space).
pub const TINY_MERGES: [&str; 49] = [
    "Ġ t", "h e", "i n", "Ġ a", "e r", "o n", "Ġ s", "r e", "Ġt he", "a t", "o r", "e n", "Ġ w",
    "i s", "e s", "Ġ o", "Ġ c", "i t", "a n", "Ġ f", "in g", "Ġ d", "Ġ p", "a r", "a l", "Ġ b",
    "o u", "l e", "Ġ m", "Ġ i", "Ġ h", "Ġo f", "n d", "Ġa nd", "Ġt o", "Ġ Y", "ĠY es", "Ġ N",
    "ĠN o", "Y es", "N o", "Ġ re", "Ġi s", "Ġ n", "a s", "Ġ l", "s t", "i m", "Ġ e",
];

/// Special tokens appended after the merged tokens.
pub const TINY_SPECIALS: [&str; 3] = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"];

/// ChatML, as SmolLM2 ships it.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// GPT-2's bytes_to_unicode: the printable character standing for each byte.
pub fn byte_to_unicode(b: u8) -> char {
    let printable = |c: u8| {
        (b'!'..=b'~').contains(&c) || (0xa1..=0xac).contains(&c) || (0xae..=0xff).contains(&c)
    };
    if printable(b) {
        return char::from(b);
    }
    let n = (0..b).filter(|&c| !printable(c)).count() as u32;
    char::from_u32(256 + n).unwrap_or('?')
}

/// The tiny vocabulary: 256 byte tokens (token id = byte value), merged tokens, specials.
pub fn tiny_vocab() -> Vec<String> {
    let mut v: Vec<String> = (0..=255u8)
        .map(|b| byte_to_unicode(b).to_string())
        .collect();
    v.extend(TINY_MERGES.iter().map(|m| m.replace(' ', "")));
    v.extend(TINY_SPECIALS.iter().map(|s| s.to_string()));
    v
}

/// Shape and types of a synthetic llama model.
#[derive(Clone, Debug)]
pub struct TinyLlamaSpec {
    pub seed: u64,
    pub n_layers: u32,
    pub n_embd: u32,
    pub n_heads: u32,
    pub n_kv_heads: u32,
    pub n_ff: u32,
    pub n_ctx: u32,
    /// Type of token_embd.weight (also the tied output projection).
    pub embd_type: GgmlType,
    /// Type of the attention and feed-forward matrices.
    pub weight_type: GgmlType,
    /// Write a separate output.weight of this type instead of tying it to token_embd.
    pub output_type: Option<GgmlType>,
}

impl TinyLlamaSpec {
    /// The SmolLM2-like default: 2 blocks, embedding 64, 4 heads, 2 KV heads, ff 128,
    /// context 256, Q8_0 embeddings, Q4_1 matrices, F32 norms, tied output.
    pub fn new(seed: u64) -> TinyLlamaSpec {
        TinyLlamaSpec {
            seed,
            n_layers: 2,
            n_embd: 64,
            n_heads: 4,
            n_kv_heads: 2,
            n_ff: 128,
            n_ctx: 256,
            embd_type: GgmlType::Q8_0,
            weight_type: GgmlType::Q4_1,
            output_type: None,
        }
    }
}

/// The default tiny llama model (see [`TinyLlamaSpec::new`]).
pub fn tiny_llama_gguf(seed: u64) -> Vec<u8> {
    // The default spec only uses supported types with block-multiple rows, so this cannot fail.
    tiny_llama_gguf_with(&TinyLlamaSpec::new(seed)).unwrap_or_default()
}

/// Square root by Newton's method (core has no f32::sqrt).
fn sqrt_newton(v: f32) -> f32 {
    let mut x = v.max(1.0);
    for _ in 0..32 {
        x = 0.5 * (x + v / x);
    }
    x
}

fn random(rng: &mut Prng, n: usize, center: f32, amp: f32) -> Vec<f32> {
    (0..n).map(|_| center + amp * rng.next_f32()).collect()
}

/// A tiny llama model with the given shape and types; errors when a row length is not a
/// multiple of a type's block size or a type is not supported for compute.
pub fn tiny_llama_gguf_with(spec: &TinyLlamaSpec) -> Result<Vec<u8>, QuantError> {
    let vocab = tiny_vocab();
    let n_vocab = vocab.len() as u64;
    let (e, ff) = (spec.n_embd as u64, spec.n_ff as u64);
    let head_dim = spec.n_embd / spec.n_heads.max(1);
    let kv = (head_dim * spec.n_kv_heads) as u64;
    let mut w = GgufWriter::new();
    w.add_str("general.architecture", "llama")
        .add_str("general.name", "tiny-llama-synthetic")
        .add_u32("llama.block_count", spec.n_layers)
        .add_u32("llama.context_length", spec.n_ctx)
        .add_u32("llama.embedding_length", spec.n_embd)
        .add_u32("llama.feed_forward_length", spec.n_ff)
        .add_u32("llama.attention.head_count", spec.n_heads)
        .add_u32("llama.attention.head_count_kv", spec.n_kv_heads)
        .add_u32("llama.rope.dimension_count", head_dim)
        .add_f32("llama.rope.freq_base", 10000.0)
        .add_f32("llama.attention.layer_norm_rms_epsilon", 1e-5)
        .add_u32("llama.vocab_size", n_vocab as u32)
        .add_str("tokenizer.ggml.model", "gpt2")
        .add_str("tokenizer.ggml.pre", "smollm");
    let n_normal = vocab.len() - TINY_SPECIALS.len();
    let types: Vec<i32> = (0..vocab.len())
        .map(|i| if i < n_normal { 1 } else { 3 })
        .collect();
    w.add(
        "tokenizer.ggml.tokens",
        Value::Array(ArrayValue::Str(vocab)),
    )
    .add(
        "tokenizer.ggml.token_type",
        Value::Array(ArrayValue::I32(types)),
    )
    .add(
        "tokenizer.ggml.merges",
        Value::Array(ArrayValue::Str(
            TINY_MERGES.iter().map(|m| m.to_string()).collect(),
        )),
    )
    .add_u32("tokenizer.ggml.bos_token_id", n_normal as u32)
    .add_u32("tokenizer.ggml.eos_token_id", n_normal as u32 + 1)
    .add_u32("tokenizer.ggml.padding_token_id", n_normal as u32 + 2)
    .add_bool("tokenizer.ggml.add_bos_token", false)
    .add_str("tokenizer.chat_template", CHATML_TEMPLATE);

    let mut rng = Prng::new(spec.seed);
    let scale = |fan_in: u64| 1.7 / sqrt_newton(fan_in as f32);
    w.add_tensor_f32(
        "token_embd.weight",
        &[e, n_vocab],
        spec.embd_type,
        &random(&mut rng, (e * n_vocab) as usize, 0.0, 1.0),
    )?;
    for l in 0..spec.n_layers {
        let name = |t: &str| alloc::format!("blk.{l}.{t}.weight");
        let wt = spec.weight_type;
        let norm = random(&mut rng, e as usize, 1.0, 0.1);
        w.add_tensor_f32(&name("attn_norm"), &[e], GgmlType::F32, &norm)?;
        for (t, rows) in [
            ("attn_q", e),
            ("attn_k", kv),
            ("attn_v", kv),
            ("attn_output", e),
        ] {
            let v = random(&mut rng, (e * rows) as usize, 0.0, scale(e));
            w.add_tensor_f32(&name(t), &[e, rows], wt, &v)?;
        }
        let norm = random(&mut rng, e as usize, 1.0, 0.1);
        w.add_tensor_f32(&name("ffn_norm"), &[e], GgmlType::F32, &norm)?;
        for t in ["ffn_gate", "ffn_up"] {
            let v = random(&mut rng, (e * ff) as usize, 0.0, scale(e));
            w.add_tensor_f32(&name(t), &[e, ff], wt, &v)?;
        }
        let v = random(&mut rng, (e * ff) as usize, 0.0, scale(ff));
        w.add_tensor_f32(&name("ffn_down"), &[ff, e], wt, &v)?;
    }
    w.add_tensor_f32(
        "output_norm.weight",
        &[e],
        GgmlType::F32,
        &vec![1.0; e as usize],
    )?;
    if let Some(ot) = spec.output_type {
        let v = random(&mut rng, (e * n_vocab) as usize, 0.0, scale(e));
        w.add_tensor_f32("output.weight", &[e, n_vocab], ot, &v)?;
    }
    Ok(w.to_bytes())
}
