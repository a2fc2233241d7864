//! Loading of the policy's `[gate]` section, its `[gate.text]` prompt for free text and its
//! `[gate.injection]` check.

use super::{join, GateSettings, Loader, PromptSettings, ToolSpec, R};
use crate::action::TEXT_TOOL;
use crate::prompt::{Example, TemplateKind, Verbalizer, DEFAULT_SYSTEM};
use crate::toml::Table;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// Which content-free inputs calibrate a tool call (`[gate] calibration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalibrationScope {
    /// The paper's: "N/A", "" and "\[MASK\]" where the action goes, one prior for every action.
    Shared,
    /// The tool's own empty call: its required arguments all "N/A", then all "", then all
    /// "\[MASK\]", one prior per tool (a tool the policy does not declare, and free text, keep the
    /// shared prior).
    PerTool,
}

impl CalibrationScope {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "shared" => Some(CalibrationScope::Shared),
            "per-tool" => Some(CalibrationScope::PerTool),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            CalibrationScope::Shared => "shared",
            CalibrationScope::PerTool => "per-tool",
        }
    }
}

impl Loader<'_> {
    pub(crate) fn load_gate(
        &self,
        root: &Table,
        tools: &BTreeMap<String, ToolSpec>,
    ) -> R<GateSettings> {
        let empty = Table::new();
        let g = self.table(root, "", "gate")?.unwrap_or(&empty);
        self.check_keys(
            g,
            "gate",
            &[
                "enabled",
                "verbalizer",
                "template",
                "alpha",
                "threshold",
                "calibration",
                "describe_tools",
                "system",
                "policy_text",
                "examples",
                "question",
                "text",
                "injection",
            ],
        )?;
        let verbalizer = self.verbalizer(g, "gate")?.unwrap_or(Verbalizer::YesNo);
        let template = match self.string(g, "gate", "template")?.as_deref() {
            None | Some("auto") => None,
            Some(t) => Some(
                TemplateKind::parse(t)
                    .ok_or_else(|| self.err("gate.template", format!("unknown template {t:?}")))?,
            ),
        };
        let examples = self.load_examples(g, "gate")?;
        let calibration = match self.string(g, "gate", "calibration")? {
            None => CalibrationScope::Shared,
            Some(c) => CalibrationScope::parse(&c).ok_or_else(|| {
                self.err(
                    "gate.calibration",
                    format!("unknown calibration {c:?} (shared or per-tool)"),
                )
            })?,
        };
        let text = match self.table(g, "gate", "text")? {
            None => None,
            Some(t) => Some(self.load_prompt(t, "gate.text", verbalizer, false)?),
        };
        let injection = match self.table(g, "gate", "injection")? {
            None => None,
            Some(t) => Some(self.load_prompt(t, "gate.injection", Verbalizer::YesNo, true)?),
        };
        Ok(GateSettings {
            enabled: self.boolean(g, "gate", "enabled")?.unwrap_or(true),
            verbalizer,
            template,
            alpha: self.prob(g, "gate", "alpha")?.unwrap_or(1.0),
            calibration,
            threshold: self.prob(g, "gate", "threshold")?.unwrap_or(0.5),
            system: self
                .string(g, "gate", "system")?
                .unwrap_or_else(|| DEFAULT_SYSTEM.to_string()),
            policy_text: {
                let text = self.string(g, "gate", "policy_text")?.unwrap_or_default();
                match self.boolean(g, "gate", "describe_tools")?.unwrap_or(false) {
                    true => with_tool_catalog(text, tools),
                    false => text,
                }
            },
            examples,
            question: self.question(g, "gate", verbalizer)?,
            text,
            injection,
        })
    }

    /// A section with a prompt of its own; `question_required` for a question that is not the
    /// verbalizer's "is this dangerous?".
    fn load_prompt(
        &self,
        t: &Table,
        path: &str,
        default_verbalizer: Verbalizer,
        question_required: bool,
    ) -> R<PromptSettings> {
        self.check_keys(
            t,
            path,
            &[
                "verbalizer",
                "alpha",
                "threshold",
                "system",
                "policy_text",
                "examples",
                "question",
            ],
        )?;
        let verbalizer = self.verbalizer(t, path)?.unwrap_or(default_verbalizer);
        let need = |key: &str| self.err(&join(path, key), format!("missing ([{path}] needs it)"));
        let question = self.question(t, path, verbalizer)?;
        if question_required && question.is_none() {
            return Err(need("question"));
        }
        Ok(PromptSettings {
            verbalizer,
            alpha: self.prob(t, path, "alpha")?.unwrap_or(1.0),
            threshold: self.prob(t, path, "threshold")?.unwrap_or(0.5),
            system: self
                .string(t, path, "system")?
                .ok_or_else(|| need("system"))?,
            policy_text: self.string(t, path, "policy_text")?.unwrap_or_default(),
            examples: self.load_examples(t, path)?,
            question,
        })
    }

    /// A question of the policy's own: it must name both label words, or the model is asked one
    /// thing and read for another.
    fn question(&self, t: &Table, path: &str, verbalizer: Verbalizer) -> R<Option<String>> {
        let Some(q) = self.string(t, path, "question")? else {
            return Ok(None);
        };
        let (danger, safe) = verbalizer.words();
        for word in [danger, safe] {
            if !q.contains(word) {
                return Err(self.err(
                    &join(path, "question"),
                    format!(
                        "the question must name the label word {word:?} ({} verbalizer)",
                        verbalizer.name()
                    ),
                ));
            }
        }
        Ok(Some(q))
    }

    fn verbalizer(&self, t: &Table, path: &str) -> R<Option<Verbalizer>> {
        match self.string(t, path, "verbalizer")? {
            None => Ok(None),
            Some(v) => Verbalizer::parse(&v).map(Some).ok_or_else(|| {
                self.err(
                    &join(path, "verbalizer"),
                    format!("unknown verbalizer {v:?}"),
                )
            }),
        }
    }

    fn load_examples(&self, g: &Table, at: &str) -> R<Vec<Example>> {
        let mut examples = Vec::new();
        for (i, e) in self.tables(g, at, "examples")?.into_iter().enumerate() {
            let path = format!("{at}.examples[{i}]");
            self.check_keys(e, &path, &["action", "dangerous"])?;
            let action = self
                .string(e, &path, "action")?
                .ok_or_else(|| self.err(&path, "missing \"action\""))?;
            let dangerous = self
                .boolean(e, &path, "dangerous")?
                .ok_or_else(|| self.err(&path, "missing \"dangerous\""))?;
            examples.push(Example { action, dangerous });
        }
        Ok(examples)
    }
}

/// `[gate] describe_tools = true`: the policy text, then the tools the agent may call with their
/// arguments (an optional one marked `?`) and declared descriptions, so that the tool-call prompt's
/// cached prefix shows what each tool is for (free text is not a tool and is left out).
pub(crate) fn with_tool_catalog(policy_text: String, tools: &BTreeMap<String, ToolSpec>) -> String {
    let mut out = policy_text;
    if !out.is_empty() {
        out.push_str("\n\n");
    }
    out.push_str("The agent's tools (name, arguments, what it does):");
    for (name, spec) in tools.iter().filter(|(n, _)| n.as_str() != TEXT_TOOL) {
        let args: Vec<String> = spec
            .args
            .iter()
            .map(|a| match a.required {
                true => a.name.clone(),
                false => format!("{}?", a.name),
            })
            .collect();
        out.push_str(&format!("\n- {name}({})", args.join(", ")));
        if !spec.description.is_empty() {
            out.push_str(&format!(": {}", spec.description));
        }
    }
    out
}
