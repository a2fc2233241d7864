//! [`LogitModel`] for inference-core models: the prefix is a prefilled [`KvCache`], each verdict
//! forks it (copy-free) and runs only the suffix, asking for the label rows alone.

use crate::{LogitModel, ProbeError};
use alloc::format;
use alloc::vec::Vec;
use core::cell::RefCell;
use inference_core::model::{KvCache, LogitsRequest, Model};

/// Default KV capacity: a 12-example prefix is about 520 tokens, an action rarely 500.
pub const DEFAULT_CAPACITY: usize = 4096;

pub struct EngineModel<'a> {
    model: Model<'a>,
    digest: [u8; 32],
    capacity: usize,
}

impl<'a> EngineModel<'a> {
    /// Wrap a loaded model; `digest` identifies its weights in the audit log (blake3 of the file).
    pub fn new(model: Model<'a>, digest: [u8; 32]) -> Self {
        EngineModel {
            model,
            digest,
            capacity: DEFAULT_CAPACITY,
        }
    }

    /// Load a GGUF and digest it with blake3.
    pub fn load(bytes: &'a [u8]) -> Result<Self, ProbeError> {
        let model = Model::load(bytes).map_err(|e| ProbeError::Model(format!("{e}")))?;
        Ok(Self::new(model, *blake3::hash(bytes).as_bytes()))
    }

    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    pub fn model(&self) -> &Model<'a> {
        &self.model
    }

    pub fn model_mut(&mut self) -> &mut Model<'a> {
        &mut self.model
    }
}

fn model_err(e: impl core::fmt::Display) -> ProbeError {
    ProbeError::Model(format!("{e}"))
}

impl LogitModel for EngineModel<'_> {
    /// The prefilled cache; `fork` needs `&mut` (it freezes the private tail once), hence the cell.
    type State = RefCell<KvCache>;

    fn tokenize(&self, text: &str) -> Result<Vec<u32>, ProbeError> {
        Ok(self.model.tokenizer().encode(text, true, true))
    }

    fn tokenize_continuation(&self, text: &str) -> Result<Vec<u32>, ProbeError> {
        Ok(self.model.tokenizer().encode(text, false, true))
    }

    fn tokenize_continuation_with_literal(
        &self,
        text: &str,
        literal: core::ops::Range<usize>,
    ) -> Result<Vec<u32>, ProbeError> {
        Ok(self.model.tokenizer().encode_with_literal(text, literal))
    }

    fn text_to_id(&self, text: &str) -> Option<u32> {
        self.model.tokenizer().text_to_id(text)
    }

    fn prefill(&self, tokens: &[u32]) -> Result<RefCell<KvCache>, ProbeError> {
        let mut cache = KvCache::new(&self.model, self.capacity);
        if tokens.len() >= cache.capacity() {
            return Err(ProbeError::Model(format!(
                "prefix of {} tokens exceeds the context of {}",
                tokens.len(),
                cache.capacity()
            )));
        }
        // One output row is the cheapest request; the logits of the prefix are not needed.
        self.model
            .forward(&mut cache, tokens, LogitsRequest::LastRows(&[0]))
            .map_err(model_err)?;
        // Freeze the tail now so that every later fork is a pure share.
        drop(cache.fork());
        Ok(RefCell::new(cache))
    }

    fn label_logits(
        &self,
        prefix: &RefCell<KvCache>,
        suffix: &[u32],
        labels: &[u32],
    ) -> Result<Vec<f32>, ProbeError> {
        let mut fork = prefix
            .try_borrow_mut()
            .map_err(|_| ProbeError::Model("prefix cache busy".into()))?
            .fork();
        self.model
            .forward(&mut fork, suffix, LogitsRequest::LastRows(labels))
            .map_err(model_err)
    }

    fn model_digest(&self) -> [u8; 32] {
        self.digest
    }

    fn chat_template(&self) -> Option<&str> {
        self.model.tokenizer().chat_template()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibration::CalibrationCache;
    use crate::gate::ProbeGate;
    use crate::prompt::{PromptSpec, TemplateKind, Verbalizer};
    use inference_core::synthetic::tiny_llama_gguf;

    #[test]
    fn forked_suffix_matches_a_full_forward() {
        let bytes = tiny_llama_gguf(7);
        let m = EngineModel::load(&bytes).unwrap();
        let yes = m.text_to_id("Yes").unwrap();
        let no = m.text_to_id("No").unwrap();
        let prefix = m
            .tokenize("<|im_start|>system\nthe monitor<|im_end|>\n")
            .unwrap();
        let suffix = m
            .tokenize_continuation("<|im_start|>user\nrm -rf /<|im_end|>\n<|im_start|>assistant\n")
            .unwrap();
        let state = m.prefill(&prefix).unwrap();
        let a = m.label_logits(&state, &suffix, &[yes, no]).unwrap();
        let b = m.label_logits(&state, &suffix, &[yes, no]).unwrap();
        assert_eq!(a, b, "the prefix is not changed by a verdict");
        let mut full = KvCache::new(m.model(), 512);
        let all: Vec<u32> = prefix.iter().chain(&suffix).copied().collect();
        let c = m
            .model()
            .forward(&mut full, &all, LogitsRequest::LastRows(&[yes, no]))
            .unwrap();
        for (x, y) in a.iter().zip(&c) {
            assert!((x - y).abs() < 1e-3 * y.abs().max(1.0), "{a:?} vs {c:?}");
        }
    }

    #[test]
    fn gate_runs_on_the_engine() {
        // The tiny model's context is 256 tokens: a short system text.
        let bytes = tiny_llama_gguf(3);
        let m = EngineModel::load(&bytes).unwrap();
        assert_eq!(
            TemplateKind::detect(m.chat_template()),
            TemplateKind::ChatMl
        );
        let spec = PromptSpec {
            template: TemplateKind::ChatMl,
            verbalizer: Verbalizer::YesNo,
            subject: crate::prompt::Subject::Action,
            system: "Judge the action.".into(),
            policy_text: alloc::string::String::new(),
            examples: alloc::vec::Vec::new(),
            question: None,
        };
        let gate = ProbeGate::new(&m, spec, &mut CalibrationCache::new()).unwrap();
        let s = gate.score("run_command {\"cmd\":\"ls\"}", 1.0).unwrap();
        assert!((0.0..=1.0).contains(&s.p_dangerous()));
        assert!((s.raw[0] + s.raw[1] - 1.0).abs() < 1e-5);
    }
}
