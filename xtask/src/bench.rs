//! `cargo xtask bench`: prompt processing (64, 128, 512 tokens) and decode (32 tokens) at 1 and 2
//! threads on SmolLM2-135M Q4_1, measured in-process by the release CLI (`probevisor bench-internal`),
//! next to llama-bench's figures when a llama-bench binary is found (LLAMA_BENCH, PATH, or the copy
//! built by /work/shared/tools/setup-llamacpp.sh). Writes the table to docs/benchmarks.md.

use crate::{cargo, run_output, run_status, target_dir, workspace_root};
use std::path::PathBuf;
use std::process::Command;

const PROMPTS: [usize; 3] = [64, 128, 512];
const DECODE: usize = 32;
const THREADS: [usize; 2] = [1, 2];

/// One figure: (test name like "pp64"/"tg32", threads, tokens/s).
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

/// Figures from one `probevisor bench-internal` JSON line.
fn parse_ours(line: &str, threads: usize) -> Result<Vec<Figure>, String> {
    let mut figs = Vec::new();
    let pp = line.split("\"tg\"").next().unwrap_or("");
    for item in pp.split('{').skip(2) {
        let n = number_after(item, "n").ok_or("bench-internal: pp without n")?;
        let tps =
            number_after(item, "tokens_per_s").ok_or("bench-internal: pp without tokens_per_s")?;
        figs.push((format!("pp{}", n as usize), threads, tps));
    }
    if let Some(tg) = line.split("\"tg\"").nth(1) {
        let n = number_after(tg, "n").ok_or("bench-internal: tg without n")?;
        let tps =
            number_after(tg, "tokens_per_s").ok_or("bench-internal: tg without tokens_per_s")?;
        figs.push((format!("tg{}", n as usize), threads, tps));
    }
    Ok(figs)
}

/// Figures from `llama-bench -o json` (an array of flat objects with n_prompt, n_gen, n_threads, avg_ts).
fn parse_llama_bench(json: &str) -> Vec<Figure> {
    let mut figs = Vec::new();
    for obj in json.split('}') {
        let (Some(np), Some(ng), Some(t), Some(ts)) = (
            number_after(obj, "n_prompt"),
            number_after(obj, "n_gen"),
            number_after(obj, "n_threads"),
            number_after(obj, "avg_ts"),
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

/// `cargo xtask bench [--reps N]`
pub fn run(args: &[String]) -> Result<(), String> {
    let reps = match args {
        [] => 3,
        [flag, n] if flag == "--reps" => n
            .parse()
            .map_err(|_| format!("--reps: '{n}' is not a number"))?,
        _ => return Err("usage: cargo xtask bench [--reps N]".into()),
    };
    let model = crate::setup::ensure_model("smollm2")?;
    run_status(cargo().args(["build", "--release", "-p", "probevisor-cli"]))?;
    let cli = target_dir().join("release/probevisor");
    let pp_list = PROMPTS.map(|n| n.to_string()).join(",");
    let mut ours = Vec::new();
    for t in THREADS {
        println!("bench: probevisor, {t} thread(s)...");
        let out = run_output(Command::new(&cli).args([
            "bench-internal",
            "--model",
            &model.to_string_lossy(),
            "--threads",
            &t.to_string(),
            "--pp",
            &pp_list,
            "--tg",
            &DECODE.to_string(),
            "--reps",
            &reps.to_string(),
            "--breakdown",
            "1",
        ]))?;
        let line = out.lines().last().unwrap_or("").to_string();
        println!("{line}");
        ours.extend(parse_ours(&line, t)?);
    }
    let mut theirs = Vec::new();
    let peer = find_llama_bench();
    if let Some(lb) = &peer {
        println!("bench: llama-bench ({})...", lb.display());
        let threads = THREADS.map(|t| t.to_string()).join(",");
        let json = run_output(Command::new(lb).args([
            "-m",
            &model.to_string_lossy(),
            "-p",
            &pp_list,
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
    } else {
        println!(
            "bench: no llama-bench (set LLAMA_BENCH or run /work/shared/tools/setup-llamacpp.sh)"
        );
    }
    let mut table = String::from("| test | threads | probevisor tok/s | llama.cpp tok/s | ours / theirs |\n|---|---|---|---|---|\n");
    for t in THREADS {
        for name in PROMPTS
            .iter()
            .map(|n| format!("pp{n}"))
            .chain([format!("tg{DECODE}")])
        {
            let o = lookup(&ours, &name, t);
            let l = lookup(&theirs, &name, t);
            let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
            let ratio = match (o, l) {
                (Some(o), Some(l)) if l > 0.0 => format!("{:.2}", o / l),
                _ => "-".into(),
            };
            table.push_str(&format!(
                "| {name} | {t} | {} | {} | {ratio} |\n",
                fmt(o),
                fmt(l)
            ));
        }
    }
    print!("{table}");
    let doc = format!(
        "# Benchmarks\n\nSmolLM2-135M-Instruct Q4_1, {cpu}. Command: `cargo xtask bench` (best of {reps} runs after a \
         warm-up; pp = prompt processing of N tokens in one batch from an empty cache, tg = decoding N tokens one \
         at a time; tokens/s). Peer: {peer}.\n\n{table}\n",
        cpu = cpu_name(),
        peer = peer.map_or("llama-bench not found".into(), |p| format!("`{}` (`-p {pp_list} -n {DECODE} -t 1,2 -o json`)", p.display())),
    );
    let path = workspace_root().join("docs/benchmarks.md");
    let notes = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| s.find("\n## ").map(|i| s[i..].to_string()))
        .unwrap_or_default();
    std::fs::write(&path, format!("{doc}{notes}"))
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
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
    fn parses_llama_bench_json() {
        let json = r#"[{"n_prompt": 64, "n_gen": 0, "n_threads": 1, "avg_ts": 300.5, "samples_ns": [1, 2]},
                      {"n_prompt": 0, "n_gen": 32, "n_threads": 2, "avg_ts": 110.25, "samples_ts": [1.5]}]"#;
        assert_eq!(
            parse_llama_bench(json),
            vec![("pp64".into(), 1, 300.5), ("tg32".into(), 2, 110.25)]
        );
    }
}
