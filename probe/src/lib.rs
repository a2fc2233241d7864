//! ProbeLogits verdicts, the governance pipeline and the audit chain, no_std + alloc.
//!
//! A verdict is one forward pass: the prompt's fixed part is prefilled once ([`LogitModel::prefill`]),
//! each action runs only its own tokens on a fork of that prefix ([`LogitModel::label_logits`]), and
//! the logits of the verbalizer tokens (Yes/No, ...) are turned into probabilities by a softmax
//! restricted to them, then calibrated against content-free inputs.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
extern crate alloc;

pub mod action;
pub mod audit;
pub mod calibration;
pub mod crossval;
pub mod dataset;
#[cfg(feature = "engine")]
pub mod engine;
pub mod eval_data;
pub mod gate;
pub mod json;
pub mod metrics;
pub mod mock;
pub mod pipeline;
pub mod policy;
pub mod prefilter;
pub mod primitives;
pub mod prompt;
pub mod ratelimit;
pub mod rules;
pub mod schema;
pub mod shell;
pub mod toml;
pub mod url_host;

use alloc::string::String;
use core::fmt;

pub use action::Action;
pub use gate::ProbeGate;
pub use pipeline::{Decision, Pipeline, Verdict};
pub use policy::Policy;
pub use primitives::{probe_classify, probe_yes_no, text_to_id};

/// Everything that can go wrong while computing a verdict. Any of them is a denial (fail closed).
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeError {
    /// The model or its tokenizer failed.
    Model(String),
    /// A label (verbalizer) is not one token of the model's vocabulary.
    LabelNotSingleToken(String),
    /// A logit was NaN or infinite.
    NonFiniteLogit { index: usize },
    /// The model returned a different number of logits than labels asked for.
    LogitCount { expected: usize, got: usize },
    /// Fewer than two labels, or a malformed request.
    BadRequest(String),
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::Model(m) => write!(f, "model error: {m}"),
            ProbeError::LabelNotSingleToken(l) => write!(f, "label {l:?} is not a single token"),
            ProbeError::NonFiniteLogit { index } => {
                write!(f, "label logit {index} is NaN or infinite")
            }
            ProbeError::LogitCount { expected, got } => {
                write!(f, "expected {expected} label logits, model returned {got}")
            }
            ProbeError::BadRequest(m) => write!(f, "bad request: {m}"),
        }
    }
}

/// The model interface the probe needs; implemented for inference-core in `engine` and by
/// [`mock::MockModel`] in tests.
pub trait LogitModel {
    /// A prefilled prompt prefix (a KV cache) that verdicts fork.
    type State;
    /// Tokenize with special tokens parsed (`<|im_start|>` becomes one token) and BOS added if the
    /// model wants one.
    fn tokenize(&self, text: &str) -> Result<alloc::vec::Vec<u32>, ProbeError>;
    /// Tokenize a continuation (no BOS), special tokens parsed.
    fn tokenize_continuation(&self, text: &str) -> Result<alloc::vec::Vec<u32>, ProbeError>;
    /// [`LogitModel::tokenize_continuation`] with `literal` (a byte range of `text`: the action or
    /// request, text an agent wrote) tokenized as plain text: no special token can come from it,
    /// whatever the model's vocabulary holds. Without special-token text in `literal`, the same
    /// ids as `tokenize_continuation(text)`.
    fn tokenize_continuation_with_literal(
        &self,
        text: &str,
        literal: core::ops::Range<usize>,
    ) -> Result<alloc::vec::Vec<u32>, ProbeError>;
    /// Exact single-token lookup of a piece of text.
    fn text_to_id(&self, text: &str) -> Option<u32>;
    /// Run the fixed part of a prompt once.
    fn prefill(&self, tokens: &[u32]) -> Result<Self::State, ProbeError>;
    /// Fork `prefix`, run `suffix` on the fork, return the next-token logits of `labels` only.
    fn label_logits(
        &self,
        prefix: &Self::State,
        suffix: &[u32],
        labels: &[u32],
    ) -> Result<alloc::vec::Vec<f32>, ProbeError>;
    /// blake3 digest identifying the model weights (recorded in the audit log).
    fn model_digest(&self) -> [u8; 32];
    /// The model's chat template string (GGUF `tokenizer.chat_template`), if any.
    fn chat_template(&self) -> Option<&str>;
}
