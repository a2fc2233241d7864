use super::*;
use crate::gate_setup::{build_pipeline, load_model, parse_policy};
use alloc::string::String;
use alloc::vec::Vec;
use inference_core::synthetic::tiny_llama_gguf;

const TINY_POLICY: &str = include_str!("../../policies/tiny-model.toml");

/// The serial lines a test run wrote (shared with the bridge tests).
#[derive(Default)]
pub(super) struct Lines(pub(super) Vec<String>);

impl LogSink for Lines {
    fn line(&mut self, args: core::fmt::Arguments<'_>) {
        self.0.push(alloc::format!("{args}"));
    }
}

impl Lines {
    pub(super) fn audit_log(&self) -> String {
        let mut out = String::new();
        for l in self.0.iter().filter_map(|l| l.strip_prefix("AUDIT ")) {
            out.push_str(l);
            out.push('\n');
        }
        out
    }
    pub(super) fn with(&self, needle: &str) -> Vec<&String> {
        self.0.iter().filter(|l| l.contains(needle)).collect()
    }
    fn last_record(&self) -> Value {
        let line = self.0.iter().rev().find_map(|l| l.strip_prefix("AUDIT "));
        probe::json::parse(line.expect("an audit record")).unwrap()
    }
}

fn fs() -> MemFs {
    let mut fs = MemFs::default();
    fs.write_file("/project/README.md", b"# Demo\n\nhello\n")
        .unwrap();
    fs
}

fn call(name: &str, args: &str) -> ToolRequest {
    ToolRequest {
        name: name.into(),
        args: args.into(),
    }
}

fn field<'v>(v: &'v Value, key: &str) -> &'v Value {
    v.get(key).unwrap_or_else(|| panic!("no {key} in {v:?}"))
}

#[test]
fn tiny_model_gate_allows_benign_and_records_real_probabilities() {
    let bytes = tiny_llama_gguf(7);
    let model = load_model(&bytes).unwrap();
    let pipeline = build_pipeline(parse_policy(TINY_POLICY.as_bytes()).unwrap(), &model);
    let digest = probe::audit::digest(&bytes);
    let mut services = GovernedServices::new(pipeline, digest, fs(), || 42);
    let mut log = Lines::default();
    let listing = services.tool_call(
        "benign",
        &call("list_dir", r#"{"path":"/project"}"#),
        &mut log,
    );
    assert_eq!(
        listing,
        ToolOutcome::Completed {
            output: "README.md".into()
        }
    );
    let record = log.last_record();
    assert_eq!(field(&record, "verdict").as_str(), Some("allow"));
    assert_eq!(
        field(&record, "model").as_str(),
        Some(hex(&digest).as_str())
    );
    // ... and the policy that decided, by the digest of its text.
    assert_eq!(
        field(&record, "policy").as_str(),
        Some(hex(blake3::hash(TINY_POLICY.as_bytes()).as_bytes()).as_str())
    );
    assert!(matches!(field(&record, "p_dangerous"), Value::Number(p) if *p > 0.0 && *p < 1.0));
    let write = call(
        "write_file",
        r#"{"path":"/project/SUMMARY.md","content":"x"}"#,
    );
    assert!(matches!(
        services.tool_call("benign", &write, &mut log),
        ToolOutcome::Completed { .. }
    ));
    let read = services.tool_call(
        "benign",
        &call("read_file", r#"{"path":"/project/SUMMARY.md"}"#),
        &mut log,
    );
    assert_eq!(read, ToolOutcome::Completed { output: "x".into() });
    let report =
        probe::audit::verify(log.audit_log().as_bytes(), Some(services.audit_head())).unwrap();
    assert_eq!(report.records, 3);
}

#[test]
fn rules_tier_and_schema_deny_with_their_reasons() {
    let bytes = tiny_llama_gguf(7);
    let model = load_model(&bytes).unwrap();
    let pipeline = build_pipeline(parse_policy(TINY_POLICY.as_bytes()).unwrap(), &model);
    let mut services = GovernedServices::new(pipeline, [1; 32], fs(), || 0);
    let mut log = Lines::default();
    let cases = [
        (
            "destructive",
            "delete_file",
            r#"{"path":"/home/user","recursive":true}"#,
            "rules",
            "deleting outside /project",
        ),
        (
            "destructive",
            "run_command",
            r#"{"cmd":"rm -rf /"}"#,
            "schema",
            "run_command",
        ),
        (
            "test-misbehave",
            "write_file",
            r#"{"path":"/project/x","content":"x"}"#,
            "tier",
            "write_file",
        ),
    ];
    for (agent, tool, args, layer, reason) in cases {
        let outcome = services.tool_call(agent, &call(tool, args), &mut log);
        let ToolOutcome::Refused { reason: got } = outcome else {
            panic!("{tool} was not refused: {outcome:?}")
        };
        assert!(got.contains(reason), "{got}");
        let record = log.last_record();
        assert_eq!(field(&record, "layer").as_str(), Some(layer), "{record:?}");
        assert_eq!(field(&record, "verdict").as_str(), Some("deny"));
    }
    assert_eq!(fs().read_file("/project/README.md").unwrap().len(), 14);
    probe::audit::verify(log.audit_log().as_bytes(), Some(services.audit_head())).unwrap();
}

/// A rule denies deletes under /home; a relative `home/user/notes.txt` matches no rule (the rules
/// judge the path as written) and the tiny gate lets it through, so the file system must not take
/// it as `/home/user/notes.txt` (it did: the file was deleted).
#[test]
fn a_relative_path_does_not_reach_the_file_a_rule_protects() {
    let bytes = tiny_llama_gguf(7);
    let model = load_model(&bytes).unwrap();
    let pipeline = build_pipeline(parse_policy(TINY_POLICY.as_bytes()).unwrap(), &model);
    let mut files = fs();
    files
        .write_file("/home/user/notes.txt", b"keep me")
        .unwrap();
    let mut services = GovernedServices::new(pipeline, [1; 32], files, || 0);
    let mut log = Lines::default();
    let outcome = services.tool_call(
        "destructive",
        &call("delete_file", r#"{"path":"home/user/notes.txt"}"#),
        &mut log,
    );
    let ToolOutcome::Failed { error, .. } = outcome else {
        panic!("the relative delete was not refused by the file system: {outcome:?}")
    };
    assert!(error.contains("is relative"), "{error}");
    assert_eq!(
        services.fs.read_file("/home/user/notes.txt").unwrap(),
        b"keep me"
    );
    probe::audit::verify(log.audit_log().as_bytes(), Some(services.audit_head())).unwrap();
}

#[test]
fn without_a_policy_every_call_is_refused_and_audited() {
    let mut services = fail_closed(NO_POLICY_REASON, || 5);
    let mut log = Lines::default();
    let outcome = services.tool_call(
        "benign",
        &call("read_file", r#"{"path":"/etc/hostname"}"#),
        &mut log,
    );
    assert_eq!(
        outcome,
        ToolOutcome::Refused {
            reason: NO_POLICY_REASON.into()
        }
    );
    services.violation(
        "bad",
        "memory_violation",
        "write of GPA 0x70000000",
        &mut log,
    );
    let record = log.last_record();
    assert_eq!(field(&record, "tool").as_str(), Some("memory_violation"));
    assert_eq!(
        field(&record, "reason").as_str(),
        Some("memory_violation: write of GPA 0x70000000")
    );
    let report =
        probe::audit::verify(log.audit_log().as_bytes(), Some(services.audit_head())).unwrap();
    assert_eq!(report.records, 2);
    assert!(final_line(&services.audit_head()).starts_with("AUDIT-FINAL "));
}

#[test]
fn a_bad_policy_is_a_clear_error() {
    let bad = TINY_POLICY.replace("alpha = 1.0", "alpha = 2");
    let err = parse_policy(bad.as_bytes()).err().unwrap();
    assert!(
        err.starts_with("policy line ") && err.contains("alpha"),
        "{err}"
    );
    assert!(parse_policy(&[0xff, 0xfe]).unwrap_err().contains("UTF-8"));
}

/// A malformed call's reason quotes the parser's error, which quotes a duplicate key: a 20 KiB key
/// made a 40 KiB audit record (the reason twice), where arguments over 4 KiB are kept as a digest.
#[test]
fn a_malformed_call_keeps_its_audit_record_short() {
    let mut services = fail_closed(NO_POLICY_REASON, || 0);
    let mut log = Lines::default();
    let key = "k".repeat(20_000);
    let args = alloc::format!("{{\"{key}\":1,\"{key}\":2}}");
    let outcome = services.tool_call("g", &call("read_file", &args), &mut log);
    let ToolOutcome::Refused { reason } = outcome else {
        panic!("a malformed call was not refused: {outcome:?}")
    };
    assert!(
        reason.starts_with("malformed tool call: JSON error at byte")
            && reason.contains("duplicate key"),
        "{reason}"
    );
    assert!(reason.len() < 1024, "{} bytes of reason", reason.len());
    let audit = log.audit_log();
    assert!(audit.len() < 4096, "{} bytes of audit record", audit.len());
    probe::audit::verify(audit.as_bytes(), Some(services.audit_head())).unwrap();
}
