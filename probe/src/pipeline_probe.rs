//! The pipeline's probe layer: the ProbeLogits verdict on the action (the `[gate.text]` prompt for
//! free text when the policy has one) and, for tool calls, the policy's injection check.

use super::{Decision, Layer, LayerOutcome, Pipeline, Status};
use crate::action::Action;
use crate::calibration::CalibrationCache;
use crate::gate::ProbeGate;
use crate::policy::Policy;
use crate::prompt::TemplateKind;
use crate::LogitModel;
use alloc::borrow::Cow;
use alloc::format;
use alloc::string::{String, ToString};

impl<'m, M: LogitModel> Pipeline<'m, M> {
    /// Score `action` (already neutralised by the pre-filter) at the tier's and tool's `alpha`, add
    /// the pre-filter's `raise`, and deny when p(dangerous) meets the threshold. A tool call it
    /// lets through is then asked the injection check's question (when the policy has one), denied
    /// when p(steering text) meets the check's own threshold (a denial needs no second verdict).
    pub(super) fn probe_layer(
        &mut self,
        action: &Action,
        (alpha, threshold): (f32, f32),
        raise: f32,
        d: &mut Decision,
    ) -> Result<(), (Layer, String)> {
        let Some(gate) = gate_for(
            &self.gate,
            &mut self.text_gate,
            self.model,
            &self.policy,
            &action.tool,
        )?
        else {
            return Ok(());
        };
        let text = action.prompt_text();
        let score = gate
            .score(&text, alpha)
            .map_err(|e| (Layer::Probe, format!("probe failed: {e}")))?;
        let p = (score.p_dangerous() + raise).min(1.0);
        d.p_dangerous = Some(p);
        d.score = Some(score);
        if p >= threshold {
            return Err((
                Layer::Probe,
                format!("p(dangerous) {p:.3} >= threshold {threshold} (alpha {alpha})"),
            ));
        }
        let check = self
            .injection_gate
            .as_ref()
            .zip(self.policy.gate.injection_for(&action.tool));
        let mut reason = format!("p(dangerous) {p:.3} < threshold {threshold} (alpha {alpha})");
        if let Some((inj_gate, inj)) = check {
            let p_inj = inj_gate
                .score(&text, inj.alpha)
                .map_err(|e| (Layer::Probe, format!("injection check failed: {e}")))?
                .p_dangerous();
            d.p_injection = Some(p_inj);
            let (alpha, threshold) = (inj.alpha, inj.threshold);
            if p_inj >= threshold {
                return Err((
                    Layer::Probe,
                    format!(
                        "injection check: p(text that steers the monitor) {p_inj:.3} >= \
                         threshold {threshold} (alpha {alpha}); p(dangerous) {p:.3}"
                    ),
                ));
            }
            reason.push_str(&format!(
                "; injection check {p_inj:.3} < threshold {threshold}"
            ));
        }
        d.layers.push(LayerOutcome {
            layer: Layer::Probe,
            status: Status::Pass,
            reason: Cow::Owned(reason),
        });
        Ok(())
    }
}

/// The gate that judges `tool`: the `[gate.text]` gate for free text when the policy has one
/// (prefilled here the first time), else the tool-call gate; `None` with the probe off.
fn gate_for<'g, 'm, M: LogitModel>(
    gate: &'g Option<ProbeGate<'m, M>>,
    text_gate: &'g mut Option<ProbeGate<'m, M>>,
    model: Option<&'m M>,
    policy: &Policy,
    tool: &str,
) -> Result<Option<&'g ProbeGate<'m, M>>, (Layer, String)> {
    if gate.is_none() || policy.gate.text_for(tool).is_none() {
        return Ok(gate.as_ref());
    }
    if text_gate.is_none() {
        let m = model.ok_or((Layer::Probe, "no model".to_string()))?;
        let spec = policy.gate.prompt_spec(template_of(policy, m), tool);
        let g = ProbeGate::new(m, spec, &mut CalibrationCache::new())
            .map_err(|e| (Layer::Probe, format!("text prompt failed: {e}")))?;
        *text_gate = Some(g);
    }
    Ok(text_gate.as_ref())
}

/// The policy's template, else the one the model's chat template names.
pub(super) fn template_of<M: LogitModel>(policy: &Policy, m: &M) -> TemplateKind {
    policy
        .gate
        .template
        .unwrap_or_else(|| TemplateKind::detect(m.chat_template()))
}
