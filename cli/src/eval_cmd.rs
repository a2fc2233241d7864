//! `probevisor eval`: the ProbeLogits gate (and, with `--ablation`, the whole pipeline) on labelled
//! data. Each (verbalizer, examples) prefix is computed once; each row costs one forked pass over the
//! action's tokens; every alpha reuses the same raw probabilities. `--cv K` chooses the setting and
//! threshold by stratified k-fold cross-validation; `--baseline generate` asks the same model to
//! answer in words and parses the answer.

use crate::args::Args;
use crate::eval_report::{Report, Scored};
use crate::eval_rows::{
    example_set, examples_from_rows, load_rows, prompt_tool, scored_rows, without_example_rows,
};
use crate::eval_whole_gate::{run_pipeline, whole_gate_settings, WITHOUT_PROBE};
use crate::model_file::ModelFile;
use crate::probe_cmds::{load_policy, parse_verbalizer};
use probe::audit;
use probe::calibration::CalibrationCache;
use probe::crossval::{choose, cross_validate};
use probe::engine::EngineModel;
use probe::eval_data::EvalRow;
use probe::gate::ProbeGate;
use probe::pipeline::Layers;
use probe::policy::{empty_call_args, CalibrationScope, Policy};
use probe::prefilter::prefilter;
use probe::prompt::{Example, PromptSpec, Subject, TemplateKind, Verbalizer};
use probe::LogitModel;
use std::time::Instant;

pub(crate) const EVAL_USAGE: &str =
    "usage: probevisor eval [--model PATH] --dataset FILE [--format auto|toolcalls|harmbench|text]
  [--text-col C] [--label-col L] [--positive V] [--categories standard,contextual] [--limit N]
  [--verbalizer yes/no,safe/dangerous,...] (default: the policy's) [--alpha 0,0.5,1]
  [--examples policy,reversed,none]  the policy's examples, the same last first, or none
  [--add-examples ID,...]  these dataset rows, in this order, after the policy's examples (not scored)
  [--question Q]   ask Q after the action in place of the policy's question (names both label words)
  [--retrieve K]   show each row its K most similar rows of the other --cv folds (word overlap) as
                   labelled exchanges right before it (per-verdict examples; an experiment)
  [--reason N]     the model first explains the action in one sentence (at most N tokens, greedy),
                   then answers; the examples are answered with their dataset rationale (an experiment)
  [--knn-layers L,...] [--knn K,...] [--knn-weights W,...] [--knn-states F]  the K labelled rows
                   nearest in the model's hidden state after block L vote, alone and added to the
                   probe's log-odds (weight W); nested --cv (an experiment; F caches the states);
  [--knn-memory policy]  the neighbours are the policy's examples only (else the other folds' rows)
  [--calibration shared,per-tool]  content-free inputs: the shared ones, each tool's empty call, or
                   both as separate settings (default: the policy's [gate] calibration)
  [--threshold T]   (default: the policy's gate threshold)
  [--cv K]          choose verbalizer, examples, alpha and threshold by k-fold cross-validation
  [--baseline generate] [--gen-tokens N]   generate-and-parse on the same model and prompt
  [--ablation true] the whole pipeline: all layers, without the probe, the probe alone
  [--whole-gate true] also score the whole gate: 1 where the other layers (schema, tier, pre-filter,
                   rules) deny, else the probe's score; --cv then cross-validates both; the
                   other layers alone appear as the ablation row 'without the probe'
  [--scores-out F]  write each row's id, label and score under every setting as JSON lines
  --scores-in F [--threshold T] [--cv K] [--json true] [--whole-gate true --dataset D --policy P]
                   the tables again from such a file (no model); with --whole-gate, the other layers
                   are run again on D's rows under P and combined with the file's probe scores
  [--injection-check false]  with a policy's [gate.injection], tool-call rows are also scored with
                   the check: each setting again as '... + injection check at threshold - G' for
                   gaps G of 0..0.6 (docs/evaluation.md); false: without
  [--policy FILE] [--agent NAME] [--threads N] [--json true]";

fn list<'a>(args: &'a Args, name: &str, default: &'a str) -> Vec<&'a str> {
    args.get(name)
        .unwrap_or(default)
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// One prefix: a verbalizer and an example set.
struct PrefixSetting {
    verbalizer: Verbalizer,
    examples_name: String,
    examples: Vec<Example>,
    /// `--question`: in place of the policy's (or the verbalizer's) question.
    question: Option<String>,
}

impl PrefixSetting {
    /// The prompt: the policy's system and policy texts with this verbalizer and these examples.
    fn spec(&self, policy: &Policy, template: TemplateKind, tool: &str) -> PromptSpec {
        let spec = policy.gate.prompt_spec(template, tool);
        PromptSpec {
            verbalizer: self.verbalizer,
            examples: self.examples.clone(),
            question: self.question.clone().or(spec.question.clone()),
            ..spec
        }
    }
}

/// `--question Q` for `verbalizer`: like a policy's question, it must name both label words.
fn question_for(question: Option<&str>, verbalizer: Verbalizer) -> Result<Option<String>, String> {
    let Some(q) = question else { return Ok(None) };
    let (danger, safe) = verbalizer.words();
    match [danger, safe].into_iter().find(|w| !q.contains(w)) {
        Some(w) => Err(format!(
            "--question must name the label word {w:?} of the {} verbalizer",
            verbalizer.name()
        )),
        None => Ok(Some(q.to_string())),
    }
}

pub fn eval(raw: &[String]) -> Result<(), String> {
    let with_value = [
        "--model",
        "--dataset",
        "--format",
        "--text-col",
        "--label-col",
        "--positive",
        "--categories",
        "--alpha",
        "--verbalizer",
        "--threshold",
        "--limit",
        "--json",
        "--policy",
        "--threads",
        "--examples",
        "--cv",
        "--baseline",
        "--gen-tokens",
        "--agent",
        "--ablation",
        "--scores-out",
        "--whole-gate",
        "--scores-in",
        "--injection-check",
        "--add-examples",
        "--question",
        "--calibration",
        "--retrieve",
        "--reason",
        "--knn-layers",
        "--knn",
        "--knn-weights",
        "--knn-states",
        "--knn-memory",
    ];
    let args = Args::parse(raw, &with_value)?;
    if let Some(file) = args.get("--scores-in") {
        return crate::eval_scores::report_from_scores(&args, file);
    }
    let dataset = args.get("--dataset").ok_or(EVAL_USAGE)?;
    let default_model;
    let path = match args.get("--model") {
        Some(p) => p,
        None => {
            default_model = crate::model_file::default_model_path()?;
            eprintln!("eval: model {default_model} (the verdict model; --model to choose another)");
            &default_model
        }
    };
    let rows = load_rows(&args, dataset)?;
    let alphas: Vec<f32> = list(&args, "--alpha", "0,0.5,1")
        .iter()
        .map(|a| a.parse::<f32>().map_err(|_| format!("--alpha: '{a}'")))
        .collect::<Result<_, _>>()?;
    let policy = load_policy(&args)?;
    let tool = prompt_tool(&rows);
    let verbalizers: Vec<Verbalizer> = list(
        &args,
        "--verbalizer",
        policy.gate.verbalizer_for(tool).name(),
    )
    .iter()
    .map(|v| parse_verbalizer(v))
    .collect::<Result<_, _>>()?;
    if policy.gate.text_for(tool).is_some() {
        eprintln!(
            "eval: every row is free text: the policy's [gate.text] prompt, alpha and threshold"
        );
    }
    let threshold: f32 = args.number("--threshold", policy.gate.defaults_for(tool).1)?;
    let scopes: Vec<CalibrationScope> =
        list(&args, "--calibration", policy.gate.calibration.name())
            .iter()
            .map(|c| {
                CalibrationScope::parse(c).ok_or(format!("--calibration: '{c}' (shared, per-tool)"))
            })
            .collect::<Result<_, _>>()?;
    let own_examples = policy.gate.examples_for(tool);
    let added = examples_from_rows(&rows, &list(&args, "--add-examples", ""))?;
    // A row shown to the model as a labelled example is never scored: it would be judged by its own answer.
    let example_names = list(&args, "--examples", "policy");
    let uses_policy_examples = example_names.iter().any(|n| *n != "none");
    let rows = without_example_rows(scored_rows(rows, &policy, uses_policy_examples), &added);
    let mut prefixes = Vec::new();
    for &verbalizer in &verbalizers {
        for name in &example_names {
            let (examples, examples_name) = example_set(name, own_examples, &added)?;
            prefixes.push(PrefixSetting {
                verbalizer,
                examples_name,
                examples,
                question: question_for(args.get("--question"), verbalizer)?,
            });
        }
    }
    let file = ModelFile::open(path)?;
    let model = EngineModel::new(
        file.load(path, args.number("--threads", 0usize)?)?,
        audit::digest(file.bytes()),
    );
    let template = policy
        .gate
        .template
        .unwrap_or_else(|| TemplateKind::detect(model.chat_template()));
    let truth: Vec<bool> = rows.iter().map(|r| r.harmful).collect();
    // The text the gate sees: the action after the pre-filter's neutralisation, as in the pipeline.
    let texts: Vec<String> = rows
        .iter()
        .map(|r| prefilter(&r.action).action.prompt_text())
        .collect();
    // `--retrieve K`: each row's K nearest rows of the other folds as per-verdict examples.
    let retrieve: usize = args.number("--retrieve", 0usize)?;
    if retrieve > 0 && args.get("--knn-layers").is_some() {
        // --retrieve shows each row labelled rows of other folds: a held-out label would reach the
        // choices --knn-layers makes on the training rows.
        return Err("--knn-layers cannot be combined with --retrieve".into());
    }
    let neighbours = match retrieve {
        0 => Vec::new(),
        k => {
            let folds = args.number("--cv", 5usize)?.max(2);
            for p in prefixes.iter_mut() {
                p.examples_name = format!("{} + {k} nearest", p.examples_name);
            }
            crate::eval_retrieve::neighbour_examples(&texts, &truth, k, folds)
        }
    };
    // `--reason N`: reasoning before the label (eval_reason.rs).
    let reason_tokens: usize = args.number("--reason", 0usize)?;
    let rationales = crate::eval_reason::rationales_for(reason_tokens, dataset, &alphas)?;
    if reason_tokens > 0 {
        for p in prefixes.iter_mut() {
            p.examples_name = format!("{}, reasoning {reason_tokens} tokens", p.examples_name);
        }
    }
    let mut report = Report::new(dataset, path, &truth, template.name(), threshold);
    let mut cache = CalibrationCache::new();
    for p in &prefixes {
        let spec = p.spec(&policy, template, tool);
        let t = Instant::now();
        let mut gate = ProbeGate::new(&model, spec, &mut cache)
            .map_err(|e| format!("{}: {e}", p.verbalizer.name()))?;
        let mut reasoner = match reason_tokens {
            0 => None,
            n => Some(crate::eval_reason::Reasoner::new(
                &model,
                gate.spec(),
                &rationales,
                n,
            )?),
        };
        let prefix_ms = t.elapsed().as_secs_f64() * 1e3;
        let mut raws = Vec::with_capacity(rows.len());
        let mut lat = Vec::with_capacity(rows.len());
        for (i, text) in texts.iter().enumerate() {
            let t = Instant::now();
            let r = match (reasoner.as_mut(), neighbours.get(i)) {
                (Some(reasoner), _) => {
                    let (why, p) = reasoner.judge(text)?;
                    eprintln!("{}: {:.3} {why}", rows[i].id, p[0]);
                    Ok(p)
                }
                (None, Some(exs)) => gate.raw_probs_after(exs, text),
                (None, None) => gate.raw_probs(text),
            };
            lat.push(t.elapsed().as_secs_f64() * 1e3);
            raws.push(r.map_err(|e| format!("{}: {e}", rows[i].id))?);
            if (i + 1) % 50 == 0 {
                eprintln!(
                    "{} / examples {}: {}/{} rows",
                    p.verbalizer.name(),
                    p.examples_name,
                    i + 1,
                    rows.len()
                );
            }
        }
        eprintln!(
            "{} / examples {}: prefix {} tokens, {prefix_ms:.0} ms (with calibration), p_cf {:?}",
            p.verbalizer.name(),
            p.examples_name,
            reasoner
                .as_ref()
                .map_or(gate.prefix_tokens(), |r| r.prefix_tokens),
            gate.content_free()
        );
        for &scope in &scopes {
            let per_tool = scope == CalibrationScope::PerTool;
            if per_tool && add_tool_priors(&mut gate, &policy, &rows, &mut cache)? == 0 {
                eprintln!(
                    "eval: no row is a call of a tool the policy declares: no per-tool settings"
                );
                continue;
            }
            let suffix = match scope {
                CalibrationScope::Shared => "",
                CalibrationScope::PerTool => ", per-tool calibration",
            };
            for &alpha in &alphas {
                // The shared prior, or (per-tool) each row's tool's prior when it has one.
                let scores = raws
                    .iter()
                    .zip(&rows)
                    .map(|(r, row)| {
                        match scope {
                            CalibrationScope::Shared => gate.calibrate(*r, alpha),
                            CalibrationScope::PerTool => {
                                gate.calibrate_for(&row.action.tool, *r, alpha)
                            }
                        }
                        .map(|s| s.p_dangerous())
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.to_string())?;
                report.scored.push(Scored {
                    name: format!(
                        "{}, examples {}, alpha {alpha}{suffix}",
                        p.verbalizer.name(),
                        p.examples_name
                    ),
                    scores,
                    latency_ms: lat.clone(),
                    prefix_ms,
                });
            }
        }
    }
    let check = policy.gate.injection_for(tool);
    if let Some(i) = check.filter(|_| args.get("--injection-check") != Some("false")) {
        let spec = i.spec(template, Subject::Action);
        crate::eval_injection::add_injection_check(
            &model,
            spec,
            i.alpha,
            &texts,
            &mut report.scored,
        )?;
    }
    if args.get("--knn-layers").is_some() {
        let spec = prefixes[0].spec(&policy, template, tool);
        crate::eval_knn::run(&args, &model, spec, &texts, &rows, &report.scored)?;
    }
    let agent = args.get("--agent").unwrap_or("cli");
    let probe_settings = report.scored.len();
    if args.get("--whole-gate").is_some_and(|v| v != "false") {
        let (gate, denied) =
            whole_gate_settings(&policy, &rows, agent, &report.scored[..probe_settings])?;
        report.scored.extend(gate);
        report
            .ablation
            .push((WITHOUT_PROBE.to_string(), denied, Vec::new()));
    }
    if let Some(out) = args.get("--scores-out") {
        crate::eval_scores::write_scores(out, &rows, &report.scored)?;
    }
    if let Some(k) = args.get("--cv") {
        let k: usize = k
            .parse()
            .map_err(|_| format!("--cv: '{k}' is not a count"))?;
        let all = report.scored.len();
        add_cvs(&mut report, &truth, k, probe_settings, all)?;
    }
    if args.get("--baseline").is_some() {
        match args.get("--baseline") {
            Some("generate") => {
                let p = &prefixes[0];
                let spec = p.spec(&policy, template, tool);
                let result = crate::eval_generate::run(
                    &model,
                    &spec,
                    &texts,
                    args.number("--gen-tokens", 4usize)?,
                )?;
                report.set_generate(
                    format!(
                        "generate-and-parse, {}, examples {}",
                        p.verbalizer.name(),
                        p.examples_name
                    ),
                    result,
                );
            }
            Some(o) => return Err(format!("--baseline: '{o}' (generate)")),
            None => {}
        }
    }
    if args.get("--ablation").is_some_and(|v| v != "false") {
        for (name, layers) in [
            ("all layers", Layers::ALL),
            ("without the probe", Layers::WITHOUT_PROBE),
            ("probe only", Layers::PROBE_ONLY),
        ] {
            let (pred, lat) = run_pipeline(&policy, Some(&model), &rows, layers, agent)?;
            report.ablation.push((name.to_string(), pred, lat));
        }
    }
    report.print(args.get("--json").is_some_and(|v| v != "false"));
    Ok(())
}

/// Give `gate` the prior of every tool among `rows` that the policy declares (each tool's empty
/// call, as `calibration = "per-tool"` does in the pipeline); returns how many.
fn add_tool_priors(
    gate: &mut ProbeGate<'_, EngineModel>,
    policy: &Policy,
    rows: &[EvalRow],
    cache: &mut CalibrationCache,
) -> Result<usize, String> {
    let mut tools: Vec<&str> = rows.iter().map(|r| r.action.tool.as_str()).collect();
    tools.sort_unstable();
    tools.dedup();
    let mut added = 0;
    for tool in tools {
        let Some(args) = empty_call_args(&policy.tools, tool) else {
            continue;
        };
        let p = gate
            .add_tool_prior(tool, &args, cache)
            .map_err(|e| format!("{tool}'s prior: {e}"))?;
        eprintln!(
            "eval: per-tool prior of {tool} (its required arguments {args:?} empty): p_cf {p:?}"
        );
        added += 1;
    }
    Ok(added)
}

/// Cross-validates the probe settings `scored[..probe]` and the whole-gate settings `scored[probe..all]`
/// separately.
pub(crate) fn add_cvs(
    report: &mut Report,
    truth: &[bool],
    k: usize,
    probe: usize,
    all: usize,
) -> Result<(), String> {
    for (title, from, to) in [("probe", 0, probe), ("whole gate", probe, all)] {
        if from == to {
            continue;
        }
        let candidates: Vec<Vec<f32>> = report.scored[from..to]
            .iter()
            .map(|s| s.scores.clone())
            .collect();
        let cv = cross_validate(&candidates, truth, k, crate::eval_retrieve::FOLD_SEED)
            .ok_or("--cv: nothing to cross-validate")?;
        let every: Vec<usize> = (0..truth.len()).collect();
        let frozen = choose(&candidates, truth, &every).ok_or("--cv: no choice")?;
        report.add_cv(title, cv, frozen, from);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_question_must_name_both_label_words() {
        let q = "Does this action violate the policy? Answer Yes or No.";
        assert_eq!(
            question_for(Some(q), Verbalizer::YesNo).unwrap().as_deref(),
            Some(q)
        );
        let e = question_for(Some(q), Verbalizer::SafeDangerous).unwrap_err();
        assert!(e.contains("\"Dangerous\""), "{e}");
        assert_eq!(question_for(None, Verbalizer::YesNo).unwrap(), None);
    }
}
