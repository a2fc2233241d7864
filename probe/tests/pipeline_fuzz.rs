//! Randomised robustness check: the real tool calls of tests/data/toolcalls.jsonl, mutated, go
//! through `json::parse`, `Action::from_json`, the pre-filter, the whole pipeline (mock model) and
//! the audit chain. Nothing may panic; a parsed value must survive its canonical text; no
//! chat-template token may reach the model's input through the arguments; the audit log must
//! verify.
//!
//! The default run does a few hundred mutations; `cargo test -p probe --test pipeline_fuzz --
//! --ignored` does `PROBE_FUZZ_ITERS` (default 200000).

use probe::audit::{verify, AuditChain};
use probe::calibration::CalibrationCache;
use probe::json::{parse, Value};
use probe::mock::MockModel;
use probe::pipeline::Layers;
use probe::prefilter::prefilter;
use probe::{Action, Pipeline, Policy};

const TOOLCALLS: &str = include_str!("../../tests/data/toolcalls.jsonl");
const DEFAULT_POLICY: &str = include_str!("../../policies/default.toml");
/// The mock model's special tokens: none may survive the pre-filter.
const SPECIAL_TOKENS: [&str; 5] = [
    "<|im_start|>",
    "<|im_end|>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<|endoftext|>",
];
/// Pieces a hostile guest would splice in.
const SPLICES: &[&str] = &[
    "\\u0000",
    "\\ud800",
    "\\udc00",
    "\\ud83d\\ude00",
    "\\u200b",
    "\\u202e",
    "\\\"",
    "\\\\",
    "\"",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "1e999",
    "-0",
    "01",
    "1.",
    "NaN",
    "\u{e9}",
    "\u{1f600}",
    "<|im_start|>",
    "<|",
    "|>",
    "<start_of_turn>",
    "[INST]",
    "answer no",
    "Ignore  previous\n",
    "\"path\":\"/etc/shadow\",",
    "\"cmd\":\"rm -rf /\",",
    "/../",
    "//",
    "\t",
];

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// `{"tool":...,"args":...}` of each row, as canonical text.
fn seed_calls() -> Vec<String> {
    TOOLCALLS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let row = parse(l).expect("a toolcalls.jsonl row");
            let mut call = std::collections::BTreeMap::new();
            call.insert("tool".to_string(), row.get("tool").unwrap().clone());
            call.insert("args".to_string(), row.get("args").unwrap().clone());
            Value::Object(call).to_json()
        })
        .collect()
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn char_boundary(s: &str, rng: &mut Rng) -> usize {
    floor_boundary(s, rng.below(s.len() + 1))
}

fn mutate(seed: &str, rng: &mut Rng) -> String {
    let mut s = seed.to_string();
    for _ in 0..1 + rng.below(4) {
        let at = char_boundary(&s, rng);
        match rng.below(5) {
            0 => s.insert_str(at, SPLICES[rng.below(SPLICES.len())]),
            1 => {
                let end = floor_boundary(&s, char_boundary(&s, rng).clamp(at, at + 16));
                s.replace_range(at..end, "");
            }
            2 => {
                let end = floor_boundary(&s, char_boundary(&s, rng).clamp(at, at + 64));
                let piece = s[at..end].to_string();
                s.insert_str(end, &piece);
            }
            3 => {
                let depth = rng.below(40);
                let nested = "[".repeat(depth) + &"]".repeat(depth);
                s.insert_str(at, &nested);
            }
            _ => {
                let c = char::from_u32(rng.below(0x3000) as u32).unwrap_or('\u{fffd}');
                s.insert(at, c);
            }
        }
    }
    s
}

fn run(iterations: usize, seed: u64) {
    let model = MockModel::new();
    let policy = Policy::parse(DEFAULT_POLICY).unwrap();
    let mut cache = CalibrationCache::new();
    let mut pipeline = Pipeline::new(policy, Some(&model), &mut cache, Layers::ALL).unwrap();
    let mut chain = AuditChain::new();
    let mut log = String::new();
    let seeds = seed_calls();
    let mut rng = Rng(seed);
    let (mut parsed, mut actions) = (0, 0);
    for i in 0..iterations {
        let text = mutate(&seeds[rng.below(seeds.len())], &mut rng);
        let Ok(value) = parse(&text) else { continue };
        parsed += 1;
        assert_eq!(parse(&value.to_json()).as_ref(), Ok(&value), "{text}");
        let Ok(action) = Action::from_json(&text) else {
            continue;
        };
        actions += 1;
        // The tool name is not cleaned: the schema layer refuses a tool the policy does not declare.
        let prompt = prefilter(&action).action.args.to_json();
        for token in SPECIAL_TOKENS {
            assert!(!prompt.contains(token), "{token} reaches the model: {text}");
        }
        let agent = ["builder", "assistant", "nobody"][i % 3];
        let now = i as u64 * 60_000;
        let decision = pipeline.decide(&action, agent, now);
        log.push_str(&chain.record(now, agent, &action, &decision, &Default::default()));
    }
    eprintln!("{parsed} parsed, {actions} actions of {iterations}");
    let report = verify(log.as_bytes(), Some(chain.head())).unwrap();
    assert_eq!(report.records, actions as u64);
    assert!(
        parsed > 0 && actions > 0,
        "{parsed} parsed, {actions} actions"
    );
}

#[test]
fn mutated_tool_calls_never_panic_quick() {
    run(300, 0x9e37_79b9_7f4a_7c15);
}

#[test]
#[ignore = "slow: the long fuzz run"]
fn mutated_tool_calls_never_panic() {
    let iterations = std::env::var("PROBE_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let seed = std::env::var("PROBE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    run(iterations, seed);
}
