//! Tokenizers of GGUF models, matching llama.cpp's token ids exactly:
//! byte-level BPE (`tokenizer.ggml.model = "gpt2"`) with the llama.cpp pre-tokenizers,
//! and SentencePiece-style (`"llama"`, e.g. Gemma 3) with scores and byte fallback.
//!
//! The [`Tokenizer`] owns its data (it copies the token texts out of the GGUF), so it
//! outlives the file bytes.

mod bpe;
mod pretokenize;
mod special;
mod spm;
mod types;
mod unicode;
mod unicode_tables;
mod vocab;

pub use pretokenize::PreTokenizer;
pub use types::{TokenType, TokenizerError};
pub use unicode_tables::UNICODE_VERSION;

use crate::gguf::Gguf;
use alloc::string::String;
use alloc::vec::Vec;
use bpe::MergeTable;
use special::{Fragment, Specials};
use vocab::Vocab;

#[derive(Clone, Debug)]
enum Algorithm {
    Bpe {
        pre: PreTokenizer,
        merges: MergeTable,
        ignore_merges: bool,
    },
    Spm {
        add_space_prefix: bool,
    },
}

/// A loaded tokenizer (owns its data).
#[derive(Clone, Debug)]
pub struct Tokenizer {
    algorithm: Algorithm,
    vocab: Vocab,
    scores: Vec<f32>,
    types: Vec<TokenType>,
    /// Control, user-defined and unknown tokens, longest text first.
    specials: Specials,
    /// BPE: the token of each byte's mapped char; SPM: the `<0xXX>` token. u32::MAX: none.
    byte_tokens: [u32; 256],
    bos: Option<u32>,
    eos: Option<u32>,
    pad: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    /// EOS and the tokens named in [`EOG_TEXTS`], sorted.
    eog: Vec<u32>,
    chat_template: Option<String>,
}

const SPACE_MARK: &str = "\u{2581}";

/// Texts of end-of-turn / end-of-text tokens that end generation besides EOS (as
/// llama.cpp's EOG detection by token text).
const EOG_TEXTS: [&str; 12] = [
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|return|>",
    "<|call|>",
    "<EOT>",
    "_<EOT>",
    "<\u{FF5C}end\u{2581}of\u{2581}sentence\u{FF5C}>",
    "<|end_of_text|>",
    "<end_of_utterance>",
];

impl Tokenizer {
    /// Loads the tokenizer described by a GGUF's `tokenizer.*` metadata.
    pub fn from_gguf(g: &Gguf) -> Result<Tokenizer, TokenizerError> {
        let model = g
            .get_str("tokenizer.ggml.model")
            .ok_or(TokenizerError::MissingKey("tokenizer.ggml.model"))?;
        let tokens = g
            .get_array("tokenizer.ggml.tokens")
            .and_then(|a| a.strings())
            .ok_or(TokenizerError::MissingKey("tokenizer.ggml.tokens"))?;
        let vocab = Vocab::new(tokens.map(str::as_bytes)).ok_or(TokenizerError::BadVocab)?;
        let n = vocab.len();
        if n == 0 || n > u32::MAX as usize / 2 {
            return Err(TokenizerError::BadVocab);
        }
        let scores: Vec<f32> = match g.get_array("tokenizer.ggml.scores") {
            Some(a) => a
                .f32s()
                .ok_or(TokenizerError::MissingKey("tokenizer.ggml.scores"))?
                .collect(),
            None => alloc::vec![0.0; n],
        };
        if scores.len() != n {
            return Err(TokenizerError::LengthMismatch("tokenizer.ggml.scores"));
        }
        let types: Vec<TokenType> = match g.get_array("tokenizer.ggml.token_type") {
            Some(a) => a
                .i32s()
                .ok_or(TokenizerError::MissingKey("tokenizer.ggml.token_type"))?
                .map(TokenType::from_i32)
                .collect(),
            None => alloc::vec![TokenType::Normal; n],
        };
        if types.len() != n {
            return Err(TokenizerError::LengthMismatch("tokenizer.ggml.token_type"));
        }
        let id_key = |key: &'static str| -> Result<Option<u32>, TokenizerError> {
            match g.get_i32(key) {
                None => Ok(None),
                Some(-1) => Ok(None),
                Some(v) if v >= 0 && (v as usize) < n => Ok(Some(v as u32)),
                Some(v) => Err(TokenizerError::BadTokenId(key, v as u32)),
            }
        };
        let bos = id_key("tokenizer.ggml.bos_token_id")?;
        let eos = id_key("tokenizer.ggml.eos_token_id")?;
        let pad = id_key("tokenizer.ggml.padding_token_id")?;

        let mut byte_tokens = [u32::MAX; 256];
        let (algorithm, default_add_bos) = match model {
            "gpt2" => {
                let pre_name = g.get_str("tokenizer.ggml.pre").unwrap_or("default");
                let pre = PreTokenizer::from_name(pre_name)
                    .ok_or_else(|| TokenizerError::UnsupportedPre(String::from(pre_name)))?;
                let merges = g
                    .get_array("tokenizer.ggml.merges")
                    .and_then(|a| a.strings())
                    .ok_or(TokenizerError::MissingKey("tokenizer.ggml.merges"))?;
                let merges = MergeTable::new(merges, &vocab);
                let mut buf = Vec::new();
                for (b, slot) in byte_tokens.iter_mut().enumerate() {
                    buf.clear();
                    bpe::encode_bytes(&[b as u8], &mut buf);
                    *slot = vocab.lookup(&buf).unwrap_or(u32::MAX);
                }
                let llama3 = pre == PreTokenizer::Llama3;
                (
                    Algorithm::Bpe {
                        pre,
                        merges,
                        ignore_merges: llama3,
                    },
                    llama3,
                )
            }
            "llama" => {
                for (b, slot) in byte_tokens.iter_mut().enumerate() {
                    let hex = |v: usize| b"0123456789ABCDEF"[v];
                    let name = [b'<', b'0', b'x', hex(b >> 4), hex(b & 15), b'>'];
                    *slot = vocab
                        .lookup(&name)
                        .or_else(|| vocab.lookup(&[b as u8]))
                        .unwrap_or(u32::MAX);
                }
                let add_space_prefix = g
                    .get_bool("tokenizer.ggml.add_space_prefix")
                    .unwrap_or(true);
                (Algorithm::Spm { add_space_prefix }, true)
            }
            other => return Err(TokenizerError::UnsupportedModel(String::from(other))),
        };
        let add_bos = g
            .get_bool("tokenizer.ggml.add_bos_token")
            .unwrap_or(default_add_bos);
        let add_eos = g.get_bool("tokenizer.ggml.add_eos_token").unwrap_or(false);
        if add_bos && bos.is_none() {
            return Err(TokenizerError::MissingKey("tokenizer.ggml.bos_token_id"));
        }
        if add_eos && eos.is_none() {
            return Err(TokenizerError::MissingKey("tokenizer.ggml.eos_token_id"));
        }
        let specials = Specials::new(
            (0..n as u32).filter(|&id| {
                matches!(
                    types[id as usize],
                    TokenType::Control | TokenType::UserDefined | TokenType::Unknown
                )
            }),
            &vocab,
        );
        let mut eog: Vec<u32> = EOG_TEXTS
            .iter()
            .filter_map(|t| vocab.lookup(t.as_bytes()))
            .chain(eos)
            .collect();
        eog.sort_unstable();
        eog.dedup();
        Ok(Tokenizer {
            algorithm,
            vocab,
            scores,
            types,
            specials,
            byte_tokens,
            bos,
            eos,
            pad,
            add_bos,
            add_eos,
            eog,
            chat_template: g.get_str("tokenizer.chat_template").map(String::from),
        })
    }

    /// Tokenizes `text`. `add_special`: add BOS/EOS as the model asks; `parse_special`:
    /// control-token texts in `text` (e.g. `<|im_start|>`) become those tokens
    /// (user-defined tokens always do, as in llama.cpp).
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let frags = special::partition(text, &self.specials, self.skip(parse_special));
        self.encode_fragments(text, &frags, add_special)
    }

    /// [`Tokenizer::encode`] of a continuation (no BOS/EOS) with special tokens parsed everywhere
    /// except in `literal` (a byte range of `text`), which is tokenized as plain text whatever it
    /// holds: untrusted text inside a prompt template cannot become a control token, nor a
    /// user-defined one that marks structure (Qwen's `<tool_call>`, Gemma's `<table>`); only
    /// user-defined tokens that are whitespace (Gemma's newline and space runs) are still taken
    /// there, as llama.cpp takes them. When `literal` holds no other special-token text the ids are
    /// exactly `encode(text, false, true)`'s.
    pub fn encode_with_literal(&self, text: &str, literal: core::ops::Range<usize>) -> Vec<u32> {
        let whitespace_piece = |id: u32| {
            self.types[id as usize] == TokenType::UserDefined
                && self.vocab.text(id).iter().all(u8::is_ascii_whitespace)
        };
        let frags =
            special::partition_with_literal(text, literal, &self.specials, self.skip(true), |id| {
                !whitespace_piece(id)
            });
        self.encode_fragments(text, &frags, false)
    }

    /// Which special tokens partitioning leaves as text: control and unknown ones unless they
    /// are parsed (user-defined ones always are, as in llama.cpp).
    fn skip(&self, parse_special: bool) -> impl Fn(u32) -> bool + '_ {
        move |id: u32| {
            !parse_special
                && matches!(
                    self.types[id as usize],
                    TokenType::Control | TokenType::Unknown
                )
        }
    }

    fn encode_fragments(&self, text: &str, frags: &[Fragment], add_special: bool) -> Vec<u32> {
        let mut out = Vec::new();
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        let mut prev_special = true;
        let mut scratch = Vec::new();
        for f in frags {
            match f {
                Fragment::Token(id) => {
                    out.push(*id);
                    prev_special = true;
                }
                Fragment::Text(r) => {
                    self.encode_text(&text[r.clone()], prev_special, &mut scratch, &mut out);
                    prev_special = false;
                }
            }
        }
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        out
    }

    fn encode_text(
        &self,
        text: &str,
        prev_special: bool,
        scratch: &mut Vec<u8>,
        out: &mut Vec<u32>,
    ) {
        match &self.algorithm {
            Algorithm::Spm { add_space_prefix } => {
                scratch.clear();
                if *add_space_prefix && prev_special {
                    scratch.extend_from_slice(SPACE_MARK.as_bytes());
                }
                for part in text.split(' ').enumerate() {
                    if part.0 > 0 {
                        scratch.extend_from_slice(SPACE_MARK.as_bytes());
                    }
                    scratch.extend_from_slice(part.1.as_bytes());
                }
                spm::tokenize(scratch, &self.vocab, &self.scores, &self.byte_tokens, out);
            }
            Algorithm::Bpe {
                pre,
                merges,
                ignore_merges,
            } => {
                let mut ids = Vec::new();
                for word in pre.split(text) {
                    let word = &text.as_bytes()[word];
                    if *ignore_merges {
                        scratch.clear();
                        bpe::encode_bytes(word, scratch);
                        if let Some(id) = self.vocab.lookup(scratch) {
                            out.push(id);
                            continue;
                        }
                    }
                    ids.clear();
                    ids.extend(word.iter().map(|&b| self.byte_tokens[b as usize]));
                    bpe::merge_word(&ids, merges, out);
                }
            }
        }
    }

    /// The raw vocabulary bytes of `id` (byte-level or `▁` form; empty when out of range).
    pub fn token_piece(&self, id: u32) -> &[u8] {
        self.vocab.text(id)
    }

    /// The text bytes of `id`: byte-level mapping, `▁` and `<0xXX>` undone; control and
    /// user-defined tokens give their text as is.
    pub fn token_bytes(&self, id: u32, out: &mut Vec<u8>) {
        let piece = self.vocab.text(id);
        let ty = self.token_type(id);
        if matches!(ty, Some(TokenType::Control | TokenType::UserDefined)) {
            out.extend_from_slice(piece);
            return;
        }
        let Ok(piece_str) = core::str::from_utf8(piece) else {
            out.extend_from_slice(piece);
            return;
        };
        match self.algorithm {
            Algorithm::Bpe { .. } => {
                let mut buf = [0u8; 4];
                for c in piece_str.chars() {
                    match bpe::char_to_byte(c) {
                        Some(b) => out.push(b),
                        None => out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
                    }
                }
            }
            Algorithm::Spm { .. } => {
                if ty == Some(TokenType::Byte) {
                    if let Some(b) = parse_byte_token(piece_str) {
                        out.push(b);
                        return;
                    }
                }
                if ty == Some(TokenType::Unknown) {
                    out.extend_from_slice("\u{2585}".as_bytes());
                    return;
                }
                for (i, part) in piece_str.split(SPACE_MARK).enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    out.extend_from_slice(part.as_bytes());
                }
            }
        }
    }

    /// Concatenated text bytes of `ids` (see [`Tokenizer::token_bytes`]).
    pub fn decode(&self, ids: &[u32]) -> Vec<u8> {
        let mut out = Vec::new();
        for &id in ids {
            self.token_bytes(id, &mut out);
        }
        out
    }

    /// The single token whose text is exactly `text` (" Yes" finds "ĠYes" or "▁Yes");
    /// control tokens are found by their literal text.
    pub fn text_to_id(&self, text: &str) -> Option<u32> {
        let mut form = Vec::new();
        match self.algorithm {
            Algorithm::Bpe { .. } => bpe::encode_bytes(text.as_bytes(), &mut form),
            Algorithm::Spm { .. } => {
                form.extend_from_slice(text.replace(' ', SPACE_MARK).as_bytes())
            }
        }
        if let Some(id) = self.vocab.lookup(&form) {
            return Some(id);
        }
        if let Some(id) = self.vocab.lookup(text.as_bytes()) {
            return Some(id);
        }
        match (&self.algorithm, text.as_bytes()) {
            (Algorithm::Spm { .. }, &[b]) => {
                Some(self.byte_tokens[b as usize]).filter(|&id| id != u32::MAX)
            }
            _ => None,
        }
    }

    pub fn n_vocab(&self) -> usize {
        self.vocab.len()
    }
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }
    pub fn pad(&self) -> Option<u32> {
        self.pad
    }
    /// Whether `encode(.., add_special = true, ..)` puts BOS first.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }
    /// Whether `id` ends generation: EOS or an end-of-turn token such as `<|im_end|>`
    /// or `<end_of_turn>`.
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }
    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.types.get(id as usize).copied()
    }
    pub fn score(&self, id: u32) -> Option<f32> {
        self.scores.get(id as usize).copied()
    }
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }
    /// Number of BPE merges in use (0 for SentencePiece vocabularies).
    pub fn n_merges(&self) -> usize {
        match &self.algorithm {
            Algorithm::Bpe { merges, .. } => merges.count(),
            Algorithm::Spm { .. } => 0,
        }
    }

    /// The BPE pre-tokenizer (None for SentencePiece vocabularies).
    pub fn pre_tokenizer(&self) -> Option<PreTokenizer> {
        match self.algorithm {
            Algorithm::Bpe { pre, .. } => Some(pre),
            Algorithm::Spm { .. } => None,
        }
    }
}

fn parse_byte_token(s: &str) -> Option<u8> {
    let hex = s.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}
