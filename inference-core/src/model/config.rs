//! Hyperparameters of a transformer, read from the `<arch>.*` GGUF metadata.

use super::ModelError;
use crate::gguf::Gguf;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// The model families this engine runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// Llama and its derivatives (SmolLM2, Mistral-style GGUFs): SwiGLU, normal RoPE.
    Llama,
    /// Qwen2: like llama with Q/K/V biases and NeoX RoPE.
    Qwen2,
    /// Gemma 3: GeGLU (GELU-tanh), QK-norm, sandwich norms, sliding-window layers, NeoX RoPE.
    Gemma3,
}

impl Arch {
    /// The architecture named by `general.architecture`, or an error naming it.
    pub fn from_name(name: &str) -> Result<Arch, ModelError> {
        match name {
            "llama" => Ok(Arch::Llama),
            "qwen2" => Ok(Arch::Qwen2),
            "gemma3" => Ok(Arch::Gemma3),
            other => Err(ModelError::UnsupportedArchitecture(other.to_string())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Gemma3 => "gemma3",
        }
    }

    /// NeoX RoPE rotates pairs (i, i + d/2); normal RoPE rotates adjacent pairs (2i, 2i + 1).
    pub fn rope_neox(self) -> bool {
        !matches!(self, Arch::Llama)
    }
}

/// Per-layer attention geometry that differs between local (sliding window) and global layers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerAttention {
    /// Keys further back than this many positions are masked; `None` = full causal attention.
    pub window: Option<usize>,
    pub rope_base: f32,
    /// Positions are multiplied by this before rotation (linear RoPE scaling: 1 / factor).
    pub rope_scale: f32,
}

/// Model hyperparameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub arch: Arch,
    pub n_vocab: usize,
    pub n_ctx_train: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    /// Length of one query/key head.
    pub head_dim: usize,
    /// Length of one value head.
    pub head_dim_v: usize,
    /// Number of leading dimensions of each head that RoPE rotates.
    pub rope_dim: usize,
    pub rms_eps: f32,
    /// Scale applied to Q·K.
    pub attn_scale: f32,
    /// `tanh` soft cap of the final logits (`cap * tanh(x / cap)`), if the model sets one.
    pub final_logit_softcap: Option<f32>,
    /// Attention geometry of each layer.
    pub layers: Vec<LayerAttention>,
}

fn key(arch: &str, name: &str) -> String {
    format!("{arch}.{name}")
}

fn required_u32(g: &Gguf<'_>, arch: &str, name: &str) -> Result<usize, ModelError> {
    let k = key(arch, name);
    match g.get_u32(&k) {
        Some(v) if v > 0 => Ok(v as usize),
        Some(_) => Err(ModelError::BadConfig(format!("{k} is zero"))),
        None => Err(ModelError::BadConfig(format!("missing metadata {k}"))),
    }
}

impl Config {
    /// Reads the hyperparameters of `g`; `n_vocab` comes from the embedding tensor.
    pub fn from_gguf(g: &Gguf<'_>, n_vocab: usize) -> Result<Config, ModelError> {
        let arch_name = g
            .get_str("general.architecture")
            .ok_or_else(|| ModelError::BadConfig("missing general.architecture".into()))?;
        let arch = Arch::from_name(arch_name)?;
        let a = arch_name;
        let n_embd = required_u32(g, a, "embedding_length")?;
        let n_layer = required_u32(g, a, "block_count")?;
        let n_ff = required_u32(g, a, "feed_forward_length")?;
        let n_head = required_u32(g, a, "attention.head_count")?;
        let n_head_kv = g
            .get_u32(&key(a, "attention.head_count_kv"))
            .map_or(n_head, |v| v as usize);
        if n_head_kv == 0 || n_head % n_head_kv != 0 {
            return Err(ModelError::BadConfig(format!(
                "head_count {n_head} is not a multiple of head_count_kv {n_head_kv}"
            )));
        }
        let n_ctx_train = g
            .get_u32(&key(a, "context_length"))
            .map_or(2048, |v| v as usize);
        let head_dim = match g.get_u32(&key(a, "attention.key_length")) {
            Some(v) if v > 0 => v as usize,
            _ if n_embd % n_head == 0 => n_embd / n_head,
            _ => {
                return Err(ModelError::BadConfig(
                    "embedding_length not divisible by head_count".into(),
                ))
            }
        };
        let head_dim_v = g
            .get_u32(&key(a, "attention.value_length"))
            .map_or(head_dim, |v| v as usize);
        let rope_dim = g
            .get_u32(&key(a, "rope.dimension_count"))
            .map_or(head_dim, |v| v as usize);
        if rope_dim == 0
            || rope_dim > head_dim
            || rope_dim > 512
            || head_dim > 512
            || head_dim_v > 512
            || !rope_dim.is_multiple_of(2)
        {
            return Err(ModelError::BadConfig(format!(
                "bad rope dimension {rope_dim}"
            )));
        }
        let rms_eps = g
            .get_f32(&key(a, "attention.layer_norm_rms_epsilon"))
            .unwrap_or(1e-5);
        let rope_base = g.get_f32(&key(a, "rope.freq_base")).unwrap_or(10_000.0);
        let rope_scale = match g.get_str(&key(a, "rope.scaling.type")) {
            None | Some("none") => 1.0,
            Some("linear") => {
                let factor = g.get_f32(&key(a, "rope.scaling.factor")).unwrap_or(1.0);
                if factor > 0.0 {
                    1.0 / factor
                } else {
                    1.0
                }
            }
            Some(other) => {
                return Err(ModelError::BadConfig(format!(
                    "unsupported rope scaling type '{other}'"
                )))
            }
        };
        let softcap = g
            .get_f32(&key(a, "final_logit_softcapping"))
            .filter(|c| *c > 0.0);
        let window = g
            .get_u32(&key(a, "attention.sliding_window"))
            .map(|w| w as usize)
            .filter(|w| *w > 0);
        let layers = (0..n_layer)
            .map(|il| match arch {
                // Gemma 3: five local layers (window, rope base 10k) then one global layer.
                Arch::Gemma3 if il % 6 < 5 && window.is_some() => LayerAttention {
                    window,
                    rope_base: 10_000.0,
                    rope_scale: 1.0,
                },
                _ => LayerAttention {
                    window: None,
                    rope_base,
                    rope_scale,
                },
            })
            .collect();
        let attn_scale = 1.0 / crate::model::ops::sqrtf(head_dim as f32);
        Ok(Config {
            arch,
            n_vocab,
            n_ctx_train,
            n_embd,
            n_layer,
            n_ff,
            n_head,
            n_head_kv,
            head_dim,
            head_dim_v,
            rope_dim,
            rms_eps,
            attn_scale,
            final_logit_softcap: softcap,
            layers,
        })
    }
}
