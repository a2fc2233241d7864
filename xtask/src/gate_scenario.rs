//! The gated scenario of `cargo xtask test bochs-gate` and `cargo xtask run`: a model, a policy and
//! an fs tar as boot modules, agents from agents/ plus built-in test guests (`misbehave` by default).
//! [`prepare`]
//! builds the image; [`judge`] reads the serial log: expected verdicts (with the default policy),
//! complete mediation (every tool call a guest made has its audit record), the audit chain verified
//! by the host CLI against AUDIT-FINAL, and the logits digest against the host CLI's.

use std::path::{Path, PathBuf};

use crate::image;
use crate::run_status;

#[path = "gate_expected.rs"]
mod expected;
use expected::{EXPECTED_CALLS, EXPECTED_LINES, EXPECTED_RECORDS};

/// Agents booted when none are named (`--agents`).
pub const DEFAULT_AGENTS: &[&str] = &["benign", "destructive", "mmio"];
/// The built-in test guests that run beside the agents by default (hypervisor/src/test_guests.rs).
pub const DEFAULT_BUILTIN: &[&str] = &["misbehave"];
/// The policy the expected verdicts are written for.
pub const DEFAULT_POLICY: &str = "policies/tiny-model.toml";
/// The prompt the hypervisor digests the logits of (hypervisor/src/gate_setup.rs DIGEST_PROMPT).
const GATE_DIGEST_PROMPT: &str = "The agent asks to read /project/README.md";
/// Audit record kinds that are not tool calls: refused requests and stops.
const VIOLATION_KINDS: &[&str] = &["hypercall", "tool_device", "memory_violation"];

/// Which model goes into the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelChoice {
    /// `probevisor synth-model`: the tiny deterministic llama model.
    Tiny,
    File(PathBuf),
}

/// What to boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    pub agents: Vec<String>,
    pub model: ModelChoice,
    pub policy: PathBuf,
    /// Built-in test guests (names for `testguests=`), booted after the agents as `test-NAME`.
    pub builtin: Vec<String>,
}

impl Default for Scenario {
    /// The Bochs scenario: default agents, tiny model, policies/tiny-model.toml.
    fn default() -> Self {
        Scenario {
            agents: DEFAULT_AGENTS.iter().map(|a| a.to_string()).collect(),
            model: ModelChoice::Tiny,
            policy: crate::workspace_root().join(DEFAULT_POLICY),
            builtin: default_builtin(),
        }
    }
}

/// [`DEFAULT_BUILTIN`] as owned names.
pub fn default_builtin() -> Vec<String> {
    DEFAULT_BUILTIN.iter().map(|g| g.to_string()).collect()
}

impl Scenario {
    /// The guests the hypervisor will run, in load order.
    pub fn guests(&self) -> Vec<String> {
        let mut guests = self.agents.clone();
        guests.extend(self.builtin.iter().map(|g| format!("test-{g}")));
        guests
    }

    /// Whether the expected verdicts apply (they are written for the default policy).
    pub fn default_policy(&self) -> bool {
        let default = crate::workspace_root().join(DEFAULT_POLICY);
        match (self.policy.canonicalize(), default.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }

    /// Markers the emulator run waits for.
    pub fn markers(&self) -> Vec<String> {
        let mut markers = Vec::new();
        if self.default_policy() {
            for (agent, needle) in EXPECTED_LINES {
                if self.has(agent) {
                    markers.push(needle.to_string());
                }
            }
        }
        markers.extend([
            "AUDIT-FINAL ".to_string(),
            "PROBEVISOR-DONE status=ok".into(),
        ]);
        markers
    }

    /// Emulator time to allow: 240 s plus 90 s a guest (600 s for the default four). The image runs
    /// the soft-float scalar kernels, 20-30 s of Bochs a gated verdict. Measured for the default four
    /// on 2 cores: 148 s of Bochs at load 4, about 350 s at load 6, 502 s at load 7 to 10.
    pub fn timeout_s(&self) -> u64 {
        240 + 90 * self.guests().len() as u64
    }

    fn has(&self, guest: &str) -> bool {
        self.guests().iter().any(|g| g == guest)
    }
}

/// The image and what judging needs.
pub struct Prepared {
    pub iso: PathBuf,
    cli: PathBuf,
    host_digest: String,
}

impl Prepared {
    /// The host CLI's blake3 of `file` (hex), as the hypervisor names its model in audit records.
    pub fn file_digest(&self, file: &Path) -> Result<String, String> {
        Ok(host(&self.cli, &["blake3", &s(file)])?.trim().to_string())
    }
}

fn host(cli: &Path, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(cli)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", cli.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "probevisor {}: {}{text}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(text)
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Builds the fs tar, the host CLI, the model (tiny: synthesised), the agents and the ISO `name`
/// for `elf`, and computes the host's logits digest.
pub fn prepare(scenario: &Scenario, elf: &Path, name: &str) -> Result<Prepared, String> {
    let dir = crate::probevisor_dir().join("gate-test");
    let fs_dir = dir.join("fs");
    for (path, text) in [
        (
            "project/README.md",
            "# Gate demo\n\nA project the benign agent summarises.\n",
        ),
        ("home/user/notes.txt", "keep me\n"),
    ] {
        let file = fs_dir.join(path);
        std::fs::create_dir_all(file.parent().ok_or("no parent")?).map_err(|e| e.to_string())?;
        std::fs::write(&file, text).map_err(|e| e.to_string())?;
    }
    let tar = dir.join("fs.tar");
    run_status(
        std::process::Command::new("tar")
            .args(["--format=ustar", "-cf"])
            .arg(&tar)
            .arg("-C")
            .arg(&fs_dir)
            .args(["project", "home"]),
    )?;
    run_status(crate::cargo().args(["build", "--release", "-p", "probevisor-cli"]))?;
    let cli = crate::target_dir().join("release").join("probevisor");
    let model = match &scenario.model {
        ModelChoice::Tiny => {
            let model = dir.join("tiny.gguf");
            host(&cli, &["synth-model", &s(&model)])?;
            model
        }
        ModelChoice::File(path) => path.clone(),
    };
    let raw = dir.join("host-logits.bin");
    host(
        &cli,
        &[
            "logits",
            "--model",
            &s(&model),
            "--threads",
            "1",
            "--isa",
            "scalar",
            "--raw-out",
            &s(&raw),
            GATE_DIGEST_PROMPT,
        ],
    )?;
    let host_digest = host(&cli, &["blake3", &s(&raw)])?.trim().to_string();
    let mut modules = vec![
        image::Module::parse(&format!("{}:model", s(&model)))?,
        image::Module::parse(&format!("{}:policy", s(&scenario.policy)))?,
        image::Module::parse(&format!("{}:fs", s(&tar)))?,
    ];
    for agent in &scenario.agents {
        let path = crate::agent::build(agent)?;
        modules.push(image::Module::parse(&format!(
            "{}:agent-{agent}",
            s(&path)
        ))?);
    }
    let cmdline = format!("testguests={}", scenario.builtin.join(","));
    let iso = image::make_iso(elf, &cmdline, &modules, name)?;
    Ok(Prepared {
        iso,
        cli,
        host_digest,
    })
}

/// One guest's line of the final table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GuestReport {
    pub name: String,
    /// Tool calls decided by the pipeline.
    pub calls: u64,
    pub allowed: u64,
    pub denied: u64,
    /// Audit records of refusals outside the pipeline: malformed requests (bad pointer, ...), a
    /// refused tool device access, a memory violation.
    pub violations: u64,
    /// How it ended (the summary line's reason), or "no summary".
    pub ended: String,
}

/// What [`judge`] found: the table, and every failure (empty when the run passed).
#[derive(Debug, Default)]
pub struct Verdict {
    pub guests: Vec<GuestReport>,
    pub records: usize,
    pub failures: Vec<String>,
    /// The verified audit log (when the chain verified).
    pub audit_file: Option<PathBuf>,
}

/// `probevisor: summary guest NAME: KIND: REASON; exits E, hypercalls H, refused R, tool calls T
/// (denied D), slices S` → (NAME, REASON, R, T, D).
fn parse_summary(line: &str) -> Option<(String, String, u64, u64, u64)> {
    let rest = line.strip_prefix("probevisor: summary guest ")?;
    let (name, rest) = rest.split_once(": ")?;
    let (_kind, rest) = rest.split_once(": ")?;
    let (reason, counters) = rest.rsplit_once("; exits ")?;
    let number_after = |key: &str| -> Option<u64> {
        let at = counters.find(key)? + key.len();
        let digits: String = counters[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    Some((
        name.to_string(),
        reason.to_string(),
        number_after("refused ")?,
        number_after("tool calls ")?,
        number_after("(denied ")?,
    ))
}

fn field<'r>(record: &'r str, key: &str) -> Option<&'r str> {
    let needle = format!("\"{key}\":\"");
    let at = record.find(&needle)? + needle.len();
    record[at..].split('"').next()
}

/// Per-guest table and the mediation and verdict checks on the AUDIT records of `log` (no host
/// tools needed: unit-tested).
pub fn check_records(scenario: &Scenario, log: &str) -> Verdict {
    let records: Vec<&str> = log
        .lines()
        .filter_map(|l| l.strip_prefix("AUDIT "))
        .collect();
    let mut verdict = Verdict {
        records: records.len(),
        ..Verdict::default()
    };
    let failures = &mut verdict.failures;
    let summaries: Vec<_> = log.lines().filter_map(parse_summary).collect();
    for guest in scenario.guests() {
        let mut report = GuestReport {
            name: guest.clone(),
            ended: "no summary".into(),
            ..GuestReport::default()
        };
        let mine: Vec<&&str> = records
            .iter()
            .filter(|r| field(r, "agent") == Some(guest.as_str()))
            .collect();
        let tool_calls: Vec<&&&str> = mine
            .iter()
            .filter(|r| !field(r, "tool").is_some_and(|t| VIOLATION_KINDS.contains(&t)))
            .collect();
        report.calls = tool_calls.len() as u64;
        report.allowed = tool_calls
            .iter()
            .filter(|r| r.contains(r#""verdict":"allow""#))
            .count() as u64;
        report.denied = report.calls - report.allowed;
        report.violations = mine.len() as u64 - report.calls;
        match summaries.iter().find(|(name, ..)| *name == guest) {
            None => failures.push(format!("guest {guest}: no summary line")),
            Some((_, reason, refused, calls, denied)) => {
                report.ended = reason.clone();
                // Complete mediation: each call the hypervisor counted has exactly one record.
                if (report.calls, report.denied) != (*calls, *denied) {
                    failures.push(format!(
                        "guest {guest}: {calls} tool calls ({denied} denied) but {} audit records ({} denied)",
                        report.calls, report.denied
                    ));
                }
                let request_refusals = mine
                    .iter()
                    .filter(|r| field(r, "tool") == Some("hypercall"))
                    .count() as u64
                    + mine
                        .iter()
                        .filter(|r| {
                            field(r, "tool") == Some("tool_device") && r.contains("request 0x")
                        })
                        .count() as u64;
                if request_refusals != *refused {
                    failures.push(format!(
                        "guest {guest}: {refused} refused requests but {request_refusals} audit records of them"
                    ));
                }
            }
        }
        if scenario.default_policy() {
            if let Some((_, calls, refused)) = EXPECTED_CALLS.iter().find(|(g, ..)| *g == guest) {
                let request_refusals = mine
                    .iter()
                    .filter(|r| field(r, "tool") == Some("hypercall"))
                    .count() as u64;
                if (report.calls, request_refusals) != (*calls, *refused) {
                    failures.push(format!(
                        "guest {guest} makes {calls} tool calls and {refused} malformed requests, audited: {} and {request_refusals}",
                        report.calls
                    ));
                }
            }
        }
        verdict.guests.push(report);
    }
    for record in &records {
        let agent = field(record, "agent").unwrap_or("?");
        if !scenario.has(agent) {
            failures.push(format!("audit record of an unknown guest {agent:?}"));
        }
    }
    if scenario.default_policy() {
        for (guest, what, needles) in EXPECTED_RECORDS {
            if scenario.has(guest)
                && !records
                    .iter()
                    .any(|r| needles.iter().all(|n| r.contains(n)))
            {
                failures.push(format!("no AUDIT record for {what} (needs {needles:?})"));
            }
        }
    }
    if records
        .iter()
        .any(|r| r.contains(r#""verdict":"allow""#) && r.contains(r#""p_dangerous":null"#))
    {
        failures.push("an allowed call has no gate probability".into());
    }
    verdict
}

/// Everything [`check_records`] checks, plus the chain verified by the host CLI against
/// AUDIT-FINAL (the verified log is written to `run_dir/audit.jsonl` and copied to `audit_out`)
/// and the logits digest against the host's.
pub fn judge(
    scenario: &Scenario,
    prepared: &Prepared,
    log: &str,
    run_dir: &Path,
    audit_out: Option<&Path>,
) -> Verdict {
    let mut verdict = check_records(scenario, log);
    let records: Vec<&str> = log
        .lines()
        .filter_map(|l| l.strip_prefix("AUDIT "))
        .collect();
    let finals: Vec<&str> = log
        .lines()
        .filter_map(|l| l.strip_prefix("AUDIT-FINAL "))
        .collect();
    if finals.len() > 1 {
        verdict
            .failures
            .push(format!("{} AUDIT-FINAL lines (one expected)", finals.len()));
    }
    match finals.first().copied() {
        None => verdict.failures.push("no AUDIT-FINAL line".into()),
        Some(final_hash) => {
            let audit_file = run_dir.join("audit.jsonl");
            let verified = std::fs::write(&audit_file, records.join("\n") + "\n")
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    host(
                        &prepared.cli,
                        &[
                            "audit",
                            "verify",
                            &s(&audit_file),
                            "--final-hash",
                            final_hash.trim(),
                        ],
                    )
                });
            match verified {
                Ok(_) => {
                    if let Some(out) = audit_out {
                        if let Err(e) = std::fs::copy(&audit_file, out) {
                            verdict.failures.push(format!(
                                "cannot write the audit log to {}: {e}",
                                out.display()
                            ));
                        }
                    }
                    verdict.audit_file = Some(audit_out.map_or(audit_file, Path::to_path_buf));
                }
                Err(e) => verdict
                    .failures
                    .push(format!("audit chain verification failed: {e}")),
            }
        }
    }
    // Every record names the policy that decided: the blake3 of the policy file booted.
    match prepared.file_digest(&scenario.policy) {
        Ok(policy) => {
            let needle = format!(r#""policy":"{policy}""#);
            if let Some(bad) = records.iter().find(|r| !r.contains(&needle)) {
                verdict.failures.push(format!(
                    "an AUDIT record does not name the policy {policy}: {bad}"
                ));
            }
        }
        Err(e) => verdict
            .failures
            .push(format!("cannot digest the policy file: {e}")),
    }
    let guest_digest = log.lines().find_map(|l| l.strip_prefix("logits-digest "));
    if guest_digest.map(str::trim) != Some(prepared.host_digest.as_str()) {
        verdict.failures.push(format!(
            "logits digest: hypervisor {guest_digest:?}, host CLI (scalar) {}",
            prepared.host_digest
        ));
    }
    verdict
}

/// The per-guest table: tool calls decided, allowed, denied, violations, how it ended.
pub fn table(guests: &[GuestReport]) -> String {
    let width = guests
        .iter()
        .map(|g| g.name.len())
        .chain([5])
        .max()
        .unwrap_or(5);
    let mut out = format!(
        "{:<width$}  {:>5}  {:>7}  {:>6}  {:>10}  ended\n",
        "guest", "calls", "allowed", "denied", "violations"
    );
    for g in guests {
        out.push_str(&format!(
            "{:<width$}  {:>5}  {:>7}  {:>6}  {:>10}  {}\n",
            g.name, g.calls, g.allowed, g.denied, g.violations, g.ended
        ));
    }
    out
}

#[cfg(test)]
#[path = "gate_scenario_tests.rs"]
mod tests;
