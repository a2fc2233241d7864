use super::*;

fn record(agent: &str, tool: &str, verdict: &str) -> String {
    let p = if verdict == "allow" { "0.25" } else { "null" };
    format!(
        r#"AUDIT {{"seq":0,"agent":"{agent}","tool":"{tool}","args":{{}},"layers":[],"p_dangerous":{p},"verdict":"{verdict}","layer":"probe","reason":"r"}}"#
    )
}

fn summary(name: &str, reason: &str, refused: u64, calls: u64, denied: u64) -> String {
    format!(
        "probevisor: summary guest {name}: finished: {reason}; exits 9, hypercalls 5, refused {refused}, tool calls {calls} (denied {denied}), slices 2"
    )
}

/// Agents `a` and `b` with a policy other than the default (no expected verdicts).
fn scenario() -> Scenario {
    Scenario {
        agents: vec!["a".into(), "b".into()],
        model: ModelChoice::Tiny,
        policy: PathBuf::from("/no/such/policy.toml"),
        builtin: crate::gate_scenario::default_builtin(),
    }
}

fn good_log() -> Vec<String> {
    vec![
        record("a", "list_dir", "allow"),
        record("a", "delete_file", "deny"),
        record("b", "read_file", "allow"),
        record("test-misbehave", "write_file", "deny"),
        record("test-misbehave", "hypercall", "deny"),
        record("test-misbehave", "memory_violation", "deny"),
        summary("a", "exited with code 0", 0, 2, 1),
        summary(
            "b",
            "bad tool device access: write to read-only register Status",
            0,
            1,
            0,
        ),
        summary("test-misbehave", "memory violation", 1, 1, 1),
    ]
}

#[test]
fn summary_lines_parse() {
    let line = summary("mmio", "stopped: x; y", 3, 4, 2);
    assert_eq!(
        parse_summary(&line),
        Some(("mmio".into(), "stopped: x; y".into(), 3, 4, 2))
    );
    assert_eq!(
        parse_summary("probevisor: summary guest x: not started: why"),
        None
    );
}

#[test]
fn every_counted_call_has_a_record() {
    let verdict = check_records(&scenario(), &good_log().join("\n"));
    assert!(verdict.failures.is_empty(), "{:?}", verdict.failures);
    let a = &verdict.guests[0];
    assert_eq!((a.calls, a.allowed, a.denied, a.violations), (2, 1, 1, 0));
    let m = &verdict.guests[2];
    assert_eq!(
        (m.name.as_str(), m.calls, m.violations),
        ("test-misbehave", 1, 2)
    );
    assert_eq!(verdict.records, 6);
}

#[test]
fn a_call_without_a_record_fails() {
    let mut log = good_log();
    log.remove(1); // a's denied delete_file
    let verdict = check_records(&scenario(), &log.join("\n"));
    assert!(
        verdict
            .failures
            .iter()
            .any(|f| f.contains("guest a: 2 tool calls (1 denied) but 1 audit records")),
        "{:?}",
        verdict.failures
    );
    let mut log = good_log();
    log.remove(4); // the refused hypercall
    let verdict = check_records(&scenario(), &log.join("\n"));
    assert!(
        verdict
            .failures
            .iter()
            .any(|f| f.contains("1 refused requests but 0")),
        "{:?}",
        verdict.failures
    );
}

#[test]
fn missing_summary_unknown_guest_and_allow_without_probability_fail() {
    let mut log = good_log();
    log.retain(|l| !l.contains("summary guest b:"));
    log.push(record("intruder", "read_file", "deny"));
    log.push(record("a", "read_file", "allow").replace("0.25", "null"));
    let verdict = check_records(&scenario(), &log.join("\n"));
    let all = verdict.failures.join("\n");
    for needle in [
        "guest b: no summary line",
        "unknown guest \"intruder\"",
        "an allowed call has no gate probability",
    ] {
        assert!(all.contains(needle), "{all}");
    }
}

#[test]
fn default_policy_expects_the_scenarios_records() {
    let scenario = Scenario::default();
    assert!(scenario.default_policy());
    assert_eq!(
        scenario.guests(),
        ["benign", "destructive", "mmio", "test-misbehave"]
    );
    assert_eq!(scenario.timeout_s(), 600);
    let markers = scenario.markers();
    assert!(markers
        .iter()
        .any(|m| m.contains("summary guest mmio: stopped")));
    let verdict = check_records(&scenario, &good_log().join("\n"));
    let all = verdict.failures.join("\n");
    assert!(all.contains("mmio doorbell list_dir"), "{all}");
    assert!(all.contains("guest benign makes 3 tool calls"), "{all}");
    // Without the mmio agent its expectations are not asked for.
    let scenario = Scenario {
        agents: vec!["benign".into()],
        ..Scenario::default()
    };
    let all = check_records(&scenario, "").failures.join("\n");
    assert!(!all.contains("mmio") && all.contains("benign"), "{all}");
    assert!(!scenario.markers().iter().any(|m| m.contains("mmio")));
}

#[test]
fn table_lists_each_guest() {
    let verdict = check_records(&scenario(), &good_log().join("\n"));
    let table = table(&verdict.guests);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4);
    assert!(lines[0].starts_with("guest") && lines[0].ends_with("ended"));
    assert!(
        lines[1].starts_with("a ") && lines[1].ends_with("exited with code 0"),
        "{table}"
    );
    assert!(lines[1]
        .split_whitespace()
        .take(5)
        .eq(["a", "2", "1", "1", "0"]));
}
