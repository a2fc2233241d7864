//! Token types and load errors of the tokenizer.

use alloc::string::String;
use core::fmt;

/// Token types of `tokenizer.ggml.token_type` (llama.cpp's `llama_token_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenType {
    Undefined,
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenType {
    pub(crate) fn from_i32(v: i32) -> TokenType {
        match v {
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Undefined,
        }
    }
}

/// Why a GGUF's tokenizer could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenizerError {
    /// A required metadata key is absent or has the wrong type.
    MissingKey(&'static str),
    /// `tokenizer.ggml.model` names a tokenizer this engine does not implement.
    UnsupportedModel(String),
    /// `tokenizer.ggml.pre` names a BPE pre-tokenizer this engine does not implement.
    UnsupportedPre(String),
    /// An array's length differs from the number of tokens.
    LengthMismatch(&'static str),
    /// A token id in the metadata is out of range.
    BadTokenId(&'static str, u32),
    /// The vocabulary is empty or too large.
    BadVocab,
}

impl fmt::Display for TokenizerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenizerError::MissingKey(k) => {
                write!(f, "tokenizer metadata: missing or mistyped key {k}")
            }
            TokenizerError::UnsupportedModel(m) => write!(
                f,
                "unsupported tokenizer model {m:?} (supported: gpt2, llama)"
            ),
            TokenizerError::UnsupportedPre(p) => write!(f, "unsupported BPE pre-tokenizer {p:?}"),
            TokenizerError::LengthMismatch(k) => write!(
                f,
                "tokenizer metadata: {k} length differs from the vocabulary"
            ),
            TokenizerError::BadTokenId(k, id) => {
                write!(f, "tokenizer metadata: {k} = {id} is out of range")
            }
            TokenizerError::BadVocab => write!(f, "tokenizer vocabulary is empty or too large"),
        }
    }
}
