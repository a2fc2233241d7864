//! `cargo xtask bench`: prompt processing and decode at 1 and 2 threads, measured in-process by the
//! release CLI (`probevisor bench-internal`), next to llama-bench's figures in the same run when a
//! llama-bench binary is found (LLAMA_BENCH, PATH, or the copy built by
//! ../shared/tools/setup-llamacpp.sh, which the bench runs itself when there is none). Two models: SmolLM2-135M Q4_1 (pp64/128/512, tg32) and
//! Qwen2.5-Coder-1.5B Q4_K_M (pp128, tg32, and the verdict: a 40-token action evaluated on a fork
//! of a cached 2037-token prefix, asking only for the 2 label rows, against llama.cpp evaluating the
//! same 40 tokens and the whole 2077-token prompt). Writes the tables to docs/benchmarks.md.

use crate::{cargo, run_output, run_status, target_dir, workspace_root};
use std::path::{Path, PathBuf};
use std::process::Command;

const DECODE: usize = 32;
const THREADS: [usize; 2] = [1, 2];
/// Tokens of the cached prefix in the verdict case: about the default policy's prompt
/// (policies/default.toml rendered by the probe), as fixed pseudo-random ids.
const VERDICT_PREFIX: usize = 2037;
/// Tokens of the action evaluated on the fork.
const VERDICT_ACTION: usize = 40;

/// One benchmarked model.
struct Suite {
    /// The name `cargo xtask setup` knows it by.
    model: &'static str,
    title: &'static str,
    prompts: &'static [usize],
    verdict: bool,
}

const SUITES: [Suite; 2] = [
    Suite {
        model: "smollm2",
        title: "SmolLM2-135M-Instruct Q4_1",
        prompts: &[64, 128, 512],
        verdict: false,
    },
    Suite {
        model: "qwen25coder",
        title: "Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
        prompts: &[128],
        verdict: true,
    },
];

/// One figure: (test name like "pp64"/"tg32"/"verdict", threads, tokens/s).
type Figure = (String, usize, f64);

/// The first number after `"key":` in `obj`.
fn number_after(obj: &str, key: &str) -> Option<f64> {
    let pat = format!("\"{key}\"");
    let at = obj.find(&pat)? + pat.len();
    let rest = obj[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | 'E' | '+')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// The text of the JSON value after `"key":` in `line` up to its matching close bracket.
fn section<'l>(line: &'l str, key: &str) -> Option<&'l str> {
    let pat = format!("\"{key}\":");
    let rest = &line[line.find(&pat)? + pat.len()..];
    let mut depth = 0;
    for (i, ch) in rest.char_indices() {
        match ch {
            '[' | '{' => depth += 1,
            ']' | '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&rest[..=i]);
                }
            }
            _ => {}
        }
    }
    None
}

/// Figures from one `probevisor bench-internal` JSON line (pp items, tg, verdict).
fn parse_ours(line: &str, threads: usize) -> Result<Vec<Figure>, String> {
    let mut figs = Vec::new();
    if let Some(pp) = section(line, "pp") {
        for item in pp.split('{').skip(1) {
            let n = number_after(item, "n").ok_or("bench-internal: pp without n")?;
            let tps = number_after(item, "tokens_per_s")
                .ok_or("bench-internal: pp without tokens_per_s")?;
            figs.push((format!("pp{}", n as usize), threads, tps));
        }
    }
    for key in ["tg", "verdict"] {
        if let Some(obj) = section(line, key) {
            let n = number_after(obj, "n").ok_or(format!("bench-internal: {key} without n"))?;
            let tps = number_after(obj, "tokens_per_s")
                .ok_or(format!("bench-internal: {key} without tokens_per_s"))?;
            let name = if key == "tg" {
                format!("tg{}", n as usize)
            } else {
                key.to_string()
            };
            figs.push((name, threads, tps));
            if let Some(mm) = number_after(obj, "matmul_s") {
                figs.push((format!("{key}_matmul_s"), threads, mm));
            }
        }
    }
    Ok(figs)
}

/// The largest number of the JSON array after `"key":` in `obj`.
fn max_in_array(obj: &str, key: &str) -> Option<f64> {
    let pat = format!("\"{key}\"");
    let rest = obj[obj.find(&pat)? + pat.len()..].trim_start();
    let rest = rest.strip_prefix(':')?.trim_start().strip_prefix('[')?;
    rest[..rest.find(']')?]
        .split(',')
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .reduce(f64::max)
}

/// Figures from `llama-bench -o json` (an array of flat objects with n_prompt, n_gen, n_threads
/// and the per-repetition rates `samples_ts`). Ours are best of N runs, so theirs are too: the
/// fastest repetition (the mean `avg_ts` only where the samples are missing).
fn parse_llama_bench(json: &str) -> Vec<Figure> {
    let mut figs = Vec::new();
    for obj in json.split('}') {
        let (Some(np), Some(ng), Some(t), Some(ts)) = (
            number_after(obj, "n_prompt"),
            number_after(obj, "n_gen"),
            number_after(obj, "n_threads"),
            max_in_array(obj, "samples_ts").or_else(|| number_after(obj, "avg_ts")),
        ) else {
            continue;
        };
        let name = if ng > 0.0 {
            format!("tg{}", ng as usize)
        } else {
            format!("pp{}", np as usize)
        };
        figs.push((name, t as usize, ts));
    }
    figs
}

fn find_llama_bench() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LLAMA_BENCH") {
        return Some(PathBuf::from(p));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let cand = dir.join("llama-bench");
            if cand.is_file() {
                return Some(cand);
            }
        }
    }
    let home = std::env::var_os("HOME").map(PathBuf::from)?;
    let cached = home.join(
        ".cache/probevisor-peer/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin/llama-bench",
    );
    cached.is_file().then_some(cached)
}

/// Builds the peer with the shared setup script when none is found (a fresh machine): about 5
/// minutes once, then cached. The script's `pip download` of the sdist prepares its metadata, which
/// needs scikit-build-core, so that is installed first (best effort). None when it cannot be built.
fn build_llama_bench() -> Option<PathBuf> {
    let script = workspace_root().join("../shared/tools/setup-llamacpp.sh");
    if !script.is_file() {
        return None;
    }
    println!(
        "bench: building llama-bench with {} (about 5 minutes, cached)...",
        script.display()
    );
    let _ = run_status(Command::new("pip").args(["install", "-q", "scikit-build-core"]));
    match run_output(Command::new("bash").arg(&script)) {
        Ok(out) => {
            let path = PathBuf::from(out.lines().last()?.trim());
            path.is_file().then_some(path)
        }
        Err(e) => {
            println!("bench: {e}");
            None
        }
    }
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn lookup(figs: &[Figure], name: &str, threads: usize) -> Option<f64> {
    figs.iter()
        .find(|(n, t, _)| n == name && *t == threads)
        .map(|f| f.2)
}

fn fmt1(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.1}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "-".into(),
    }
}

/// Runs one model's benchmarks and returns its markdown section.
fn run_suite(
    suite: &Suite,
    cli: &Path,
    peer: Option<&Path>,
    reps: usize,
) -> Result<String, String> {
    let model = crate::setup::ensure_model(suite.model)?;
    let model_s = model.to_string_lossy().to_string();
    let pp_list = suite
        .prompts
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut ours = Vec::new();
    for t in THREADS {
        println!("bench: probevisor {}, {t} thread(s)...", suite.model);
        let mut args = vec![
            "bench-internal".to_string(),
            "--model".into(),
            model_s.clone(),
            "--threads".into(),
            t.to_string(),
            "--pp".into(),
            pp_list.clone(),
            "--tg".into(),
            DECODE.to_string(),
            "--reps".into(),
            reps.to_string(),
            "--breakdown".into(),
            if suite.verdict { "0" } else { "1" }.into(),
        ];
        let out = run_output(Command::new(cli).args(&args))?;
        let line = out.lines().last().unwrap_or("").to_string();
        println!("{line}");
        ours.extend(parse_ours(&line, t)?);
        if suite.verdict {
            args.truncate(5);
            args.extend(
                [
                    "--pp",
                    "",
                    "--tg",
                    "0",
                    "--reps",
                    &reps.to_string(),
                    "--breakdown",
                    "1",
                    "--verdict",
                    &format!("{VERDICT_PREFIX},{VERDICT_ACTION}"),
                ]
                .map(String::from),
            );
            let out = run_output(Command::new(cli).args(&args))?;
            let line = out.lines().last().unwrap_or("").to_string();
            println!("{line}");
            ours.extend(parse_ours(&line, t)?);
        }
    }
    let mut peer_prompts: Vec<usize> = suite.prompts.to_vec();
    if suite.verdict {
        peer_prompts.extend([VERDICT_ACTION, VERDICT_PREFIX + VERDICT_ACTION]);
    }
    let peer_pp = peer_prompts
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut theirs = Vec::new();
    if let Some(lb) = peer {
        println!("bench: llama-bench {} ({})...", suite.model, lb.display());
        let threads = THREADS.map(|t| t.to_string()).join(",");
        let json = run_output(Command::new(lb).args([
            "-m",
            &model_s,
            "-p",
            &peer_pp,
            "-n",
            &DECODE.to_string(),
            "-t",
            &threads,
            "-r",
            &reps.to_string(),
            "-o",
            "json",
        ]))?;
        theirs = parse_llama_bench(&json);
    }
    let mut table = String::from("| test | threads | probevisor tok/s | llama.cpp tok/s | ours / theirs |\n|---|---|---|---|---|\n");
    for t in THREADS {
        for name in suite
            .prompts
            .iter()
            .map(|n| format!("pp{n}"))
            .chain([format!("tg{DECODE}")])
        {
            let (o, l) = (lookup(&ours, &name, t), lookup(&theirs, &name, t));
            table.push_str(&format!(
                "| {name} | {t} | {} | {} | {} |\n",
                fmt1(o),
                fmt1(l),
                ratio(o, l)
            ));
        }
    }
    if suite.verdict {
        let (a, whole) = (VERDICT_ACTION, VERDICT_PREFIX + VERDICT_ACTION);
        table.push_str(&format!(
            "\nVerdict: {a} action tokens on a fork of a cached {VERDICT_PREFIX}-token prefix, only the 2 label \
             logit rows computed (seconds; speed-up = llama.cpp time / ours).\n\n\
             | threads | probevisor verdict s (matmuls alone) | llama.cpp pp{a} s | speed-up | llama.cpp pp{whole} s | speed-up |\n\
             |---|---|---|---|---|---|\n"
        ));
        let secs = |tps: Option<f64>, n: usize| tps.filter(|v| *v > 0.0).map(|v| n as f64 / v);
        for t in THREADS {
            let o = secs(lookup(&ours, "verdict", t), a);
            let mm = lookup(&ours, "verdict_matmul_s", t);
            let l40 = secs(lookup(&theirs, &format!("pp{a}"), t), a);
            let lw = secs(lookup(&theirs, &format!("pp{whole}"), t), whole);
            let f3 = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
            table.push_str(&format!(
                "| {t} | {} ({}) | {} | {} | {} | {} |\n",
                f3(o),
                f3(mm),
                f3(l40),
                ratio(l40, o),
                f3(lw),
                ratio(lw, o)
            ));
        }
    }
    print!("{table}");
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into());
    Ok(format!(
        "<!-- bench:{m} -->\n### {title}\n\n{cpu}, load average before the llama-bench run: {load}. Peer: {peer}.\n\n{table}<!-- /bench:{m} -->\n",
        m = suite.model,
        title = suite.title,
        cpu = cpu_name(),
        peer = peer.map_or("llama-bench not found".into(), |p| format!(
            "`{}` (`-p {peer_pp} -n {DECODE} -t 1,2 -r {reps} -o json`)",
            p.display()
        )),
    ))
}

/// Replaces the `<!-- bench:NAME -->` block of `doc` with `section` (or adds it before the
/// first `## ` notes heading).
fn splice(doc: &str, name: &str, section: &str) -> String {
    let (open, close) = (
        format!("<!-- bench:{name} -->"),
        format!("<!-- /bench:{name} -->\n"),
    );
    if let (Some(a), Some(b)) = (doc.find(&open), doc.find(&close)) {
        if a < b {
            return format!("{}{section}{}", &doc[..a], &doc[b + close.len()..]);
        }
    }
    let at = doc.find("\n## ").map_or(doc.len(), |i| i + 1);
    format!("{}{section}\n{}", &doc[..at], &doc[at..])
}

const HEADER: &str = "# Benchmarks\n\nCommand: `cargo xtask bench` (all models) or `cargo xtask bench --model NAME` \
(smollm2, qwen25coder); `--reps N` (default 3). Best of N runs after a warm-up, on both sides (llama.cpp: \
the fastest of llama-bench's N repetitions, `samples_ts`); pp = prompt processing of N \
tokens in one batch from an empty cache, tg = decoding N tokens one at a time; tokens/s. The machine has 2 \
cores shared with other work: compare figures of the same run only.\n\n";

/// `cargo xtask bench [--reps N] [--model NAME]`
pub fn run(args: &[String]) -> Result<(), String> {
    let usage = "usage: cargo xtask bench [--reps N] [--model smollm2|qwen25coder]";
    let mut reps = 3;
    let mut only: Option<String> = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let val = it.next().ok_or(usage)?;
        match flag.as_str() {
            "--reps" => {
                reps = val
                    .parse()
                    .map_err(|_| format!("--reps: '{val}' is not a number"))?
            }
            "--model" => only = Some(val.clone()),
            _ => return Err(usage.into()),
        }
    }
    let suites: Vec<&Suite> = SUITES
        .iter()
        .filter(|s| {
            only.as_deref()
                .is_none_or(|m| m == s.model || (m == "qwen" && s.verdict))
        })
        .collect();
    if suites.is_empty() {
        return Err(usage.into());
    }
    run_status(cargo().args(["build", "--release", "-p", "probevisor-cli"]))?;
    let cli = target_dir().join("release/probevisor");
    let peer = find_llama_bench().or_else(build_llama_bench);
    if peer.is_none() {
        println!(
            "bench: no llama-bench (set LLAMA_BENCH or run ../shared/tools/setup-llamacpp.sh): \
             probevisor's figures only"
        );
    }
    let path = workspace_root().join("docs/benchmarks.md");
    let mut doc = std::fs::read_to_string(&path).unwrap_or_default();
    if !doc.starts_with(HEADER) {
        // Old layout (one untagged table): keep only its notes.
        let notes = doc
            .find("\n## ")
            .map(|i| doc[i + 1..].to_string())
            .unwrap_or_default();
        let kept: String = SUITES
            .iter()
            .filter_map(|s| {
                let open = format!("<!-- bench:{} -->", s.model);
                let close = format!("<!-- /bench:{} -->\n", s.model);
                let a = doc.find(&open)?;
                let b = doc.find(&close)?;
                Some(format!("{}\n", &doc[a..b + close.len()]))
            })
            .collect();
        doc = format!("{HEADER}{kept}{notes}");
    }
    for suite in suites {
        let section = run_suite(suite, &cli, peer.as_deref(), reps)?;
        doc = splice(&doc, suite.model, &section);
        std::fs::write(&path, &doc).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    println!("bench: wrote {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bench_internal_output() {
        let line = r#"{"threads":2,"pp":[{"n":64,"seconds":0.5,"tokens_per_s":128.000},{"n":128,"seconds":1.0,"tokens_per_s":128.5}],"tg":{"n":32,"seconds":0.4,"tokens_per_s":80.000},"breakdown":[]}"#;
        let figs = parse_ours(line, 2).unwrap();
        assert_eq!(
            figs,
            vec![
                ("pp64".into(), 2, 128.0),
                ("pp128".into(), 2, 128.5),
                ("tg32".into(), 2, 80.0)
            ]
        );
    }

    #[test]
    fn parses_verdict_without_pp_or_tg() {
        let line = r#"{"threads":1,"pp":[],"verdict":{"prefix":520,"n":40,"seconds":2.0,"tokens_per_s":20.000,"matmul_s":1.5},"breakdown":[{"n":1,"forward_s":0.2,"matmul_s":0.1}]}"#;
        assert_eq!(
            parse_ours(line, 1).unwrap(),
            vec![
                ("verdict".into(), 1, 20.0),
                ("verdict_matmul_s".into(), 1, 1.5)
            ]
        );
    }

    #[test]
    fn splice_replaces_only_its_block() {
        let doc = format!("{HEADER}<!-- bench:a -->\nold a\n<!-- /bench:a -->\n\n## Notes\nn\n");
        let new = splice(&doc, "a", "<!-- bench:a -->\nnew a\n<!-- /bench:a -->\n");
        assert!(new.contains("new a") && !new.contains("old a") && new.ends_with("## Notes\nn\n"));
        let added = splice(&new, "b", "<!-- bench:b -->\nb\n<!-- /bench:b -->\n");
        assert!(
            added.contains("new a")
                && added.find("bench:b").unwrap() < added.find("## Notes").unwrap()
        );
    }

    #[test]
    fn parses_llama_bench_json() {
        let json = r#"[{"n_prompt": 64, "n_gen": 0, "n_threads": 1, "avg_ts": 300.5, "samples_ns": [1, 2]},
                      {"n_prompt": 0, "n_gen": 32, "n_threads": 2, "avg_ts": 110.25,
                       "samples_ts": [ 108.5, 112.75, 109.5 ]}]"#;
        // The best repetition where the samples are there (as for ours), else the mean.
        assert_eq!(
            parse_llama_bench(json),
            vec![("pp64".into(), 1, 300.5), ("tg32".into(), 2, 112.75)]
        );
    }
}
