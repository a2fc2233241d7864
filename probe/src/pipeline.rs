//! The governance pipeline: schema, trust tier, rate limit, adversarial pre-filter, ProbeLogits
//! gate, constitutional rules, in this order. Every layer gives a reason; any error is a denial.

use crate::action::Action;
use crate::calibration::CalibrationCache;
use crate::gate::{GateScore, ProbeGate};
use crate::json::Value;
use crate::policy::{ArgSpec, OnInjection, Policy};
use crate::prefilter::prefilter;
use crate::ratelimit::RateLimiter;
use crate::rules::{evaluate, glob, ArgFacts, Effect};
pub use crate::schema::validate_args;
use crate::{LogitModel, ProbeError};
use alloc::borrow::Cow;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Schema,
    Tier,
    RateLimit,
    Prefilter,
    Probe,
    Rules,
}

impl Layer {
    pub fn name(self) -> &'static str {
        match self {
            Layer::Schema => "schema",
            Layer::Tier => "tier",
            Layer::RateLimit => "rate_limit",
            Layer::Prefilter => "prefilter",
            Layer::Probe => "probe",
            Layer::Rules => "rules",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    Deny,
    /// Passed with a finding (a pre-filter flag that raises the probe score).
    Flag,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Deny => "deny",
            Status::Flag => "flag",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LayerOutcome {
    pub layer: Layer,
    pub status: Status,
    /// Static text for the common pass cases (no allocation on the fast path).
    pub reason: Cow<'static, str>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub verdict: Verdict,
    /// The layer that decided: the denying one, or the last one run for an allow.
    pub layer: Layer,
    pub reason: String,
    /// Calibrated p(dangerous) after any pre-filter raise, when the probe ran.
    pub p_dangerous: Option<f32>,
    /// The injection check's calibrated probability that the call carries steering text, when
    /// it ran (a tool call that p(dangerous) let through, under a policy with the check).
    pub p_injection: Option<f32>,
    pub score: Option<GateScore>,
    pub layers: Vec<LayerOutcome>,
}

/// Which layers run (ablations). The pre-filter's neutralisation always applies before a prompt
/// is built; `prefilter = false` only stops its findings from denying or raising the score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layers {
    pub schema: bool,
    pub tier: bool,
    pub rate: bool,
    pub prefilter: bool,
    pub probe: bool,
    pub rules: bool,
}

impl Layers {
    pub const ALL: Layers = Layers {
        schema: true,
        tier: true,
        rate: true,
        prefilter: true,
        probe: true,
        rules: true,
    };
    pub const WITHOUT_PROBE: Layers = Layers {
        probe: false,
        ..Layers::ALL
    };
    pub const PROBE_ONLY: Layers = Layers {
        schema: false,
        tier: false,
        rate: false,
        prefilter: false,
        probe: true,
        rules: false,
    };
}

pub struct Pipeline<'m, M: LogitModel> {
    policy: Policy,
    /// The tool-call prompt's gate: prefilled by [`Pipeline::new`], on first use by
    /// [`Pipeline::on_demand`].
    gate: Option<ProbeGate<'m, M>>,
    /// The `[gate.text]` prompt's gate, prefilled on the first free-text action (a policy that
    /// never sees free text never pays for its prefix).
    text_gate: Option<ProbeGate<'m, M>>,
    /// The `[gate.injection]` question's gate, prefilled with the tool-call gate (or on first use).
    injection_gate: Option<ProbeGate<'m, M>>,
    model: Option<&'m M>,
    limiter: RateLimiter,
    layers: Layers,
    model_digest: [u8; 32],
}

impl<'m, M: LogitModel> Pipeline<'m, M> {
    /// Build the pipeline; with the probe layer on this prefills the tool-call prompt's prefix (and
    /// the injection check's) and computes the calibration, so a label that is not a single token
    /// fails here, not at decision time, and no verdict waits for a prefix.
    pub fn new(
        policy: Policy,
        model: Option<&'m M>,
        cache: &mut CalibrationCache,
        layers: Layers,
    ) -> Result<Self, ProbeError> {
        let mut p = Self::on_demand(policy, model, layers)?;
        if let Some(m) = p.model {
            let template = template_of(&p.policy, m);
            let gates = (&mut p.gate, &mut p.text_gate);
            probe_layer::judging_gate(gates, m, &p.policy, template, "", cache)?;
            if let Some(gate) = p.gate.as_mut() {
                for tool in p.policy.tools.keys() {
                    probe_layer::add_tool_prior(gate, &p.policy, tool, cache)?;
                }
            }
            let slot = &mut p.injection_gate;
            probe_layer::injection_gate(slot, m, &p.policy.gate, template, "", cache)?;
        }
        Ok(p)
    }

    /// Build the pipeline without prefilling anything: each prompt's prefix is prefilled the first
    /// time an action needs it (a one-shot command judging one action pays only for the prompts
    /// that action reaches). A prompt that cannot be built then denies that action.
    pub fn on_demand(
        policy: Policy,
        model: Option<&'m M>,
        layers: Layers,
    ) -> Result<Self, ProbeError> {
        let probe = layers.probe && policy.gate.enabled;
        if probe && model.is_none() {
            return Err(ProbeError::BadRequest(
                "the probe layer needs a model".to_string(),
            ));
        }
        let model_digest = model.map(|m| m.model_digest()).unwrap_or([0; 32]);
        Ok(Pipeline {
            policy,
            gate: None,
            text_gate: None,
            injection_gate: None,
            model: model.filter(|_| probe),
            limiter: RateLimiter::new(),
            layers: Layers { probe, ..layers },
            model_digest,
        })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }
    pub fn model_digest(&self) -> [u8; 32] {
        self.model_digest
    }
    /// The model's and the policy's digests, as audit records name them.
    pub fn provenance(&self) -> crate::audit::Provenance {
        crate::audit::Provenance {
            model: self.model_digest,
            policy: self.policy.digest,
        }
    }
    /// Override alpha and threshold for every tool and tier, free text included (the CLI's `--alpha`).
    /// The injection check keeps its own alpha and threshold.
    pub fn set_gate_defaults(&mut self, alpha: Option<f32>, threshold: Option<f32>) {
        let p = &mut self.policy;
        if let Some(a) = alpha {
            p.gate.alpha = a;
            p.gate.text.iter_mut().for_each(|t| t.alpha = a);
            p.tools.values_mut().for_each(|t| t.alpha = None);
            p.tiers.values_mut().for_each(|t| {
                t.alpha = None;
                t.overrides.values_mut().for_each(|o| o.alpha = None);
            });
        }
        if let Some(th) = threshold {
            p.gate.threshold = th;
            p.gate.text.iter_mut().for_each(|t| t.threshold = th);
        }
    }

    /// Decide one action of `agent` at time `now_ms` (milliseconds, any fixed origin).
    pub fn decide(&mut self, action: &Action, agent: &str, now_ms: u64) -> Decision {
        let mut d = Decision {
            verdict: Verdict::Deny,
            layer: Layer::Schema,
            reason: String::new(),
            p_dangerous: None,
            p_injection: None,
            score: None,
            layers: Vec::with_capacity(6),
        };
        match self.run_layers(action, agent, now_ms, &mut d) {
            Ok(()) => {
                d.verdict = Verdict::Allow;
                d.layer = d.layers.last().map(|l| l.layer).unwrap_or(Layer::Rules);
                d.reason = "all layers passed".to_string();
            }
            Err((layer, reason)) => {
                d.layers.push(LayerOutcome {
                    layer,
                    status: Status::Deny,
                    reason: Cow::Owned(reason.clone()),
                });
                d.verdict = Verdict::Deny;
                d.layer = layer;
                d.reason = reason;
            }
        }
        d
    }

    fn run_layers(
        &mut self,
        action: &Action,
        agent: &str,
        now_ms: u64,
        d: &mut Decision,
    ) -> Result<(), (Layer, String)> {
        let pass = |d: &mut Decision, layer, reason: Cow<'static, str>| {
            d.layers.push(LayerOutcome {
                layer,
                status: Status::Pass,
                reason,
            })
        };
        let tool = self.policy.tools.get(&action.tool);
        if self.layers.schema {
            let spec =
                tool.ok_or_else(|| (Layer::Schema, format!("unknown tool {:?}", action.tool)))?;
            let limit = spec.max_args_bytes.min(self.policy.max_args_bytes);
            validate_args(spec, &action.args, limit).map_err(|e| (Layer::Schema, e))?;
            pass(
                d,
                Layer::Schema,
                Cow::Borrowed("arguments match the tool's schema"),
            );
        }
        let tier = self.policy.tier_of(agent);
        if self.layers.tier {
            let t = self
                .policy
                .tiers
                .get(tier)
                .ok_or_else(|| (Layer::Tier, format!("tier {tier:?} is not defined")))?;
            if !t.tools.iter().any(|g| glob(g, &action.tool)) {
                return Err((
                    Layer::Tier,
                    format!(
                        "tier {tier:?} of agent {agent:?} may not call {:?}",
                        action.tool
                    ),
                ));
            }
            pass(
                d,
                Layer::Tier,
                Cow::Borrowed("the agent's tier may call this tool"),
            );
        }
        if self.layers.rate {
            match tool.and_then(|t| t.rate) {
                Some(spec) => {
                    if let Err(wait) = self.limiter.try_take(agent, &action.tool, spec, now_ms) {
                        return Err((
                            Layer::RateLimit,
                            format!(
                                "rate limit for {agent:?}/{:?}: retry in {wait} ms",
                                action.tool
                            ),
                        ));
                    }
                    pass(d, Layer::RateLimit, Cow::Borrowed("within the rate limit"));
                }
                None => pass(
                    d,
                    Layer::RateLimit,
                    Cow::Borrowed("no rate limit for this tool"),
                ),
            }
        }
        // Neutralise before any prompt is built, whether or not the layer may deny.
        let filtered = prefilter(action);
        let mut raise = 0.0f32;
        if self.layers.prefilter {
            if filtered.flagged() {
                match self.policy.on_injection {
                    OnInjection::Deny => {
                        return Err((
                            Layer::Prefilter,
                            format!("injection: {}", filtered.summary()),
                        ))
                    }
                    OnInjection::Raise(by) if !self.layers.probe => {
                        return Err((
                            Layer::Prefilter,
                            format!(
                                "injection (raise {by} with no probe layer): {}",
                                filtered.summary()
                            ),
                        ));
                    }
                    OnInjection::Raise(by) => {
                        raise = by;
                        d.layers.push(LayerOutcome {
                            layer: Layer::Prefilter,
                            status: Status::Flag,
                            reason: Cow::Owned(format!(
                                "neutralised, score raised by {by}: {}",
                                filtered.summary()
                            )),
                        });
                    }
                }
            } else {
                pass(d, Layer::Prefilter, Cow::Borrowed("no injection found"));
            }
        }
        if self.layers.probe {
            let params = self.policy.gate_params(tier, &action.tool);
            self.probe_layer(&filtered.action, params, raise, d)?;
        }
        if self.layers.rules {
            let tool = self.policy.tools.get(&action.tool);
            let mut facts = ArgFacts::default();
            if let Some(spec) = tool {
                for arg in &spec.args {
                    add_facts(&mut facts, arg, action.args.get(&arg.name));
                }
            }
            // A host the rules' globs cannot judge (what a client maps further, an empty host)
            // is refused when any rule names hosts: it could be one of them.
            if let Some(host) = facts.hosts.iter().find(|h| !crate::url_host::plain_host(h)) {
                if self.policy.rules.iter().any(|r| !r.hosts.is_empty()) {
                    return Err((
                        Layer::Rules,
                        format!(
                            "URL host {host:?} is not a plain ASCII name or address \
                             (international names as xn--...)"
                        ),
                    ));
                }
            }
            // A program only the shell can name (`$x`, `$(...)`, `/bin/r?`, `... | sh`) is refused
            // when any rule names commands: it could be one of them.
            if let Some(program) = facts.unknown_programs.first() {
                if self.policy.rules.iter().any(|r| !r.commands.is_empty()) {
                    return Err((
                        Layer::Rules,
                        format!(
                            "command runs a program only the shell can name: {:?}",
                            program.chars().take(64).collect::<String>()
                        ),
                    ));
                }
            }
            match evaluate(
                &self.policy.rules,
                self.policy.rules_default,
                &action.tool,
                &facts,
            ) {
                (Effect::Deny, Some(r)) => {
                    return Err((Layer::Rules, format!("rule {}: {}", r.id, r.reason)))
                }
                (Effect::Deny, None) => {
                    return Err((
                        Layer::Rules,
                        "no rule allows this action (default deny)".to_string(),
                    ))
                }
                (Effect::Allow, Some(r)) => pass(
                    d,
                    Layer::Rules,
                    Cow::Owned(format!("allowed by rule {}", r.id)),
                ),
                (Effect::Allow, None) => {
                    pass(d, Layer::Rules, Cow::Borrowed("no rule denies this action"))
                }
            }
        }
        Ok(())
    }
}

fn add_facts(facts: &mut ArgFacts, arg: &ArgSpec, value: Option<&Value>) {
    match value {
        Some(Value::String(s)) => facts.add(arg.kind, s),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .for_each(|s| facts.add(arg.kind, s)),
        _ => {}
    }
}

#[path = "pipeline_probe.rs"]
mod probe_layer;
use probe_layer::template_of;

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
