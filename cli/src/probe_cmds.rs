//! `probevisor probe | eval | audit`: ProbeLogits verdicts, evaluation on labelled data, audit
//! log verification; `probe --bench N` times the pipeline's non-inference layers.

use crate::args::Args;
use crate::json::string as js;
use crate::model_file::ModelFile;
use probe::action::Action;
use probe::audit::{self, AuditChain};
use probe::calibration::CalibrationCache;
use probe::engine::EngineModel;

use probe::mock::MockModel;
use probe::pipeline::{Layers, Pipeline};
use probe::policy::Policy;
use probe::prompt::Verbalizer;
use std::time::Instant;

pub(crate) const DEFAULT_POLICY: &str = include_str!("../../policies/default.toml");
pub(crate) const PROBE_USAGE: &str = "usage: probevisor probe [--model PATH] [--policy FILE] [--alpha A] [--threshold T] \
[--verbalizer yes/no|safe/dangerous|allow/deny] [--agent NAME] [--layers all|no-probe|probe-only] [--threads N] \
[--audit FILE] ACTION\n  ACTION: {\"tool\":\"...\",\"args\":{...}} or plain text\n  --model defaults to the verdict model (Qwen2.5-Coder-1.5B) in the model cache\n\
       probevisor probe --bench N   (times the non-inference layers with the mock model)";

pub(crate) const AUDIT_USAGE: &str = "usage: probevisor audit verify FILE [--final-hash HEX]\n  \
checks an audit log's hash chain (and that it ends at HEX); prints the record count and final hash\n  \
every line must be a record; without --final-hash a log cut after any record passes: compare the \
final hash printed with the run's AUDIT-FINAL";

pub(crate) fn load_policy(args: &Args) -> Result<Policy, String> {
    match args.get("--policy") {
        None => Policy::parse(DEFAULT_POLICY).map_err(|e| format!("built-in policy: {e}")),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read policy '{path}': {e}"))?;
            Policy::parse(&text).map_err(|e| format!("{path}: {e}"))
        }
    }
}

fn parse_layers(name: Option<&str>) -> Result<Layers, String> {
    match name.unwrap_or("all") {
        "all" => Ok(Layers::ALL),
        "no-probe" => Ok(Layers::WITHOUT_PROBE),
        "probe-only" => Ok(Layers::PROBE_ONLY),
        o => Err(format!(
            "--layers: unknown '{o}' (all, no-probe, probe-only)"
        )),
    }
}

pub(crate) fn parse_verbalizer(name: &str) -> Result<Verbalizer, String> {
    Verbalizer::parse(name)
        .ok_or_else(|| format!("unknown verbalizer '{name}' (yes/no, safe/dangerous, allow/deny)"))
}

fn opt(v: Option<f32>) -> String {
    v.map_or("null".to_string(), |p| format!("{p:.6}"))
}

pub fn probe(raw: &[String]) -> Result<(), String> {
    let with_value = [
        "--model",
        "--policy",
        "--alpha",
        "--threshold",
        "--verbalizer",
        "--agent",
        "--layers",
        "--threads",
        "--audit",
        "--bench",
    ];
    let args = Args::parse(raw, &with_value)?;
    if let Some(n) = args.get("--bench") {
        return bench_pipeline(
            n.parse()
                .map_err(|_| format!("--bench: '{n}' is not a count"))?,
        );
    }
    let text = args.text();
    if text.is_empty() {
        return Err(PROBE_USAGE.to_string());
    }
    let action = Action::from_cli(&text)?;
    let mut policy = load_policy(&args)?;
    if let Some(v) = args.get("--verbalizer") {
        policy.gate.verbalizer = parse_verbalizer(v)?;
    }
    let layers = parse_layers(args.get("--layers"))?;
    let agent = args.get("--agent").unwrap_or("cli").to_string();
    let alpha = args
        .get("--alpha")
        .map(|a| a.parse::<f32>().map_err(|_| format!("--alpha: '{a}'")))
        .transpose()?;
    let threshold = args
        .get("--threshold")
        .map(|a| a.parse::<f32>().map_err(|_| format!("--threshold: '{a}'")))
        .transpose()?;
    let default_model;
    let path = match args.get("--model") {
        Some(p) => Some(p),
        None if layers.probe && policy.gate.enabled => {
            default_model = crate::model_file::default_model_path()?;
            Some(default_model.as_str())
        }
        None => None,
    };
    let file = path.map(ModelFile::open).transpose()?;
    let model = match (&file, path) {
        (Some(f), Some(p)) => {
            let m = f.load(p, args.number("--threads", 0usize)?)?;
            Some(EngineModel::new(m, audit::digest(f.bytes())))
        }
        _ if layers.probe && policy.gate.enabled => {
            return Err(format!("missing --model\n{PROBE_USAGE}"))
        }
        _ => None,
    };
    let t0 = Instant::now();
    // Only the prompts this action can reach are prefilled: free text never pays for the
    // injection check's prefix, nor, under a policy with [gate.text], for the tool-call prompt's.
    let mut pipeline =
        Pipeline::on_demand(policy, model.as_ref(), layers).map_err(|e| format!("{e}"))?;
    pipeline.set_gate_defaults(alpha, threshold);
    pipeline
        .prefill_for(&action)
        .map_err(|e| format!("cannot build the probe's prompt: {e}"))?;
    let setup_ms = t0.elapsed().as_secs_f64() * 1e3;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let t1 = Instant::now();
    let d = pipeline.decide(&action, &agent, now_ms);
    let latency_ms = t1.elapsed().as_secs_f64() * 1e3;
    let mut out = format!(
        "{{\"verdict\":\"{}\",\"layer\":\"{}\",\"reason\":{},\"p_dangerous\":{},\"p_injection\":{},\"latency_ms\":{latency_ms:.3},\"setup_ms\":{setup_ms:.1}",
        d.verdict.name(),
        d.layer.name(),
        js(&d.reason),
        opt(d.p_dangerous),
        opt(d.p_injection)
    );
    if let Some(file) = args.get("--audit") {
        let existing = std::fs::read(file).unwrap_or_default();
        let report = audit::verify(&existing, None)
            .map_err(|e| format!("existing audit log '{file}' is bad: {e}"))?;
        let mut chain = AuditChain::resume(report.records, report.final_hash);
        let mut line = chain.record(now_ms, &agent, &action, &d, &pipeline.provenance());
        // A last record without its line end (verify accepts one) must not be glued to the new one.
        if existing.last().is_some_and(|&b| b != b'\n') {
            line.insert(0, '\n');
        }
        use std::io::Write;
        // An empty log (no records: a file of nothing or a lone line end) is started afresh: a
        // record after its blank line would make it unverifiable.
        let written = if report.records == 0 {
            std::fs::write(file, line.trim_start().as_bytes())
        } else {
            std::fs::OpenOptions::new()
                .append(true)
                .open(file)
                .and_then(|mut f| f.write_all(line.as_bytes()))
        };
        written.map_err(|e| format!("cannot append to '{file}': {e}"))?;
        out.push_str(&format!(
            ",\"audit_head\":\"{}\"",
            audit::hex(&chain.head())
        ));
    }
    out.push('}');
    println!("{out}");
    Ok(())
}

/// Times `n` decisions through the non-inference layers, then through all layers with the mock model.
pub fn bench_pipeline(n: usize) -> Result<(), String> {
    let n = n.max(1);
    let mut policy = Policy::parse(DEFAULT_POLICY).map_err(|e| e.to_string())?;
    for t in policy.tools.values_mut() {
        t.rate = Some(probe::ratelimit::RateSpec {
            per_minute: 1e12,
            burst: 1e12,
        });
    }
    let actions: Vec<(Action, &str)> = [
        (r#"{"tool":"read_file","args":{"path":"/workspace/src/main.rs"}}"#, "builder"),
        (r#"{"tool":"run_command","args":{"cmd":"cargo build --release && ls target"}}"#, "builder"),
        (r#"{"tool":"http_fetch","args":{"url":"https://docs.rs/serde/latest/serde/"}}"#, "assistant"),
        (r#"{"tool":"write_file","args":{"path":"/workspace/notes.md","content":"todo: review the diff"}}"#, "assistant"),
        (r#"{"tool":"read_file","args":{"path":"/home/bob/.ssh/id_rsa"}}"#, "builder"),
    ]
    .iter()
    .map(|(a, ag)| Action::from_json(a).map(|x| (x, *ag)))
    .collect::<Result<_, _>>()?;
    let mock = MockModel::new();
    let mut results = Vec::new();
    for (name, layers) in [
        ("non-inference layers (no probe)", Layers::WITHOUT_PROBE),
        ("all layers, mock probe", Layers::ALL),
    ] {
        let mut p = Pipeline::new(
            policy.clone(),
            Some(&mock),
            &mut CalibrationCache::new(),
            layers,
        )
        .map_err(|e| e.to_string())?;
        let mut allowed = 0usize;
        let t = Instant::now();
        for i in 0..n {
            let (a, agent) = &actions[i % actions.len()];
            allowed += (p.decide(a, agent, i as u64).verdict == probe::Verdict::Allow) as usize;
        }
        let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
        results.push(format!("{{\"setting\":{},\"iterations\":{n},\"us_per_decision\":{us:.3},\"allowed\":{allowed}}}", js(name)));
    }
    // Per-layer breakdown of the cheap layers.
    let time = |f: &mut dyn FnMut(&Action)| {
        let t = Instant::now();
        for i in 0..n {
            f(&actions[i % actions.len()].0);
        }
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    };
    let mut sink = 0usize;
    let pre = time(&mut |a| sink += probe::prefilter::prefilter(a).findings.len());
    let schema = time(&mut |a| {
        let spec = &policy.tools[&a.tool];
        sink += probe::pipeline::validate_args(spec, &a.args, 1 << 20).is_ok() as usize
    });
    let rules = time(&mut |a| {
        let mut facts = probe::rules::ArgFacts::default();
        for arg in &policy.tools[&a.tool].args {
            if let Some(v) = a.args.get(&arg.name).and_then(|v| v.as_str()) {
                facts.add(arg.kind, v);
            }
        }
        sink += (probe::rules::evaluate(&policy.rules, policy.rules_default, &a.tool, &facts).0
            == probe::rules::Effect::Deny) as usize
    });
    results.push(format!("{{\"setting\":\"layer breakdown\",\"prefilter_us\":{pre:.3},\"schema_us\":{schema:.3},\"rules_us\":{rules:.3},\"sink\":{sink}}}"));
    println!("[{}]", results.join(","));
    Ok(())
}

pub fn audit(raw: &[String]) -> Result<(), String> {
    let args = Args::parse(raw, &["--final-hash"])?;
    match args.positional.as_slice() {
        [cmd, file] if cmd == "verify" => {
            let bytes = std::fs::read(file).map_err(|e| format!("cannot read '{file}': {e}"))?;
            let want = args
                .get("--final-hash")
                .map(|h| {
                    audit::parse_hex32(h)
                        .ok_or_else(|| format!("--final-hash: '{h}' is not 64 hex digits"))
                })
                .transpose()?;
            let (answer, verdict) = verify_answer(&bytes, want);
            println!("{answer}");
            verdict
        }
        _ => Err(AUDIT_USAGE.to_string()),
    }
}

/// `audit verify`'s JSON answer on `log`, and its outcome. Without `want` a log cut after any
/// record verifies, so the answer says the tail went unchecked and gives the head to compare.
fn verify_answer(log: &[u8], want: Option<[u8; 32]>) -> (String, Result<(), String>) {
    match audit::verify(log, want) {
        Ok(r) => {
            let mut answer = format!(
                "{{\"ok\":true,\"records\":{},\"final_hash\":\"{}\",\"final_hash_checked\":{}",
                r.records,
                audit::hex(&r.final_hash),
                want.is_some()
            );
            if want.is_none() {
                answer.push_str(&format!(",\"note\":{}", js(UNCHECKED_TAIL)));
            }
            answer.push('}');
            (answer, Ok(()))
        }
        Err(e) => (
            format!("{{\"ok\":false,\"error\":{}}}", js(&e.to_string())),
            Err(e.to_string()),
        ),
    }
}

const UNCHECKED_TAIL: &str = "no --final-hash: records cut from the end of the log go unnoticed; \
compare final_hash with the AUDIT-FINAL hash kept apart from the log";

#[cfg(test)]
#[path = "probe_cmds_audit_tests.rs"]
mod audit_tests;
