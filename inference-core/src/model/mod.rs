//! The transformer: llama (SmolLM2 and other llama-family GGUFs), qwen2 and gemma3, run zero-copy from the
//! GGUF bytes with a copy-free forkable KV cache.

mod attention;
mod cache;
mod compat;
mod config;
mod forward;
pub(crate) mod ops;
mod weights;

pub use cache::{Checkpoint, KvCache};
pub use compat::Arithmetic;
pub use config::{Arch, Config, LayerAttention};
pub use weights::{LayerWeights, Linear, Weights};

use crate::gguf::{Gguf, GgufError, TensorInfo};
use crate::kernels::{Isa, K8Packed};
use crate::parallel::{Parallel, Sequential};
use crate::tokenizer::{Tokenizer, TokenizerError};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use ops::Rope;

/// Which next-token logits `forward` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogitsRequest<'r> {
    /// All `n_vocab` logits after the last token.
    Last,
    /// Only these vocabulary rows after the last token, in this order (the rest are never computed).
    LastRows(&'r [u32]),
    /// `n_vocab` logits after every token of the batch, token-major.
    All,
    /// No logits: the last token's residual stream after this many transformer blocks (0: its
    /// embedding; `n_layer`: the last block's output, before the output norm), `n_embd` values.
    LastHidden(usize),
}

/// Why a model could not be loaded or run.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelError {
    Gguf(GgufError),
    Tokenizer(TokenizerError),
    UnsupportedArchitecture(String),
    UnsupportedTensorType {
        tensor: String,
        ty: String,
    },
    MissingTensor(String),
    BadTensorShape {
        tensor: String,
        reason: String,
    },
    BadConfig(String),
    EmptyInput,
    /// The batch does not fit: `cached + requested > capacity`.
    ContextOverflow {
        cached: usize,
        requested: usize,
        capacity: usize,
    },
    BadTokenId {
        id: u32,
        n_vocab: usize,
    },
    /// The cache was made for a model of another shape.
    CacheMismatch,
    BadCheckpoint {
        checkpoint: usize,
        cached: usize,
    },
    Quant(String),
    /// A hidden state was asked for after more blocks than the model has.
    BadLayer {
        layer: usize,
        n_layer: usize,
    },
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelError::Gguf(e) => write!(f, "{e}"),
            ModelError::Tokenizer(e) => write!(f, "tokenizer: {e}"),
            ModelError::UnsupportedArchitecture(a) => {
                write!(f, "unsupported architecture '{a}' (supported: llama, qwen2, gemma3)")
            }
            ModelError::UnsupportedTensorType { tensor, ty } => {
                write!(f, "tensor '{tensor}' has unsupported type {ty}")
            }
            ModelError::MissingTensor(t) => write!(f, "missing tensor '{t}'"),
            ModelError::BadTensorShape { tensor, reason } => write!(f, "tensor '{tensor}': {reason}"),
            ModelError::BadConfig(r) => write!(f, "bad model config: {r}"),
            ModelError::EmptyInput => write!(f, "empty input: no tokens to evaluate"),
            ModelError::ContextOverflow { cached, requested, capacity } => write!(
                f,
                "context overflow: {cached} cached + {requested} new tokens exceed the capacity of {capacity}"
            ),
            ModelError::BadTokenId { id, n_vocab } => write!(f, "token id {id} out of range (vocabulary {n_vocab})"),
            ModelError::CacheMismatch => write!(f, "the KV cache was made for another model"),
            ModelError::BadCheckpoint { checkpoint, cached } => {
                write!(f, "checkpoint at {checkpoint} positions is past the {cached} cached positions")
            }
            ModelError::Quant(e) => write!(f, "kernel error: {e}"),
            ModelError::BadLayer { layer, n_layer } => write!(
                f,
                "hidden state after block {layer} asked of a model with {n_layer} blocks"
            ),
        }
    }
}

impl From<GgufError> for ModelError {
    fn from(e: GgufError) -> Self {
        ModelError::Gguf(e)
    }
}

impl From<TokenizerError> for ModelError {
    fn from(e: TokenizerError) -> Self {
        ModelError::Tokenizer(e)
    }
}

/// A loaded model borrowing its weights from the GGUF bytes.
pub struct Model<'a> {
    config: Config,
    weights: Weights<'a>,
    tokenizer: Tokenizer,
    /// One RoPE table per layer.
    ropes: Vec<Rope>,
    isa: Isa,
    arith: Arithmetic,
    par: Box<dyn Parallel + Send + 'a>,
}

impl<'a> Model<'a> {
    /// Parses `bytes` as GGUF and checks every tensor the architecture needs; nothing is dequantised
    /// except the small norm vectors and biases.
    pub fn load(bytes: &'a [u8]) -> Result<Model<'a>, ModelError> {
        let g = Gguf::parse(bytes)?;
        let n_vocab = g
            .tensor("token_embd.weight")
            .map(|t| t.n_rows())
            .ok_or_else(|| ModelError::MissingTensor("token_embd.weight".into()))?;
        let config = Config::from_gguf(&g, n_vocab)?;
        let weights = Weights::load(&g, &config)?;
        let tokenizer = Tokenizer::from_gguf(&g)?;
        let neox = config.arch.rope_neox();
        let ropes = config
            .layers
            .iter()
            .map(|l| Rope::new(config.rope_dim, l.rope_base, l.rope_scale, neox))
            .collect();
        Ok(Model {
            config,
            weights,
            tokenizer,
            ropes,
            isa: Isa::detect(),
            arith: Arithmetic::Native,
            par: Box::new(Sequential),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn weights(&self) -> &Weights<'a> {
        &self.weights
    }

    /// Regroups the K-quant (Q4_K, Q6_K) block weights for the AVX2 prefill tile
    /// ([`crate::kernels::K8Packed`]): a one-time cost at load and about one more copy of those
    /// weights in memory, for faster prompts, verdicts and decoding; results are
    /// bit-identical. Does nothing without AVX2 (where the tile does not run). Packs on the
    /// model's threads (call [`Model::set_parallel`] first). Returns the bytes added.
    pub fn pack_k_quant_weights(&mut self) -> usize {
        if self.isa != Isa::Avx2 {
            return 0;
        }
        // The weights not packed yet (a second call adds nothing), in the order assigned below.
        let infos: Vec<Option<TensorInfo<'a>>> = self
            .weights
            .layers
            .iter()
            .flat_map(|lw| lw.linears().map(|l| l.packed.is_none().then_some(l.weight)))
            .collect();
        // One task per weight across the pool; each result in its own slot.
        let packed: Vec<spin::Mutex<Option<K8Packed>>> =
            infos.iter().map(|_| spin::Mutex::new(None)).collect();
        self.par.for_each(infos.len(), &|i| {
            *packed[i].lock() = infos[i].as_ref().and_then(K8Packed::new);
        });
        let mut added = 0;
        let linears = self
            .weights
            .layers
            .iter_mut()
            .flat_map(|lw| lw.linears_mut());
        for (l, slot) in linears.zip(packed) {
            if let Some(p) = slot.into_inner() {
                added += p.bytes();
                l.packed = Some(Arc::new(p));
            }
        }
        added
    }

    /// Runs the kernels on `par` (for example a thread pool) instead of the calling thread alone.
    pub fn set_parallel(&mut self, par: Box<dyn Parallel + Send + 'a>) {
        self.par = par;
    }

    /// Forces an instruction set (clamped to what the CPU supports); for tests and benchmarks.
    pub fn set_isa(&mut self, isa: Isa) {
        self.isa = isa.clamp_to_cpu();
    }

    /// Selects the arithmetic of later `forward` calls (default [`Arithmetic::Native`]). A KV
    /// cache should be filled and extended in one mode: the modes' K/V rows differ slightly.
    pub fn set_arithmetic(&mut self, arith: Arithmetic) {
        self.arith = arith;
    }

    pub fn arithmetic(&self) -> Arithmetic {
        self.arith
    }

    /// Evaluates `tokens` after the positions already in `cache`, appends them to it and returns the
    /// logits asked for. On error the cache is unchanged.
    pub fn forward(
        &self,
        cache: &mut KvCache,
        tokens: &[u32],
        req: LogitsRequest<'_>,
    ) -> Result<Vec<f32>, ModelError> {
        if tokens.is_empty() {
            return Err(ModelError::EmptyInput);
        }
        if !cache.fits(self) {
            return Err(ModelError::CacheMismatch);
        }
        if tokens.len() > cache.remaining() {
            return Err(ModelError::ContextOverflow {
                cached: cache.len(),
                requested: tokens.len(),
                capacity: cache.capacity(),
            });
        }
        let n_vocab = self.config.n_vocab;
        if let Some(&id) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(ModelError::BadTokenId { id, n_vocab });
        }
        if let LogitsRequest::LastRows(rows) = req {
            if let Some(&id) = rows.iter().find(|&&t| t as usize >= n_vocab) {
                return Err(ModelError::BadTokenId { id, n_vocab });
            }
        }
        if let LogitsRequest::LastHidden(layer) = req {
            let n_layer = self.weights.layers.len();
            if layer > n_layer {
                return Err(ModelError::BadLayer { layer, n_layer });
            }
        }
        let start = cache.checkpoint();
        let result = match self.arith {
            Arithmetic::Native => forward::run(self, cache, tokens, req),
            Arithmetic::LlamaCppCompat => compat::run(self, cache, tokens, req),
        };
        if result.is_err() {
            cache.rollback_uncommitted();
            // Chunks committed before the failure are dropped too.
            cache.restore(start)?;
        }
        result
    }
}
