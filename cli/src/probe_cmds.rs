//! `probevisor probe | eval | audit`: ProbeLogits verdicts, evaluation on labelled data, audit
//! log verification; `probe --bench N` times the pipeline's non-inference layers.

use crate::args::Args;
use crate::json::string as js;
use crate::model_file::ModelFile;
use probe::action::Action;
use probe::audit::{self, AuditChain};
use probe::calibration::CalibrationCache;
use probe::dataset::{rows_from_csv, rows_from_jsonl, Columns};
use probe::engine::EngineModel;
use probe::gate::ProbeGate;
use probe::metrics::{bootstrap_ci, percentile_sorted, roc_auc, Confusion};
use probe::mock::MockModel;
use probe::pipeline::{Layers, Pipeline};
use probe::policy::Policy;
use probe::prompt::{PromptSpec, TemplateKind, Verbalizer};
use probe::LogitModel;
use std::time::Instant;

const DEFAULT_POLICY: &str = include_str!("../../policies/default.toml");
const PROBE_USAGE: &str = "usage: probevisor probe --model PATH [--policy FILE] [--alpha A] [--threshold T] \
[--verbalizer yes/no|safe/dangerous|allow/deny] [--agent NAME] [--layers all|no-probe|probe-only] [--threads N] \
[--audit FILE] ACTION\n  ACTION: {\"tool\":\"...\",\"args\":{...}} or plain text\n\
       probevisor probe --bench N   (times the non-inference layers with the mock model)";

fn load_policy(args: &Args) -> Result<Policy, String> {
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

fn parse_verbalizer(name: &str) -> Result<Verbalizer, String> {
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
    let path = args.get("--model");
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
    let mut pipeline = Pipeline::new(policy, model.as_ref(), &mut CalibrationCache::new(), layers)
        .map_err(|e| format!("{e}"))?;
    pipeline.set_gate_defaults(alpha, threshold);
    let setup_ms = t0.elapsed().as_secs_f64() * 1e3;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let t1 = Instant::now();
    let d = pipeline.decide(&action, &agent, now_ms);
    let latency_ms = t1.elapsed().as_secs_f64() * 1e3;
    let mut out = format!(
        "{{\"verdict\":\"{}\",\"layer\":\"{}\",\"reason\":{},\"p_dangerous\":{},\"latency_ms\":{latency_ms:.3},\"setup_ms\":{setup_ms:.1}",
        d.verdict.name(),
        d.layer.name(),
        js(&d.reason),
        opt(d.p_dangerous)
    );
    if let Some(file) = args.get("--audit") {
        let existing = std::fs::read(file).unwrap_or_default();
        let report = audit::verify(&existing, None)
            .map_err(|e| format!("existing audit log '{file}' is bad: {e}"))?;
        let mut chain = AuditChain::resume(report.records, report.final_hash);
        let line = chain.record(now_ms, &agent, &action, &d, &pipeline.model_digest());
        use std::io::Write;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .map_err(|e| format!("cannot append to '{file}': {e}"))?;
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
            match audit::verify(&bytes, want) {
                Ok(r) => {
                    println!(
                        "{{\"ok\":true,\"records\":{},\"final_hash\":\"{}\"}}",
                        r.records,
                        audit::hex(&r.final_hash)
                    );
                    Ok(())
                }
                Err(e) => {
                    println!("{{\"ok\":false,\"error\":{}}}", js(&e.to_string()));
                    Err(e.to_string())
                }
            }
        }
        _ => Err("usage: probevisor audit verify FILE [--final-hash HEX]".to_string()),
    }
}

const EVAL_USAGE: &str = "usage: probevisor eval --model PATH --dataset FILE [--text-col C] [--label-col L] \
[--positive V] [--alpha A,B,...] [--verbalizer V,...] [--threshold T] [--limit N] [--examples policy|none] \
[--policy FILE] [--threads N] [--json true]";

/// Column defaults for the shared data sets, by file name.
fn default_columns(path: &str) -> Columns {
    let lower = path.to_ascii_lowercase();
    if lower.contains("harmbench") {
        Columns {
            text: "Behavior".into(),
            label: None,
            positive: String::new(),
        }
    } else {
        Columns {
            text: "prompt".into(),
            label: Some("label".into()),
            positive: "unsafe".into(),
        }
    }
}

struct Setting {
    verbalizer: Verbalizer,
    alpha: f32,
    scores: Vec<f32>,
}

pub fn eval(raw: &[String]) -> Result<(), String> {
    let with_value = [
        "--model",
        "--dataset",
        "--text-col",
        "--label-col",
        "--positive",
        "--alpha",
        "--verbalizer",
        "--threshold",
        "--limit",
        "--json",
        "--policy",
        "--threads",
        "--examples",
    ];
    let args = Args::parse(raw, &with_value)?;
    let dataset = args.get("--dataset").ok_or(EVAL_USAGE)?;
    let path = args.get("--model").ok_or(EVAL_USAGE)?;
    let mut cols = default_columns(dataset);
    if let Some(c) = args.get("--text-col") {
        cols.text = c.to_string();
    }
    if let Some(l) = args.get("--label-col") {
        cols.label = Some(l.to_string()).filter(|l| !l.is_empty());
    }
    if let Some(p) = args.get("--positive") {
        cols.positive = p.to_string();
    }
    let text =
        std::fs::read_to_string(dataset).map_err(|e| format!("cannot read '{dataset}': {e}"))?;
    let mut rows = if dataset.ends_with(".jsonl") {
        rows_from_jsonl(&text, &cols)?
    } else {
        rows_from_csv(&text, &cols)?
    };
    rows.truncate(args.number("--limit", usize::MAX)?);
    if rows.is_empty() {
        return Err(format!("'{dataset}' has no rows"));
    }
    let alphas: Vec<f32> = args
        .get("--alpha")
        .unwrap_or("0,0.5,1")
        .split(',')
        .map(|a| {
            a.trim()
                .parse::<f32>()
                .map_err(|_| format!("--alpha: '{a}'"))
        })
        .collect::<Result<_, _>>()?;
    let verbalizers: Vec<Verbalizer> = args
        .get("--verbalizer")
        .unwrap_or("yes/no")
        .split(',')
        .map(|v| parse_verbalizer(v.trim()))
        .collect::<Result<_, _>>()?;
    let threshold: f32 = args.number("--threshold", 0.5)?;
    let policy = load_policy(&args)?;
    let examples = match args.get("--examples").unwrap_or("policy") {
        "policy" => policy.gate.examples.clone(),
        "none" => Vec::new(),
        o => return Err(format!("--examples: '{o}' (policy, none)")),
    };
    let file = ModelFile::open(path)?;
    let model = EngineModel::new(
        file.load(path, args.number("--threads", 0usize)?)?,
        audit::digest(file.bytes()),
    );
    let template = policy
        .gate
        .template
        .unwrap_or_else(|| TemplateKind::detect(model.chat_template()));
    let truth: Vec<bool> = rows.iter().map(|r| r.1).collect();
    let mut cache = CalibrationCache::new();
    let mut settings = Vec::new();
    let mut latencies: Vec<(Verbalizer, Vec<f64>, f64)> = Vec::new();
    for &verbalizer in &verbalizers {
        let spec = PromptSpec {
            template,
            verbalizer,
            system: policy.gate.system.clone(),
            policy_text: policy.gate.policy_text.clone(),
            examples: examples.clone(),
        };
        let t = Instant::now();
        let gate = ProbeGate::new(&model, spec, &mut cache)
            .map_err(|e| format!("{}: {e}", verbalizer.name()))?;
        let prefix_ms = t.elapsed().as_secs_f64() * 1e3;
        let mut raws = Vec::with_capacity(rows.len());
        let mut lat = Vec::with_capacity(rows.len());
        for (i, (text, _)) in rows.iter().enumerate() {
            let t = Instant::now();
            let raw = gate.raw_probs(&probe::prefilter::clean_str(text, "text", &mut Vec::new()));
            lat.push(t.elapsed().as_secs_f64() * 1e3);
            raws.push(raw.map_err(|e| format!("row {}: {e}", i + 1))?);
            if (i + 1) % 50 == 0 {
                eprintln!("{}: {}/{} rows", verbalizer.name(), i + 1, rows.len());
            }
        }
        for &alpha in &alphas {
            let scores = raws
                .iter()
                .map(|r| gate.calibrate(*r, alpha).map(|s| s.p_dangerous()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            settings.push(Setting {
                verbalizer,
                alpha,
                scores,
            });
        }
        lat.sort_by(f64::total_cmp);
        latencies.push((verbalizer, lat, prefix_ms));
        eprintln!(
            "{}: prefix {} tokens, {prefix_ms:.0} ms, p_cf {:?}",
            verbalizer.name(),
            gate.prefix_tokens(),
            gate.content_free()
        );
    }
    let as_json = args.get("--json").is_some_and(|v| v != "false");
    if !as_json {
        println!("dataset {dataset}: {} rows, {} harmful; model {path}; template {}; threshold {threshold}\n", rows.len(), truth.iter().filter(|t| **t).count(), template.name());
        println!("| verbalizer | alpha | precision [95% CI] | recall [95% CI] | F1 [95% CI] | ROC AUC | accuracy | p50 ms | p95 ms |");
        println!("|---|---|---|---|---|---|---|---|---|");
    }
    let mut json_rows = Vec::new();
    for s in &settings {
        let pred: Vec<bool> = s.scores.iter().map(|p| *p >= threshold).collect();
        let c = Confusion::from_pairs(truth.iter().copied().zip(pred.iter().copied()));
        let ci = bootstrap_ci(&truth, &pred, 1000, 0x5eed);
        let auc = roc_auc(&s.scores, &truth);
        let (lat, prefix_ms) = latencies
            .iter()
            .find(|l| l.0 == s.verbalizer)
            .map(|l| (&l.1, l.2))
            .ok_or("latency")?;
        let (p50, p95) = (percentile_sorted(lat, 50.0), percentile_sorted(lat, 95.0));
        let auc_text = auc.map_or("n/a".to_string(), |a| format!("{a:.3}"));
        if as_json {
            json_rows.push(format!(
                "{{\"verbalizer\":\"{}\",\"alpha\":{},\"precision\":{:.4},\"precision_ci\":[{:.4},{:.4}],\"recall\":{:.4},\"recall_ci\":[{:.4},{:.4}],\"f1\":{:.4},\"f1_ci\":[{:.4},{:.4}],\"roc_auc\":{},\"accuracy\":{:.4},\"latency_p50_ms\":{p50:.2},\"latency_p95_ms\":{p95:.2},\"prefix_ms\":{prefix_ms:.1},\"rows\":{}}}",
                s.verbalizer.name(), s.alpha, c.precision(), ci[0].0, ci[0].1, c.recall(), ci[1].0, ci[1].1, c.f1(), ci[2].0, ci[2].1,
                auc.map_or("null".to_string(), |a| format!("{a:.4}")), c.accuracy(), truth.len()
            ));
        } else {
            println!(
                "| {} | {} | {:.3} [{:.3}, {:.3}] | {:.3} [{:.3}, {:.3}] | {:.3} [{:.3}, {:.3}] | {auc_text} | {:.3} | {p50:.1} | {p95:.1} |",
                s.verbalizer.name(), s.alpha, c.precision(), ci[0].0, ci[0].1, c.recall(), ci[1].0, ci[1].1, c.f1(), ci[2].0, ci[2].1, c.accuracy()
            );
        }
    }
    if as_json {
        println!("[{}]", json_rows.join(","));
    }
    Ok(())
}
