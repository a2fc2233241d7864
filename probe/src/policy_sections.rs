//! Loading of the policy's `[tools]`, `[tiers]` and `[[rules]]` sections.

use super::{join, ArgSpec, ArgType, GateOverride, Loader, PolicyError, TierSpec, ToolSpec, R};
use crate::ratelimit::RateSpec;
use crate::rules::{ArgKind, Effect, Rule};
use crate::toml::{Table, Toml};
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

impl Loader<'_> {
    pub(crate) fn load_tools(&self, root: &Table) -> R<BTreeMap<String, ToolSpec>> {
        let mut out = BTreeMap::new();
        let Some(tools) = self.table(root, "", "tools")? else {
            return Err(PolicyError {
                line: 1,
                reason: "the policy defines no [tools.NAME]".to_string(),
            });
        };
        for (name, v) in tools {
            let path = join("tools", name);
            let Toml::Table(t) = v else {
                return Err(self.err(&path, "expected a table"));
            };
            self.check_keys(
                t,
                &path,
                &[
                    "description",
                    "args",
                    "allow_extra_args",
                    "max_args_bytes",
                    "alpha",
                    "threshold",
                    "rate_per_minute",
                    "burst",
                ],
            )?;
            let mut args = Vec::new();
            for (i, a) in self.tables(t, &path, "args")?.into_iter().enumerate() {
                args.push(self.load_arg(a, &format!("{path}.args[{i}]"))?);
            }
            let rate = match (
                self.number(t, &path, "rate_per_minute", 0.0, 1.0e9)?,
                self.number(t, &path, "burst", 1.0, 1.0e9)?,
            ) {
                (None, None) => None,
                (Some(per_minute), burst) => Some(RateSpec {
                    per_minute,
                    burst: burst.unwrap_or(per_minute.max(1.0)),
                }),
                (None, Some(_)) => {
                    return Err(self.err(&join(&path, "burst"), "burst needs rate_per_minute"))
                }
            };
            out.insert(
                name.clone(),
                ToolSpec {
                    description: self.string(t, &path, "description")?.unwrap_or_default(),
                    args,
                    allow_extra_args: self.boolean(t, &path, "allow_extra_args")?.unwrap_or(false),
                    max_args_bytes: self
                        .number(t, &path, "max_args_bytes", 1.0, 1.0e9)?
                        .unwrap_or(65536.0) as usize,
                    alpha: self.prob(t, &path, "alpha")?,
                    threshold: self.prob(t, &path, "threshold")?,
                    rate,
                },
            );
        }
        Ok(out)
    }

    pub(crate) fn load_arg(&self, a: &Table, path: &str) -> R<ArgSpec> {
        self.check_keys(a, path, &["name", "type", "required", "max_len", "kind"])?;
        let name = self
            .string(a, path, "name")?
            .ok_or_else(|| self.err(path, "missing \"name\""))?;
        let ty = match self.string(a, path, "type")?.as_deref() {
            None | Some("string") => ArgType::String,
            Some("integer") => ArgType::Integer,
            Some("number") => ArgType::Number,
            Some("boolean") => ArgType::Boolean,
            Some("string_array") => ArgType::StringArray,
            Some(o) => return Err(self.err(&join(path, "type"), format!("unknown type {o:?}"))),
        };
        let kind = match self.string(a, path, "kind")?.as_deref() {
            None | Some("text") => ArgKind::Text,
            Some("path") => ArgKind::Path,
            Some("url") => ArgKind::Url,
            Some("command") => ArgKind::Command,
            Some(o) => return Err(self.err(&join(path, "kind"), format!("unknown kind {o:?}"))),
        };
        Ok(ArgSpec {
            name,
            ty,
            required: self.boolean(a, path, "required")?.unwrap_or(true),
            max_len: self
                .number(a, path, "max_len", 0.0, 1.0e9)?
                .unwrap_or(4096.0) as usize,
            kind,
        })
    }

    pub(crate) fn load_tiers(
        &self,
        root: &Table,
        tools: &BTreeMap<String, ToolSpec>,
    ) -> R<BTreeMap<String, TierSpec>> {
        let mut out = BTreeMap::new();
        let Some(tiers) = self.table(root, "", "tiers")? else {
            return Err(PolicyError {
                line: 1,
                reason: "the policy defines no [tiers.NAME]".to_string(),
            });
        };
        for (name, v) in tiers {
            let path = join("tiers", name);
            let Toml::Table(t) = v else {
                return Err(self.err(&path, "expected a table"));
            };
            self.check_keys(t, &path, &["tools", "alpha", "threshold", "overrides"])?;
            let mut overrides = BTreeMap::new();
            if let Some(o) = self.table(t, &path, "overrides")? {
                for (tool, ov) in o {
                    let opath = format!("{path}.overrides.{tool}");
                    let Toml::Table(ot) = ov else {
                        return Err(self.err(&opath, "expected a table"));
                    };
                    if !tools.contains_key(tool) {
                        return Err(self.err(&opath, format!("unknown tool {tool:?}")));
                    }
                    self.check_keys(ot, &opath, &["alpha", "threshold"])?;
                    overrides.insert(
                        tool.clone(),
                        GateOverride {
                            alpha: self.prob(ot, &opath, "alpha")?,
                            threshold: self.prob(ot, &opath, "threshold")?,
                        },
                    );
                }
            }
            out.insert(
                name.clone(),
                TierSpec {
                    tools: self.strings(t, &path, "tools")?,
                    alpha: self.prob(t, &path, "alpha")?,
                    threshold: self.prob(t, &path, "threshold")?,
                    overrides,
                },
            );
        }
        Ok(out)
    }

    pub(crate) fn load_rules(&self, root: &Table) -> R<Vec<Rule>> {
        let mut out = Vec::new();
        for (i, r) in self.tables(root, "", "rules")?.into_iter().enumerate() {
            let path = format!("rules[{i}]");
            self.check_keys(
                r,
                &path,
                &[
                    "id", "effect", "tools", "paths", "hosts", "commands", "reason",
                ],
            )?;
            let effect = match self.string(r, &path, "effect")?.as_deref() {
                Some("allow") => Effect::Allow,
                Some("deny") => Effect::Deny,
                Some(o) => {
                    return Err(self.err(
                        &join(&path, "effect"),
                        format!("{o:?} is not \"allow\" or \"deny\""),
                    ))
                }
                None => return Err(self.err(&path, "missing \"effect\"")),
            };
            let id = self.string(r, &path, "id")?.unwrap_or_else(|| path.clone());
            out.push(Rule {
                reason: self
                    .string(r, &path, "reason")?
                    .unwrap_or_else(|| format!("rule {id}")),
                id,
                effect,
                tools: self.strings(r, &path, "tools")?,
                paths: self.strings(r, &path, "paths")?,
                hosts: self.strings(r, &path, "hosts")?,
                commands: self.strings(r, &path, "commands")?,
            });
        }
        Ok(out)
    }
}
