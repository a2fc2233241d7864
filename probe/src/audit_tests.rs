use super::*;
use crate::json::parse;
use crate::mock::MockModel;
use crate::pipeline::{Layers, Pipeline};
use crate::policy::Policy;
use crate::LogitModel;
use alloc::vec::Vec;

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
        log.push_str(&chain.record(i as u64 * 1000, "builder", &a, &d, &m.model_digest()));
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
        (chain.record(5, "evil", &a, &d, &m.model_digest()), ())
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
            last = c.record(0, "other", &Action::text("z"), &d, &m.model_digest());
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
    let line = chain.record(1, "a", &a, &d, &m.model_digest());
    let v = parse(&line).unwrap();
    assert!(v.get("args").is_none());
    assert_eq!(
        v.get("args_digest").and_then(Value::as_str).unwrap(),
        hex(blake3::hash(a.args.to_json().as_bytes()).as_bytes())
    );
    assert!(verify(line.as_bytes(), Some(chain.head())).is_ok());
}
