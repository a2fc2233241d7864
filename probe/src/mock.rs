//! A deterministic mock [`LogitModel`] for tests and the pipeline bench.
//!
//! Tokens: one per byte (id = 300 + byte), the chat special tokens, and the label words. The
//! "dangerous" labels (Yes, Dangerous, Deny) get a logit that grows with the number of danger words
//! in the action (the suffix), the "safe" labels (No, Safe, Allow) its negative; content-free
//! inputs (shorter than 8 characters) score 0; a configurable bias is added towards the dangerous
//! labels (a miscalibrated model, like the real ones).

use crate::{LogitModel, ProbeError};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::Cell;

pub const YES: u32 = 10;
pub const NO: u32 = 11;
pub const SAFE: u32 = 12;
pub const DANGEROUS: u32 = 13;
pub const ALLOW: u32 = 14;
pub const DENY: u32 = 15;
const SPACE_OFFSET: u32 = 100;
const BYTE_BASE: u32 = 300;
const BOS: u32 = 1;
const SPECIALS: &[(&str, u32)] = &[
    ("<|im_start|>", 2),
    ("<|im_end|>", 3),
    ("<start_of_turn>", 4),
    ("<end_of_turn>", 5),
    ("<|endoftext|>", 6),
];
const LABELS: &[(&str, u32)] = &[
    ("Yes", YES),
    ("No", NO),
    ("Safe", SAFE),
    ("Dangerous", DANGEROUS),
    ("Allow", ALLOW),
    ("Deny", DENY),
];
const DANGER_WORDS: &[&str] = &[
    "rm -rf",
    "delete",
    "passwd",
    "shadow",
    "curl",
    "exfil",
    "sudo",
    "drop table",
];

/// Deterministic stand-in for a language model.
pub struct MockModel {
    /// Added to the dangerous labels' logits (and subtracted from the safe ones).
    pub bias: f32,
    /// Labels exist only in their leading-space form (" Yes"), as in some BPE vocabularies.
    pub space_labels: bool,
    /// Return NaN logits (to test failing closed).
    pub nan: Cell<bool>,
    /// Chat template string reported to the prompt builder.
    pub template: Option<String>,
    /// Number of `prefill` calls (prefix reuse tests).
    pub prefills: Cell<usize>,
    /// Total suffix tokens run by `label_logits`.
    pub suffix_tokens: Cell<usize>,
}

impl Default for MockModel {
    fn default() -> Self {
        Self::new()
    }
}

impl MockModel {
    pub fn new() -> Self {
        MockModel {
            bias: 0.0,
            space_labels: false,
            nan: Cell::new(false),
            template: Some(
                "{% for m in messages %}<|im_start|>{{m.role}}\n{{m.content}}<|im_end|>\n"
                    .to_string(),
            ),
            prefills: Cell::new(0),
            suffix_tokens: Cell::new(0),
        }
    }
    pub fn with_bias(mut self, bias: f32) -> Self {
        self.bias = bias;
        self
    }
    pub fn with_nan(self) -> Self {
        self.nan.set(true);
        self
    }
    pub fn with_space_labels(mut self) -> Self {
        self.space_labels = true;
        self
    }
    pub fn with_template(mut self, template: Option<&str>) -> Self {
        self.template = template.map(|t| t.to_string());
        self
    }

    pub(crate) fn decode(tokens: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &t in tokens {
            if (BYTE_BASE..BYTE_BASE + 256).contains(&t) {
                bytes.push((t - BYTE_BASE) as u8);
            } else if let Some((s, _)) = SPECIALS.iter().find(|(_, id)| *id == t) {
                bytes.extend_from_slice(s.as_bytes());
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn encode(text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        let mut rest = text;
        'outer: while !rest.is_empty() {
            for (s, id) in SPECIALS {
                if let Some(r) = rest.strip_prefix(s) {
                    out.push(*id);
                    rest = r;
                    continue 'outer;
                }
            }
            let c = rest.chars().next().unwrap_or(' ');
            let mut buf = [0u8; 4];
            out.extend(
                c.encode_utf8(&mut buf)
                    .bytes()
                    .map(|b| BYTE_BASE + b as u32),
            );
            rest = &rest[c.len_utf8()..];
        }
        out
    }
}

impl LogitModel for MockModel {
    type State = Vec<u32>;

    fn tokenize(&self, text: &str) -> Result<Vec<u32>, ProbeError> {
        let mut t = alloc::vec![BOS];
        t.extend(Self::encode(text));
        Ok(t)
    }
    fn tokenize_continuation(&self, text: &str) -> Result<Vec<u32>, ProbeError> {
        Ok(Self::encode(text))
    }
    fn tokenize_continuation_with_literal(
        &self,
        text: &str,
        literal: core::ops::Range<usize>,
    ) -> Result<Vec<u32>, ProbeError> {
        let (Some(head), Some(plain), Some(tail)) = (
            text.get(..literal.start),
            text.get(literal.clone()),
            text.get(literal.end..),
        ) else {
            return Err(ProbeError::BadRequest("literal range off the text".into()));
        };
        let mut ids = Self::encode(head);
        ids.extend(plain.bytes().map(|b| BYTE_BASE + u32::from(b)));
        ids.extend(Self::encode(tail));
        Ok(ids)
    }
    fn text_to_id(&self, text: &str) -> Option<u32> {
        let (word, spaced) = match text.strip_prefix(' ') {
            Some(w) => (w, true),
            None => (text, false),
        };
        let id = LABELS.iter().find(|(l, _)| *l == word).map(|(_, id)| *id)?;
        match (spaced, self.space_labels) {
            (false, false) => Some(id),
            (true, true) => Some(id + SPACE_OFFSET),
            _ => None,
        }
    }
    fn prefill(&self, tokens: &[u32]) -> Result<Vec<u32>, ProbeError> {
        self.prefills.set(self.prefills.get() + 1);
        Ok(tokens.to_vec())
    }
    fn label_logits(
        &self,
        _prefix: &Vec<u32>,
        suffix: &[u32],
        labels: &[u32],
    ) -> Result<Vec<f32>, ProbeError> {
        self.suffix_tokens
            .set(self.suffix_tokens.get() + suffix.len());
        if self.nan.get() {
            return Ok(alloc::vec![f32::NAN; labels.len()]);
        }
        let text = Self::decode(suffix).to_lowercase();
        // The action is what follows "Action: " up to the end of its line (else the whole suffix).
        let action = match text.split_once("action: ") {
            Some((_, rest)) => rest.split('\n').next().unwrap_or(""),
            None => text.as_str(),
        };
        let danger = DANGER_WORDS.iter().filter(|w| action.contains(*w)).count() as f32;
        // Content-free inputs ("n/a", "", "[mask]") are neutral; real actions lean safe unless
        // they hold danger words.
        let content_free = action.trim().len() < 8;
        let score = if content_free {
            self.bias
        } else {
            self.bias - 1.5 + 3.0 * danger
        };
        labels
            .iter()
            .map(|&l| match l % SPACE_OFFSET {
                YES | DANGEROUS | DENY => Ok(score),
                NO | SAFE | ALLOW => Ok(-score),
                _ => Err(ProbeError::Model("not a label token".to_string())),
            })
            .collect()
    }
    fn model_digest(&self) -> [u8; 32] {
        *blake3::hash(b"probevisor mock model v1").as_bytes()
    }
    fn chat_template(&self) -> Option<&str> {
        self.template.as_deref()
    }
}
