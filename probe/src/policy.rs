//! The policy: tools and their argument schemas, trust tiers, rate limits, gate settings and
//! constitutional rules, read from a TOML-subset file (docs/policy.md). Errors name a line.

use crate::action::TEXT_TOOL;
use crate::prompt::{Example, PromptSpec, Subject, TemplateKind, Verbalizer};
use crate::ratelimit::RateSpec;
use crate::rules::{ArgKind, Effect, Rule};
use crate::toml::{parse_document, Document, Table, Toml};
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

#[derive(Debug, Clone, PartialEq)]
pub struct PolicyError {
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "policy line {}: {}", self.line, self.reason)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgType {
    String,
    Integer,
    Number,
    Boolean,
    /// An array of strings.
    StringArray,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ArgSpec {
    pub name: String,
    pub ty: ArgType,
    pub required: bool,
    /// Maximum length in bytes of a string (of each element for arrays), or items of an array.
    pub max_len: usize,
    pub kind: ArgKind,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// What the tool does, as its author declares it ("" when the policy gives none).
    pub description: String,
    pub args: Vec<ArgSpec>,
    pub allow_extra_args: bool,
    pub max_args_bytes: usize,
    pub alpha: Option<f32>,
    pub threshold: Option<f32>,
    pub rate: Option<RateSpec>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct GateOverride {
    pub alpha: Option<f32>,
    pub threshold: Option<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TierSpec {
    /// Tool name globs this tier may call.
    pub tools: Vec<String>,
    pub alpha: Option<f32>,
    pub threshold: Option<f32>,
    pub overrides: BTreeMap<String, GateOverride>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OnInjection {
    Deny,
    /// Add this much to p(dangerous).
    Raise(f32),
}

#[derive(Debug, Clone, PartialEq)]
pub struct GateSettings {
    pub enabled: bool,
    pub verbalizer: Verbalizer,
    /// `None` = detect from the model's chat template.
    pub template: Option<TemplateKind>,
    pub alpha: f32,
    /// The content-free inputs of the tool-call prompt's calibration.
    pub calibration: CalibrationScope,
    pub threshold: f32,
    pub system: String,
    pub policy_text: String,
    pub examples: Vec<Example>,
    /// The question after the action; `None` = the verbalizer's own.
    pub question: Option<String>,
    /// `[gate.text]`: the prompt and defaults for free text (the `text` tool); `None` = free
    /// text is judged with the tool-call prompt.
    pub text: Option<PromptSettings>,
    /// `[gate.injection]`: a second question asked of the tool calls that p(dangerous) lets
    /// through, whether the call carries text that tries to steer the monitor, with its own alpha
    /// and threshold. Its examples' `dangerous = true` means "carries such text".
    pub injection: Option<PromptSettings>,
}

/// A prompt of its own (`[gate.text]`, `[gate.injection]`): system and policy texts, labelled
/// examples, verbalizer, question and defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptSettings {
    pub verbalizer: Verbalizer,
    pub alpha: f32,
    pub threshold: f32,
    pub system: String,
    pub policy_text: String,
    pub examples: Vec<Example>,
    pub question: Option<String>,
}

impl PromptSettings {
    /// This section's prompt, showing the item as `subject`.
    pub fn spec(&self, template: TemplateKind, subject: Subject) -> PromptSpec {
        PromptSpec {
            template,
            verbalizer: self.verbalizer,
            subject,
            system: self.system.clone(),
            policy_text: self.policy_text.clone(),
            examples: self.examples.clone(),
            question: self.question.clone(),
        }
    }
}

impl GateSettings {
    /// The text section when `tool` is free text and the policy has one.
    pub fn text_for(&self, tool: &str) -> Option<&PromptSettings> {
        self.text.as_ref().filter(|_| tool == TEXT_TOOL)
    }

    /// The prompt that judges actions of `tool`: the `[gate.text]` prompt for free text when the
    /// policy has one, the tool-call prompt otherwise.
    pub fn prompt_spec(&self, template: TemplateKind, tool: &str) -> PromptSpec {
        match self.text_for(tool) {
            Some(t) => t.spec(template, Subject::Request),
            None => PromptSpec {
                template,
                verbalizer: self.verbalizer,
                subject: Subject::Action,
                system: self.system.clone(),
                policy_text: self.policy_text.clone(),
                examples: self.examples.clone(),
                question: self.question.clone(),
            },
        }
    }

    /// The injection check when the policy has one and `tool` is a tool call (free text is itself
    /// addressed to a model: the question has no meaning there).
    pub fn injection_for(&self, tool: &str) -> Option<&PromptSettings> {
        self.injection.as_ref().filter(|_| tool != TEXT_TOOL)
    }

    /// The injection check's prompt for `tool` (see [`GateSettings::injection_for`]).
    pub fn injection_spec(&self, template: TemplateKind, tool: &str) -> Option<PromptSpec> {
        self.injection_for(tool)
            .map(|i| i.spec(template, Subject::Action))
    }

    /// The labelled examples of the prompt that judges `tool`.
    pub fn examples_for(&self, tool: &str) -> &[Example] {
        self.text_for(tool).map_or(&self.examples, |t| &t.examples)
    }

    /// The verbalizer of the prompt that judges `tool`.
    pub fn verbalizer_for(&self, tool: &str) -> Verbalizer {
        self.text_for(tool)
            .map_or(self.verbalizer, |t| t.verbalizer)
    }

    /// The arguments of `tool`'s empty call when the tool-call prompt judges `tool` with a prior
    /// of its own: under per-tool calibration, [`empty_call_args`]; otherwise none.
    pub fn content_free_args<'p>(
        &self,
        tools: &'p BTreeMap<String, ToolSpec>,
        tool: &str,
    ) -> Option<Vec<&'p str>> {
        if self.calibration != CalibrationScope::PerTool {
            return None;
        }
        empty_call_args(tools, tool)
    }

    /// The gate's default (alpha, threshold) for `tool` before tool and tier overrides.
    pub fn defaults_for(&self, tool: &str) -> (f32, f32) {
        match self.text_for(tool) {
            Some(t) => (t.alpha, t.threshold),
            None => (self.alpha, self.threshold),
        }
    }
}

/// The arguments of `tool`'s empty call, whatever the policy's calibration: the required argument
/// names of a tool the policy declares, in declaration order (none for free text, which is not
/// a tool call, nor for an undeclared tool).
pub fn empty_call_args<'p>(
    tools: &'p BTreeMap<String, ToolSpec>,
    tool: &str,
) -> Option<Vec<&'p str>> {
    if tool == TEXT_TOOL {
        return None;
    }
    let spec = tools.get(tool)?;
    Some(
        spec.args
            .iter()
            .filter(|a| a.required)
            .map(|a| a.name.as_str())
            .collect(),
    )
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    pub default_tier: String,
    pub max_args_bytes: usize,
    pub rules_default: Effect,
    pub gate: GateSettings,
    pub on_injection: OnInjection,
    pub tools: BTreeMap<String, ToolSpec>,
    pub tiers: BTreeMap<String, TierSpec>,
    pub agents: BTreeMap<String, String>,
    pub rules: Vec<Rule>,
    /// blake3 of the policy's text as loaded: every audit record names the policy that decided.
    pub digest: [u8; 32],
}

impl Policy {
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let doc = parse_document(text).map_err(|e| PolicyError {
            line: e.line,
            reason: e.reason,
        })?;
        let mut policy = Loader { doc: &doc }.load()?;
        policy.digest = *blake3::hash(text.as_bytes()).as_bytes();
        Ok(policy)
    }

    /// The tier of an agent (its own entry, else the default tier).
    pub fn tier_of(&self, agent: &str) -> &str {
        self.agents
            .get(agent)
            .map(String::as_str)
            .unwrap_or(&self.default_tier)
    }

    /// (alpha, threshold) for a tool called by a tier: tier override > tool > tier > gate default.
    pub fn gate_params(&self, tier: &str, tool: &str) -> (f32, f32) {
        let t = self.tiers.get(tier);
        let o = t.and_then(|t| t.overrides.get(tool));
        let s = self.tools.get(tool);
        let (gate_alpha, gate_threshold) = self.gate.defaults_for(tool);
        let alpha = o
            .and_then(|o| o.alpha)
            .or(s.and_then(|s| s.alpha))
            .or(t.and_then(|t| t.alpha))
            .unwrap_or(gate_alpha);
        let threshold = o
            .and_then(|o| o.threshold)
            .or(s.and_then(|s| s.threshold))
            .or(t.and_then(|t| t.threshold))
            .unwrap_or(gate_threshold);
        (alpha, threshold)
    }
}

pub(crate) struct Loader<'d> {
    pub(crate) doc: &'d Document,
}

pub(crate) type R<T> = Result<T, PolicyError>;

impl Loader<'_> {
    pub(crate) fn err(&self, path: &str, reason: impl Into<String>) -> PolicyError {
        PolicyError {
            line: self.doc.line_of(path),
            reason: format!("{path}: {}", reason.into()),
        }
    }

    pub(crate) fn check_keys(&self, t: &Table, path: &str, allowed: &[&str]) -> R<()> {
        match t.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(self.err(
                &join(path, k),
                format!("unknown key (allowed: {})", allowed.join(", ")),
            )),
            None => Ok(()),
        }
    }
    pub(crate) fn table<'t>(&self, t: &'t Table, path: &str, key: &str) -> R<Option<&'t Table>> {
        match t.get(key) {
            None => Ok(None),
            Some(Toml::Table(inner)) => Ok(Some(inner)),
            Some(v) => Err(self.err(
                &join(path, key),
                format!("expected a table, found {}", v.type_name()),
            )),
        }
    }
    pub(crate) fn string(&self, t: &Table, path: &str, key: &str) -> R<Option<String>> {
        match t.get(key) {
            None => Ok(None),
            Some(Toml::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.err(
                &join(path, key),
                format!("expected a string, found {}", v.type_name()),
            )),
        }
    }
    pub(crate) fn boolean(&self, t: &Table, path: &str, key: &str) -> R<Option<bool>> {
        match t.get(key) {
            None => Ok(None),
            Some(Toml::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.err(
                &join(path, key),
                format!("expected a boolean, found {}", v.type_name()),
            )),
        }
    }
    pub(crate) fn number(
        &self,
        t: &Table,
        path: &str,
        key: &str,
        min: f64,
        max: f64,
    ) -> R<Option<f64>> {
        let v = match t.get(key) {
            None => return Ok(None),
            Some(Toml::Integer(i)) => *i as f64,
            Some(Toml::Float(f)) => *f,
            Some(v) => {
                return Err(self.err(
                    &join(path, key),
                    format!("expected a number, found {}", v.type_name()),
                ))
            }
        };
        if !(min..=max).contains(&v) {
            return Err(self.err(&join(path, key), format!("{v} is outside [{min}, {max}]")));
        }
        Ok(Some(v))
    }
    pub(crate) fn prob(&self, t: &Table, path: &str, key: &str) -> R<Option<f32>> {
        Ok(self.number(t, path, key, 0.0, 1.0)?.map(|v| v as f32))
    }
    pub(crate) fn strings(&self, t: &Table, path: &str, key: &str) -> R<Vec<String>> {
        match t.get(key) {
            None => Ok(Vec::new()),
            Some(Toml::Array(items)) => items
                .iter()
                .map(|i| match i {
                    Toml::String(s) => Ok(s.clone()),
                    other => Err(self.err(
                        &join(path, key),
                        format!("expected strings, found {}", other.type_name()),
                    )),
                })
                .collect(),
            Some(v) => Err(self.err(
                &join(path, key),
                format!("expected an array, found {}", v.type_name()),
            )),
        }
    }
    pub(crate) fn tables<'t>(&self, t: &'t Table, path: &str, key: &str) -> R<Vec<&'t Table>> {
        match t.get(key) {
            None => Ok(Vec::new()),
            Some(Toml::Array(items)) => items
                .iter()
                .map(|i| match i {
                    Toml::Table(t) => Ok(t),
                    _ => Err(self.err(&join(path, key), "expected [[array of tables]]")),
                })
                .collect(),
            Some(_) => Err(self.err(&join(path, key), "expected [[array of tables]]")),
        }
    }

    fn load(&self) -> R<Policy> {
        let root = &self.doc.root;
        self.check_keys(
            root,
            "",
            &[
                "policy",
                "gate",
                "prefilter",
                "tools",
                "tiers",
                "agents",
                "rules",
            ],
        )?;
        let empty = Table::new();
        let head = self.table(root, "", "policy")?.unwrap_or(&empty);
        self.check_keys(
            head,
            "policy",
            &["name", "default_tier", "max_args_bytes", "rules_default"],
        )?;
        let rules_default = match self.string(head, "policy", "rules_default")?.as_deref() {
            None | Some("allow") => Effect::Allow,
            Some("deny") => Effect::Deny,
            Some(o) => {
                return Err(self.err(
                    "policy.rules_default",
                    format!("{o:?} is not \"allow\" or \"deny\""),
                ))
            }
        };
        let tools = self.load_tools(root)?;
        let tiers = self.load_tiers(root, &tools)?;
        let default_tier = self
            .string(head, "policy", "default_tier")?
            .unwrap_or_else(|| "untrusted".to_string());
        if !tiers.contains_key(&default_tier) {
            return Err(self.err(
                "policy.default_tier",
                format!("tier {default_tier:?} is not defined"),
            ));
        }
        let mut agents = BTreeMap::new();
        if let Some(a) = self.table(root, "", "agents")? {
            for (name, v) in a {
                match v {
                    Toml::String(tier) if tiers.contains_key(tier) => {
                        agents.insert(name.clone(), tier.clone());
                    }
                    _ => {
                        return Err(
                            self.err(&join("agents", name), "expected the name of a defined tier")
                        )
                    }
                }
            }
        }
        let pre = self.table(root, "", "prefilter")?.unwrap_or(&empty);
        self.check_keys(pre, "prefilter", &["on_injection", "raise_by"])?;
        let on_injection = match self.string(pre, "prefilter", "on_injection")?.as_deref() {
            None | Some("deny") => OnInjection::Deny,
            Some("raise") => {
                OnInjection::Raise(self.prob(pre, "prefilter", "raise_by")?.unwrap_or(0.3))
            }
            Some(o) => {
                return Err(self.err(
                    "prefilter.on_injection",
                    format!("{o:?} is not \"deny\" or \"raise\""),
                ))
            }
        };
        Ok(Policy {
            name: self
                .string(head, "policy", "name")?
                .unwrap_or_else(|| "unnamed".to_string()),
            max_args_bytes: self
                .number(head, "policy", "max_args_bytes", 1.0, 1.0e9)?
                .unwrap_or(65536.0) as usize,
            default_tier,
            rules_default,
            gate: self.load_gate(root, &tools)?,
            on_injection,
            rules: self.load_rules(root)?,
            tools,
            tiers,
            agents,
            digest: [0; 32],
        })
    }
}

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

#[path = "policy_gate.rs"]
mod gate_section;
pub use gate_section::CalibrationScope;
#[path = "policy_sections.rs"]
mod sections;

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
