//! `probevisor bench-internal`: in-process timings for `cargo xtask bench`, printed as one JSON line.
//!
//! Prompt processing (pp): a fresh cache, `n` tokens in one batch, tokens/s. Decode (tg): a fresh
//! cache, `n` tokens one at a time, tokens/s. Both as llama-bench measures them, best of `--reps`.
//! `--breakdown` also times the weight matmuls alone (same shapes) to show where the time goes.

use crate::args::Args;
use crate::model_file::ModelFile;
use inference_core::kernels::{matmul, Isa, MatmulContext, RowSelection};
use inference_core::model::{KvCache, LogitsRequest, Model};
use inference_core::parallel::{Parallel, Sequential, ThreadPool};
use std::time::Instant;

/// Deterministic pseudo-random token ids (as llama-bench feeds random tokens).
fn tokens(n: usize, n_vocab: usize, seed: u64) -> Vec<u32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % n_vocab as u64) as u32
        })
        .collect()
}

fn best_of<F: FnMut() -> Result<(), String>>(reps: usize, mut f: F) -> Result<f64, String> {
    f()?; // warm-up
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let t0 = Instant::now();
        f()?;
        best = best.min(t0.elapsed().as_secs_f64());
    }
    Ok(best)
}

fn prompt_seconds(model: &Model<'_>, n: usize, reps: usize) -> Result<f64, String> {
    let toks = tokens(n, model.config().n_vocab, n as u64);
    best_of(reps, || {
        let mut cache = KvCache::new(model, n);
        model
            .forward(&mut cache, &toks, LogitsRequest::Last)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
}

fn decode_seconds(model: &Model<'_>, n: usize, reps: usize) -> Result<f64, String> {
    let toks = tokens(n, model.config().n_vocab, 99);
    best_of(reps, || {
        let mut cache = KvCache::new(model, n);
        for t in &toks {
            model
                .forward(&mut cache, &[*t], LogitsRequest::Last)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

/// A verdict: `prefix` tokens cached once, then (best of `reps`) a fork of that cache evaluates
/// `n` more tokens asking only for 2 label rows, as the probe does for each action.
fn verdict_seconds(model: &Model<'_>, prefix: usize, n: usize, reps: usize) -> Result<f64, String> {
    let toks = tokens(prefix + n, model.config().n_vocab, 7);
    let mut base = KvCache::new(model, prefix + n);
    model
        .forward(&mut base, &toks[..prefix], LogitsRequest::LastRows(&[0]))
        .map_err(|e| e.to_string())?;
    let labels = [15u32, 16];
    best_of(reps, || {
        let mut fork = base.fork();
        let out = model
            .forward(&mut fork, &toks[prefix..], LogitsRequest::LastRows(&labels))
            .map_err(|e| e.to_string())?;
        if out.len() == labels.len() {
            Ok(())
        } else {
            Err(format!("verdict: {} logits for 2 labels", out.len()))
        }
    })
}

/// Seconds spent in the weight matmuls alone for a batch of `n` tokens (all layers + the output row
/// projection of one token).
fn matmul_seconds(
    model: &Model<'_>,
    n: usize,
    par: &dyn Parallel,
    reps: usize,
    output_rows: usize,
) -> Result<f64, String> {
    let w = model.weights();
    let isa = Isa::detect();
    // Each weight as the forward pass reads it (its packed copy when the model has one).
    let run = |l: &inference_core::model::Linear<'_>, n: usize| -> Result<(), String> {
        let x = vec![0.5f32; n * l.cols];
        let mut out = vec![0.0f32; n * l.rows];
        MatmulContext::new(isa, par)
            .run_packed(
                &l.weight,
                l.packed.as_deref(),
                &x,
                n,
                &mut out,
                RowSelection::All,
            )
            .map_err(|e| e.to_string())
    };
    best_of(reps, || {
        for lw in &w.layers {
            for l in lw.linears() {
                run(l, n)?;
            }
        }
        let x = vec![0.5f32; w.output.cols];
        let rows: Vec<u32> = (0..output_rows.min(w.output.rows) as u32).collect();
        let mut out = vec![0.0f32; rows.len()];
        let sel = if rows.len() == w.output.rows {
            RowSelection::All
        } else {
            RowSelection::Rows(&rows)
        };
        matmul(&w.output.weight, &x, 1, &mut out, sel, isa, par).map_err(|e| e.to_string())
    })
}

/// `probevisor bench-internal --model PATH [--threads N] [--pp 64,128,512] [--tg 32] [--reps 3]
/// [--breakdown 1] [--verdict PREFIX,N]`
pub fn run(args: &[String]) -> Result<(), String> {
    let a = Args::parse(
        args,
        &[
            "--model",
            "--threads",
            "--pp",
            "--tg",
            "--reps",
            "--breakdown",
            "--verdict",
        ],
    )?;
    let path = a.require("--model")?;
    let threads: usize = a.number("--threads", 1)?;
    let tg: usize = a.number("--tg", 32)?;
    let reps: usize = a.number("--reps", 3)?;
    let breakdown: u32 = a.number("--breakdown", 0)?;
    let pp: Vec<usize> = a
        .get("--pp")
        .unwrap_or("64,128,512")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim()
                .parse()
                .map_err(|_| format!("--pp: '{s}' is not a number"))
        })
        .collect::<Result<_, _>>()?;
    let file = ModelFile::open(path)?;
    let model = file.load(path, threads.max(1))?;
    let mut fields = vec![format!("\"threads\":{}", threads.max(1))];
    let mut pp_items = Vec::new();
    for &n in &pp {
        let s = prompt_seconds(&model, n, reps)?;
        pp_items.push(format!(
            "{{\"n\":{n},\"seconds\":{s:.6},\"tokens_per_s\":{:.3}}}",
            n as f64 / s
        ));
    }
    fields.push(format!("\"pp\":[{}]", pp_items.join(",")));
    if tg > 0 {
        let s = decode_seconds(&model, tg, reps)?;
        fields.push(format!(
            "\"tg\":{{\"n\":{tg},\"seconds\":{s:.6},\"tokens_per_s\":{:.3}}}",
            tg as f64 / s
        ));
    }
    if let Some(v) = a.get("--verdict") {
        let nums: Vec<usize> = v
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .map_err(|_| format!("--verdict: '{s}' is not a number"))
            })
            .collect::<Result<_, _>>()?;
        let [prefix, n] = nums[..] else {
            return Err("--verdict takes PREFIX,N".into());
        };
        let s = verdict_seconds(&model, prefix, n, reps)?;
        let mut item = format!(
            "\"prefix\":{prefix},\"n\":{n},\"seconds\":{s:.6},\"tokens_per_s\":{:.3}",
            n as f64 / s
        );
        if breakdown != 0 {
            let pool: Box<dyn Parallel> = if threads > 1 {
                Box::new(ThreadPool::new(threads))
            } else {
                Box::new(Sequential)
            };
            let mm = matmul_seconds(&model, n, &*pool, reps, 2)?;
            item.push_str(&format!(",\"matmul_s\":{mm:.6}"));
        }
        fields.push(format!("\"verdict\":{{{item}}}"));
    }
    if breakdown != 0 {
        let pool: Box<dyn Parallel> = if threads > 1 {
            Box::new(ThreadPool::new(threads))
        } else {
            Box::new(Sequential)
        };
        let mut items = Vec::new();
        for &n in pp.iter().chain(std::iter::once(&1)) {
            let total = if n == 1 {
                decode_seconds(&model, 1, reps)?
            } else {
                prompt_seconds(&model, n, reps)?
            };
            let mm = matmul_seconds(&model, n, &*pool, reps, usize::MAX)?;
            items.push(format!(
                "{{\"n\":{n},\"forward_s\":{total:.6},\"matmul_s\":{mm:.6}}}"
            ));
        }
        fields.push(format!("\"breakdown\":[{}]", items.join(",")));
    }
    println!("{{{}}}", fields.join(","));
    Ok(())
}
