use super::*;
use crate::json::parse;
use crate::mock::MockModel;
use crate::pipeline::Decision;
use crate::pipeline::{Layers, Pipeline};
use crate::policy::Policy;
use crate::LogitModel;
use alloc::vec::Vec;

/// The mock model's digest and a stand-in policy digest.
fn provenance(m: &MockModel) -> Provenance {
    Provenance {
        model: m.model_digest(),
        policy: [0x5c; 32],
    }
}

#[test]
fn a_record_names_the_model_and_the_policy() {
    let m = MockModel::new();
    let line = AuditChain::new().record(
        0,
        "a",
        &Action::text("t"),
        &decision(None, None),
        &provenance(&m),
    );
    let v = parse(line.trim_end()).unwrap();
    assert_eq!(
        v.get("model").and_then(Value::as_str),
        Some(hex(&m.model_digest()).as_str())
    );
    assert_eq!(
        v.get("policy").and_then(Value::as_str),
        Some(hex(&[0x5c; 32]).as_str())
    );
    // The policy's digest is its text's, as loaded.
    let text = include_str!("../../policies/default.toml");
    let policy = Policy::parse(text).unwrap();
    assert_eq!(policy.digest, *blake3::hash(text.as_bytes()).as_bytes());
}

fn log_of(n: usize) -> (String, [u8; 32]) {
    let m = MockModel::new();
    let policy = Policy::parse(include_str!("../../policies/default.toml")).unwrap();
    let mut p = Pipeline::new(
        policy,
        Some(&m),
        &mut crate::calibration::CalibrationCache::new(),
        Layers::ALL,
    )
    .unwrap();
    let mut chain = AuditChain::new();
    let mut log = String::new();
    for i in 0..n {
        let a = if i % 2 == 0 {
            Action::new(
                "read_file",
                parse(&format!("{{\"path\":\"/workspace/f{i}\"}}")).unwrap(),
            )
        } else {
            Action::new("run_command", parse(r#"{"cmd":"sudo rm -rf /"}"#).unwrap())
        };
        let d = p.decide(&a, "builder", i as u64 * 1000);
        log.push_str(&chain.record(i as u64 * 1000, "builder", &a, &d, &provenance(&m)));
    }
    (log, chain.head())
}

fn lines(log: &str) -> Vec<String> {
    log.lines().map(|l| l.to_string()).collect()
}

fn join(lines: &[String]) -> String {
    lines.iter().map(|l| alloc::format!("{l}\n")).collect()
}

#[test]
fn intact_log_verifies() {
    let (log, head) = log_of(5);
    let r = verify(log.as_bytes(), Some(head)).unwrap();
    assert_eq!((r.records, r.final_hash), (5, head));
    assert_eq!(verify(b"", Some([0; 32])).unwrap().records, 0);
    // Every line is one JSON object with the fields the brief names.
    for l in log.lines() {
        let v = parse(l).unwrap();
        for k in [
            "seq", "time", "agent", "tool", "args", "layers", "probs", "verdict", "model", "prev",
            "hash",
        ] {
            assert!(v.get(k).is_some(), "{k} in {l}");
        }
    }
}

#[test]
fn edited_field_is_found() {
    let (log, head) = log_of(5);
    let mut l = lines(&log);
    assert!(l[2].contains("/workspace/f2"));
    l[2] = l[2].replace("/workspace/f2", "/workspace/f9");
    assert_eq!(
        verify(join(&l).as_bytes(), Some(head)),
        Err(AuditError::Edited { line: 3, seq: 2 })
    );
}

#[test]
fn removed_record_is_found() {
    let (log, head) = log_of(5);
    let mut l = lines(&log);
    l.remove(1);
    assert_eq!(
        verify(join(&l).as_bytes(), Some(head)),
        Err(AuditError::Removed {
            line: 2,
            expected_seq: 1,
            found_seq: 2
        })
    );
    let mut l = lines(&log);
    l.remove(0);
    assert!(matches!(
        verify(join(&l).as_bytes(), None),
        Err(AuditError::Removed { line: 1, .. })
    ));
}

#[test]
fn reordered_records_are_found() {
    let (log, head) = log_of(5);
    let mut l = lines(&log);
    l.swap(1, 3);
    assert_eq!(
        verify(join(&l).as_bytes(), Some(head)),
        Err(AuditError::Reordered {
            line: 2,
            expected_seq: 1,
            found_seq: 3
        })
    );
}

#[test]
fn inserted_records_are_found() {
    let (log, head) = log_of(4);
    // A forged record that fits the chain where it is inserted (blake3 is unkeyed): its successor
    // repeats its sequence number.
    let l = lines(&log);
    let first_two = join(&l[..2]);
    let (forged, _) = {
        let m = MockModel::new();
        let mut chain = AuditChain {
            next_seq: 2,
            head: verify(first_two.as_bytes(), None).unwrap().final_hash,
            args_digest_above: 4096,
        };
        let a = Action::text("forged");
        let d = crate::pipeline::Decision {
            verdict: crate::pipeline::Verdict::Allow,
            layer: crate::pipeline::Layer::Rules,
            reason: "x".into(),
            p_dangerous: None,
            p_injection: None,
            score: None,
            layers: Vec::new(),
        };
        (chain.record(5, "evil", &a, &d, &provenance(&m)), ())
    };
    let mut tampered = l.clone();
    tampered.insert(2, forged.trim_end().to_string());
    assert_eq!(
        verify(join(&tampered).as_bytes(), Some(head)),
        Err(AuditError::Inserted { line: 3, seq: 2 })
    );
    // A record taken from another chain: right number, wrong link.
    let foreign = {
        let mut c = AuditChain::new();
        let m = MockModel::new();
        let d = crate::pipeline::Decision {
            verdict: crate::pipeline::Verdict::Deny,
            layer: crate::pipeline::Layer::Schema,
            reason: "y".into(),
            p_dangerous: None,
            p_injection: None,
            score: None,
            layers: Vec::new(),
        };
        let mut last = String::new();
        for _ in 0..3 {
            last = c.record(0, "other", &Action::text("z"), &d, &provenance(&m));
        }
        last
    };
    let mut tampered2 = l;
    tampered2[2] = foreign.trim_end().to_string();
    assert_eq!(
        verify(join(&tampered2).as_bytes(), None),
        Err(AuditError::Inserted { line: 3, seq: 2 })
    );
}

#[test]
fn truncation_and_appending_need_the_final_hash() {
    let (log, head) = log_of(5);
    let l = lines(&log);
    let cut = join(&l[..3]);
    assert!(
        verify(cut.as_bytes(), None).is_ok(),
        "without the final hash a prefix looks fine"
    );
    assert_eq!(
        verify(cut.as_bytes(), Some(head)),
        Err(AuditError::Truncated {
            records: 3,
            last_seq: Some(2)
        })
    );
    assert_eq!(
        verify(b"", Some(head)),
        Err(AuditError::Truncated {
            records: 0,
            last_seq: None
        })
    );
    let early_head = verify(join(&l[..2]).as_bytes(), None).unwrap().final_hash;
    assert_eq!(
        verify(log.as_bytes(), Some(early_head)),
        Err(AuditError::Appended { after_seq: Some(1) })
    );
}

#[test]
fn malformed_lines_are_named() {
    let (log, _) = log_of(3);
    let mut l = lines(&log);
    l[1] = "not json".into();
    assert!(matches!(
        verify(join(&l).as_bytes(), None),
        Err(AuditError::Malformed { line: 2, .. })
    ));
    let mut l = lines(&log);
    let cut = l[1].len() - 5;
    l[1].truncate(cut);
    assert!(matches!(
        verify(join(&l).as_bytes(), None),
        Err(AuditError::Malformed { line: 2, .. })
    ));
}

#[test]
fn large_args_are_logged_as_digest() {
    let m = MockModel::new();
    let mut chain = AuditChain::new().with_args_digest_above(16);
    let a = Action::new(
        "write_file",
        parse(r#"{"path":"/w/a","content":"0123456789abcdef"}"#).unwrap(),
    );
    let d = crate::pipeline::Decision {
        verdict: crate::pipeline::Verdict::Allow,
        layer: crate::pipeline::Layer::Rules,
        reason: "ok".into(),
        p_dangerous: Some(0.25),
        p_injection: None,
        score: None,
        layers: Vec::new(),
    };
    let line = chain.record(1, "a", &a, &d, &provenance(&m));
    let v = parse(&line).unwrap();
    assert!(v.get("args").is_none());
    assert_eq!(
        v.get("args_digest").and_then(Value::as_str).unwrap(),
        hex(blake3::hash(a.args.to_json().as_bytes()).as_bytes())
    );
    assert!(verify(line.as_bytes(), Some(chain.head())).is_ok());
}

fn decision(p_dangerous: Option<f32>, score: Option<crate::gate::GateScore>) -> Decision {
    Decision {
        verdict: crate::pipeline::Verdict::Deny,
        layer: crate::pipeline::Layer::Probe,
        reason: "r".into(),
        p_dangerous,
        p_injection: p_dangerous,
        score,
        layers: Vec::new(),
    }
}

#[test]
fn the_hash_field_must_be_lowercase_as_written() {
    // The one part of a line no hash covers: uppercase hex would be a second text of the record.
    let (log, head) = log_of(3);
    let mut l = lines(&log);
    let at = l[2].rfind(HASH_TAG).unwrap() + HASH_TAG.len();
    let upper = l[2][at..].to_ascii_uppercase();
    l[2].replace_range(at.., &upper);
    assert!(matches!(
        verify(join(&l).as_bytes(), Some(head)),
        Err(AuditError::Malformed { line: 3, .. })
    ));
}

#[test]
fn blank_lines_are_refused_not_skipped() {
    let (log, head) = log_of(3);
    let mut l = lines(&log);
    l.insert(1, String::new());
    assert!(matches!(
        verify(join(&l).as_bytes(), Some(head)),
        Err(AuditError::Malformed { line: 2, .. })
    ));
    for tail in ["\n", " \n", "\r\n"] {
        assert!(matches!(
            verify(alloc::format!("{log}{tail}").as_bytes(), Some(head)),
            Err(AuditError::Malformed { line: 4, .. })
        ));
    }
    // The empty log: no bytes, or one line end (the emulator harness writes "\n" for no records).
    assert_eq!(verify(b"", Some([0; 32])).unwrap().records, 0);
    assert_eq!(verify(b"\n", Some([0; 32])).unwrap().records, 0);
    assert!(verify(b"\n\n", None).is_err());
}

#[test]
fn line_ends_and_a_cut_last_record() {
    let (log, head) = log_of(3);
    assert!(verify(log.replace('\n', "\r\n").as_bytes(), Some(head)).is_ok());
    // Cut before the final line end only: every record is whole and its hash checks.
    assert!(verify(log.trim_end().as_bytes(), Some(head)).is_ok());
    let cut = &log[..log.len() - 10];
    assert!(matches!(
        verify(cut.as_bytes(), Some(head)),
        Err(AuditError::Malformed { line: 3, .. })
    ));
}

#[test]
fn non_finite_probabilities_are_written_as_null() {
    let m = MockModel::new();
    let mut chain = AuditChain::new();
    let score = crate::gate::GateScore {
        raw: [f32::NAN, 0.5],
        calibrated: [f32::INFINITY, f32::NEG_INFINITY],
        alpha: 1.0,
    };
    let line = chain.record(
        0,
        "a",
        &Action::text("t"),
        &decision(Some(f32::NAN), Some(score)),
        &provenance(&m),
    );
    assert!(
        line.contains("\"raw\":[null,0.5],\"calibrated\":[null,null],\"alpha\":1}"),
        "{line}"
    );
    assert!(line.contains("\"p_dangerous\":null") && line.contains("\"p_injection\":null"));
    assert!(verify(line.as_bytes(), Some(chain.head())).is_ok());
    // Finite values keep f32's own text, as records always had it.
    let line = chain.record(
        0,
        "a",
        &Action::text("t"),
        &decision(Some(0.1), None),
        &provenance(&m),
    );
    assert!(
        line.contains("\"p_dangerous\":0.1,\"p_injection\":0.1,"),
        "{line}"
    );
}

#[test]
fn bad_bytes_are_named_by_their_line() {
    let (log, _) = log_of(3);
    let mut bytes = log.clone().into_bytes();
    let third = log.match_indices('\n').nth(1).unwrap().0 + 1;
    bytes[third + 20] = 0xff;
    assert_eq!(
        verify(&bytes, None),
        Err(AuditError::Malformed {
            line: 3,
            reason: "not UTF-8 (byte 21 of the line)".into()
        })
    );
    let bom = alloc::format!("\u{feff}{log}");
    assert!(matches!(
        verify(bom.as_bytes(), None),
        Err(AuditError::Malformed { line: 1, reason }) if reason.contains("byte-order mark")
    ));
}

#[test]
fn guest_text_stays_inside_its_record() {
    // Text that imitates the hash field, line breaks (including Unicode ones), a lone CR, and a
    // nested object with a `hash` key: one line, the real hash field last, and it verifies.
    let m = MockModel::new();
    let mut chain = AuditChain::new();
    let fake = alloc::format!("\",\"hash\":\"{}\"}}\n{{\"seq\":1", "0".repeat(64));
    let tool = alloc::format!("t{fake}\r\u{2028}\u{85}");
    let args = crate::json::object([
        ("hash", Value::String(fake.clone())),
        (
            "z",
            crate::json::object([("hash", Value::String("1".repeat(64)))]),
        ),
    ]);
    let mut log = String::new();
    for _ in 0..2 {
        let d = decision(None, None);
        log.push_str(&chain.record(
            0,
            &fake,
            &Action::new(&tool, args.clone()),
            &d,
            &provenance(&m),
        ));
    }
    assert_eq!(log.lines().count(), 2);
    assert_eq!(
        verify(log.as_bytes(), Some(chain.head())).unwrap().records,
        2
    );
    let v = parse(log.lines().next().unwrap()).unwrap();
    assert_eq!(v.get("tool").and_then(Value::as_str), Some(tool.as_str()));
    assert_eq!(
        v.get("hash").and_then(Value::as_str).map(|h| h.len()),
        Some(64)
    );
}

#[test]
fn huge_lines_and_deep_nesting_fail_or_pass_cleanly() {
    let m = MockModel::new();
    let mut chain = AuditChain::new().with_args_digest_above(usize::MAX);
    let big = crate::json::object([("text", Value::String("x\"".repeat(2 << 20)))]);
    let line = chain.record(
        0,
        "a",
        &Action::new("text", big),
        &decision(None, None),
        &provenance(&m),
    );
    assert!(line.len() > 4 << 20);
    assert!(verify(line.as_bytes(), Some(chain.head())).is_ok());
    let deep = alloc::format!("{}{HASH_TAG}{}\"}}\n", "[".repeat(1 << 20), "0".repeat(64));
    assert!(matches!(
        verify(deep.as_bytes(), None),
        Err(AuditError::Malformed { line: 1, reason }) if reason.contains("too deep")
    ));
    // Arguments as deep as a tool call may be still give a record that verifies.
    let mut depth = 1;
    let call = |d: usize| {
        let args = alloc::format!(
            "{}{}",
            "{\"a\":".repeat(d),
            "1".to_string() + &"}".repeat(d)
        );
        Action::from_json(&alloc::format!("{{\"tool\":\"t\",\"args\":{args}}}"))
    };
    while call(depth + 1).is_ok() {
        depth += 1;
    }
    assert!(depth >= crate::json::MAX_DEPTH - 1, "{depth}");
    let mut chain = AuditChain::new();
    let line = chain.record(
        0,
        "a",
        &call(depth).unwrap(),
        &decision(None, None),
        &provenance(&m),
    );
    assert!(verify(line.as_bytes(), Some(chain.head())).is_ok());
}
