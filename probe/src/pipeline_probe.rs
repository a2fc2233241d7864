//! The pipeline's probe layer: the ProbeLogits verdict on the action (the `[gate.text]` prompt for
//! free text when the policy has one) and, for tool calls, the policy's injection check.

use super::{Decision, Layer, LayerOutcome, Pipeline, Status};
use crate::action::Action;
use crate::calibration::CalibrationCache;
use crate::gate::ProbeGate;
use crate::policy::{GateSettings, Policy};
use crate::prompt::TemplateKind;
use crate::{LogitModel, ProbeError};
use alloc::borrow::Cow;
use alloc::format;
use alloc::string::{String, ToString};

impl<'m, M: LogitModel> Pipeline<'m, M> {
    /// Prefill every prompt that `action` can reach (the prompt that judges it and, for a tool
    /// call, the injection check), so that [`Pipeline::decide`] then pays only for verdicts. For a
    /// pipeline built by [`Pipeline::on_demand`]; a no-op for what is already prefilled.
    pub fn prefill_for(&mut self, action: &Action) -> Result<(), ProbeError> {
        let Some(model) = self.model else {
            return Ok(());
        };
        let template = template_of(&self.policy, model);
        let settings = &self.policy.gate;
        let gates = (&mut self.gate, &mut self.text_gate);
        let cache = &mut CalibrationCache::new();
        judging_gate(gates, model, &self.policy, template, &action.tool, cache)?;
        let slot = &mut self.injection_gate;
        injection_gate(slot, model, settings, template, &action.tool, cache)?;
        Ok(())
    }

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
        let Some(model) = self.model else {
            return Ok(());
        };
        let template = template_of(&self.policy, model);
        let settings = &self.policy.gate;
        let gates = (&mut self.gate, &mut self.text_gate);
        let cache = &mut CalibrationCache::new();
        let gate = judging_gate(gates, model, &self.policy, template, &action.tool, cache)
            .map_err(|e| (Layer::Probe, format!("probe prompt failed: {e}")))?;
        let text = action.prompt_text();
        let score = gate
            .score_for(&action.tool, &text, alpha)
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
        let check = injection_gate(
            &mut self.injection_gate,
            model,
            settings,
            template,
            &action.tool,
            cache,
        )
        .map_err(|e| (Layer::Probe, format!("injection check failed: {e}")))?
        .zip(settings.injection_for(&action.tool));
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

/// The gate that judges `tool`: the `[gate.text]` prompt's for free text when the policy has one,
/// else the tool-call prompt's; prefilled here the first time it is needed, and under per-tool
/// calibration given `tool`'s prior the first time that tool is judged (`cache` holds content-free
/// probabilities already computed).
pub(super) fn judging_gate<'g, 'm, M: LogitModel>(
    (gate, text_gate): (
        &'g mut Option<ProbeGate<'m, M>>,
        &'g mut Option<ProbeGate<'m, M>>,
    ),
    model: &'m M,
    policy: &Policy,
    template: TemplateKind,
    tool: &str,
    cache: &mut CalibrationCache,
) -> Result<&'g ProbeGate<'m, M>, ProbeError> {
    let settings = &policy.gate;
    let (slot, prompt_tool) = match settings.text_for(tool) {
        Some(_) => (text_gate, tool),
        None => (gate, ""),
    };
    if slot.is_none() {
        let spec = settings.prompt_spec(template, prompt_tool);
        *slot = Some(ProbeGate::new(model, spec, cache)?);
    }
    let gate = slot
        .as_mut()
        .ok_or(ProbeError::BadRequest("no probe prompt".to_string()))?;
    if prompt_tool.is_empty() {
        add_tool_prior(gate, policy, tool, cache)?;
    }
    Ok(gate)
}

/// Under per-tool calibration, give the tool-call prompt's `gate` the prior of `tool` (a tool the
/// policy declares) unless it has it; otherwise nothing.
pub(super) fn add_tool_prior<M: LogitModel>(
    gate: &mut ProbeGate<'_, M>,
    policy: &Policy,
    tool: &str,
    cache: &mut CalibrationCache,
) -> Result<(), ProbeError> {
    if gate.has_tool_prior(tool) {
        return Ok(());
    }
    if let Some(args) = policy.gate.content_free_args(&policy.tools, tool) {
        gate.add_tool_prior(tool, &args, cache)?;
    }
    Ok(())
}

/// The injection check's gate when the policy asks it of `tool`, prefilled here the first time.
pub(super) fn injection_gate<'g, 'm, M: LogitModel>(
    slot: &'g mut Option<ProbeGate<'m, M>>,
    model: &'m M,
    settings: &GateSettings,
    template: TemplateKind,
    tool: &str,
    cache: &mut CalibrationCache,
) -> Result<Option<&'g ProbeGate<'m, M>>, ProbeError> {
    if settings.injection_for(tool).is_none() {
        return Ok(None);
    }
    if slot.is_none() {
        if let Some(spec) = settings.injection_spec(template, tool) {
            *slot = Some(ProbeGate::new(model, spec, cache)?);
        }
    }
    Ok(slot.as_ref())
}

/// The policy's template, else the one the model's chat template names.
pub(super) fn template_of<M: LogitModel>(policy: &Policy, m: &M) -> TemplateKind {
    policy
        .gate
        .template
        .unwrap_or_else(|| TemplateKind::detect(m.chat_template()))
}
