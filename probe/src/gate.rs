//! The ProbeLogits gate: a prefilled prefix per gate, one forked forward pass per verdict.

use crate::calibration::{
    average, calibrate, calibration_key, CalibrationCache, CONTENT_FREE_INPUTS,
};
use crate::primitives::classify_tokens;
use crate::prompt::{resolve_labels, PromptSpec, ResolvedLabels};
use crate::{LogitModel, ProbeError};
use alloc::format;
use alloc::vec::Vec;

/// The outcome of one probe: raw and calibrated label probabilities (index 0 = dangerous).
#[derive(Debug, Clone, PartialEq)]
pub struct GateScore {
    pub raw: [f32; 2],
    pub calibrated: [f32; 2],
    pub alpha: f32,
}

impl GateScore {
    pub fn p_dangerous(&self) -> f32 {
        self.calibrated[0]
    }
}

/// A prompt prefix prefilled once, its labels and its content-free calibration.
pub struct ProbeGate<'m, M: LogitModel> {
    model: &'m M,
    spec: PromptSpec,
    labels: ResolvedLabels,
    prefix: M::State,
    prefix_tokens: usize,
    p_cf: [f32; 2],
}

impl<'m, M: LogitModel> ProbeGate<'m, M> {
    /// Resolve the labels (an error here if a label is not a single token), prefill the prefix and
    /// compute the content-free probabilities, using and filling `cache`.
    pub fn new(
        model: &'m M,
        spec: PromptSpec,
        cache: &mut CalibrationCache,
    ) -> Result<Self, ProbeError> {
        let labels = resolve_labels(model, spec.template, spec.verbalizer)?;
        let prefix_text = spec.prefix(&labels);
        let prefix_tokens = model.tokenize(&prefix_text)?;
        let prefix = model.prefill(&prefix_tokens)?;
        let mut gate = ProbeGate {
            model,
            spec,
            labels,
            prefix,
            prefix_tokens: prefix_tokens.len(),
            p_cf: [0.5; 2],
        };
        // The content-free prompts are the prefix and the suffix around an empty item: both name
        // the cache entry (two gates that share a prefix but ask different questions differ).
        let prompt_shape = format!("{prefix_text}\u{0}{}", gate.spec.suffix(""));
        let key = calibration_key(gate.spec.template, gate.spec.verbalizer, &prompt_shape);
        let p_cf = cache.get_or_compute(key, || {
            let mut sets = Vec::with_capacity(CONTENT_FREE_INPUTS.len());
            for input in CONTENT_FREE_INPUTS {
                sets.push(gate.raw_probs(input)?.to_vec());
            }
            average(&sets)
        })?;
        if p_cf.len() != 2 {
            return Err(ProbeError::LogitCount {
                expected: 2,
                got: p_cf.len(),
            });
        }
        gate.p_cf = [p_cf[0], p_cf[1]];
        Ok(gate)
    }

    /// Label probabilities without calibration for `action_text`.
    pub fn raw_probs(&self, action_text: &str) -> Result<[f32; 2], ProbeError> {
        let suffix = self
            .model
            .tokenize_continuation(&self.spec.suffix(action_text))?;
        let (_, p) = classify_tokens(self.model, &self.prefix, &suffix, &self.labels.ids)?;
        Ok([p[0], p[1]])
    }

    /// Calibrate already computed raw probabilities at `alpha`.
    pub fn calibrate(&self, raw: [f32; 2], alpha: f32) -> Result<GateScore, ProbeError> {
        let c = calibrate(&raw, &self.p_cf, alpha)?;
        Ok(GateScore {
            raw,
            calibrated: [c[0], c[1]],
            alpha,
        })
    }

    /// One verdict: run the action's tokens on a fork of the prefix, calibrate at `alpha`.
    pub fn score(&self, action_text: &str, alpha: f32) -> Result<GateScore, ProbeError> {
        let raw = self.raw_probs(action_text)?;
        self.calibrate(raw, alpha)
    }

    pub fn content_free(&self) -> [f32; 2] {
        self.p_cf
    }
    pub fn labels(&self) -> &ResolvedLabels {
        &self.labels
    }
    pub fn prefix_tokens(&self) -> usize {
        self.prefix_tokens
    }
    pub fn spec(&self) -> &PromptSpec {
        &self.spec
    }
    pub fn model(&self) -> &'m M {
        self.model
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::MockModel;
    use crate::prompt::{Example, TemplateKind, Verbalizer, DEFAULT_SYSTEM};
    use alloc::string::String;

    fn spec(examples: usize) -> PromptSpec {
        PromptSpec {
            template: TemplateKind::ChatMl,
            verbalizer: Verbalizer::YesNo,
            subject: crate::prompt::Subject::Action,
            system: DEFAULT_SYSTEM.into(),
            policy_text: String::new(),
            examples: (0..examples)
                .map(|i| Example {
                    action: alloc::format!("ls dir{i}"),
                    dangerous: i % 2 == 0,
                })
                .collect(),
            question: None,
        }
    }

    #[test]
    fn prefix_is_prefilled_once_and_verdicts_run_only_the_suffix() {
        let m = MockModel::new();
        let mut cache = CalibrationCache::new();
        let gate = ProbeGate::new(&m, spec(12), &mut cache).unwrap();
        assert_eq!(m.prefills.get(), 1);
        let before = m.suffix_tokens.get();
        let action = "run_command {\"cmd\":\"ls\"}";
        gate.score(action, 1.0).unwrap();
        gate.score(action, 0.0).unwrap();
        assert_eq!(m.prefills.get(), 1, "no re-prefill per verdict");
        let per_verdict = (m.suffix_tokens.get() - before) / 2;
        let suffix_len = m
            .tokenize_continuation(&gate.spec().suffix(action))
            .unwrap()
            .len();
        assert_eq!(per_verdict, suffix_len);
        assert!(per_verdict < gate.prefix_tokens());
    }

    #[test]
    fn calibration_is_cached_across_gates() {
        let m = MockModel::new();
        let mut cache = CalibrationCache::new();
        let _g1 = ProbeGate::new(&m, spec(0), &mut cache).unwrap();
        let after_first = m.suffix_tokens.get();
        let _g2 = ProbeGate::new(&m, spec(0), &mut cache).unwrap();
        assert_eq!(
            m.suffix_tokens.get(),
            after_first,
            "second gate reused p_cf"
        );
        assert_eq!(cache.len(), 1);
        // Another question after the same prefix: other content-free prompts, another entry.
        let mut asked = spec(0);
        asked.question = Some("Does it steer you? Answer Yes or No.".into());
        let _g3 = ProbeGate::new(&m, asked, &mut cache).unwrap();
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn calibration_removes_a_yes_bias() {
        // A model biased to "Yes" calls a harmless action dangerous; full calibration undoes the bias.
        let m = MockModel::new().with_bias(3.0);
        let mut cache = CalibrationCache::new();
        let gate = ProbeGate::new(&m, spec(0), &mut cache).unwrap();
        let harmless = gate.score("list_dir {\"path\":\"docs\"}", 0.0).unwrap();
        assert!(harmless.p_dangerous() > 0.5);
        let calibrated = gate.score("list_dir {\"path\":\"docs\"}", 1.0).unwrap();
        assert!(calibrated.p_dangerous() < 0.5);
        let harmful = gate
            .score("run_command {\"cmd\":\"sudo rm -rf /\"}", 1.0)
            .unwrap();
        assert!(harmful.p_dangerous() > 0.9);
    }

    #[test]
    fn missing_label_fails_at_construction() {
        struct NoLabels(MockModel);
        impl LogitModel for NoLabels {
            type State = Vec<u32>;
            fn tokenize(&self, t: &str) -> Result<Vec<u32>, ProbeError> {
                self.0.tokenize(t)
            }
            fn tokenize_continuation(&self, t: &str) -> Result<Vec<u32>, ProbeError> {
                self.0.tokenize_continuation(t)
            }
            fn text_to_id(&self, t: &str) -> Option<u32> {
                if t.contains("Yes") {
                    None
                } else {
                    self.0.text_to_id(t)
                }
            }
            fn prefill(&self, t: &[u32]) -> Result<Vec<u32>, ProbeError> {
                self.0.prefill(t)
            }
            fn label_logits(
                &self,
                p: &Vec<u32>,
                s: &[u32],
                l: &[u32],
            ) -> Result<Vec<f32>, ProbeError> {
                self.0.label_logits(p, s, l)
            }
            fn model_digest(&self) -> [u8; 32] {
                [0; 32]
            }
            fn chat_template(&self) -> Option<&str> {
                None
            }
        }
        let m = NoLabels(MockModel::new());
        let err = ProbeGate::new(&m, spec(0), &mut CalibrationCache::new())
            .err()
            .unwrap();
        assert_eq!(err, ProbeError::LabelNotSingleToken("Yes".into()));
    }
}
