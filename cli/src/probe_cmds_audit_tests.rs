//! `probevisor audit verify`: its answer with and without the final hash, and its arguments.

use super::*;
use probe::json::{parse, Value};
use probe::pipeline::{Decision, Layer, Verdict};

/// A log of `n` records, and its head.
fn log_of(n: usize) -> (String, [u8; 32]) {
    let mut chain = AuditChain::new();
    let mut log = String::new();
    for i in 0..n {
        let d = Decision {
            verdict: Verdict::Deny,
            layer: Layer::Rules,
            reason: format!("r{i}"),
            p_dangerous: None,
            p_injection: None,
            score: None,
            layers: Vec::new(),
        };
        log.push_str(&chain.record(i as u64, "g", &Action::text("t"), &d, &Default::default()));
    }
    (log, chain.head())
}

fn field<'a>(answer: &'a Value, key: &str) -> &'a Value {
    answer
        .get(key)
        .unwrap_or_else(|| panic!("no {key} in {answer:?}"))
}

#[test]
fn without_the_final_hash_the_answer_says_the_tail_is_unchecked() {
    let (log, head) = log_of(3);
    let cut: String = log.lines().take(2).map(|l| format!("{l}\n")).collect();
    let (answer, verdict) = verify_answer(cut.as_bytes(), None);
    assert_eq!(verdict, Ok(()));
    let v = parse(&answer).unwrap();
    assert_eq!(field(&v, "final_hash_checked"), &Value::Bool(false));
    assert!(field(&v, "note").as_str().unwrap().contains("--final-hash"));
    let cut_head = audit::verify(cut.as_bytes(), None).unwrap().final_hash;
    assert_eq!(
        field(&v, "final_hash").as_str(),
        Some(&*audit::hex(&cut_head))
    );

    let (answer, verdict) = verify_answer(cut.as_bytes(), Some(head));
    assert!(verdict.unwrap_err().contains("truncated after record 1"));
    let v = parse(&answer).unwrap();
    assert_eq!(field(&v, "ok"), &Value::Bool(false));

    let (answer, verdict) = verify_answer(log.as_bytes(), Some(head));
    assert_eq!(verdict, Ok(()));
    let v = parse(&answer).unwrap();
    assert_eq!(field(&v, "final_hash_checked"), &Value::Bool(true));
    assert!(v.get("note").is_none());
}

#[test]
fn verify_reads_the_file_and_the_final_hash_argument() {
    let (log, head) = log_of(2);
    let file = std::env::temp_dir().join(format!("probevisor-audit-{}.jsonl", std::process::id()));
    std::fs::write(&file, &log).unwrap();
    let run = |hash: &str| {
        let mut args = vec!["verify".to_string(), file.display().to_string()];
        if !hash.is_empty() {
            args.extend(["--final-hash".to_string(), hash.to_string()]);
        }
        audit(&args)
    };
    let hex = audit::hex(&head);
    assert_eq!(run(""), Ok(()));
    assert_eq!(run(&hex), Ok(()));
    // The argument is typed by a person: either case names the same hash.
    assert_eq!(run(&hex.to_ascii_uppercase()), Ok(()));
    assert!(run(&hex[..63]).unwrap_err().contains("64 hex digits"));
    assert!(run(&format!("0x{}", &hex[..62])).is_err());
    assert!(run(&audit::hex(&[0; 32])).unwrap_err().contains("appended"));
    std::fs::write(&file, log.lines().next().unwrap()).unwrap();
    assert!(run(&hex).unwrap_err().contains("truncated"));
    std::fs::remove_file(&file).unwrap();
}
