//! Next-token logits against llama.cpp's (/work/shared/reference): same token ids, same top-1,
//! at least 18 of llama.cpp's top 20 in ours, cosine similarity of the full vectors of at least 0.999.
//! Prints the numbers per prompt (`cargo test -p inference-core --release --test reference_logits -- --nocapture`).
//!
//! Each model runs twice: in the default `Arithmetic::Native` mode (where `KNOWN_GAPS` documents the
//! ill-conditioned prompts that miss the strict bar) and in `Arithmetic::LlamaCppCompat`, a copy of
//! llama.cpp's CPU arithmetic, which must meet the strict bar on every prompt (`COMPAT_GAPS` lists
//! what it does not reach). See docs/numerics.md.

mod common;

use inference_core::model::{Arithmetic, KvCache, LogitsRequest, Model};
use inference_core::parallel::ThreadPool;

const MIN_COSINE: f64 = 0.999;
const MIN_TOP20_OVERLAP: usize = 18;

/// Cases that miss the strict bar, with the looser bound they are held to instead. These short prompts are
/// ill-conditioned: a rounding-level change early on (our scalar vs AVX2 summation order, or 1e-5 relative
/// noise on the embeddings) moves SmolLM2's plain_capital logits to cosine 0.98-0.998 against themselves,
/// so only llama.cpp's exact arithmetic reaches 0.999 (session 8's kernels, which fold each K-quant
/// superblock by the scalar formula and score attention as one FMA chain per key, give 0.9896 there,
/// inside the 0.980-0.999 that embedding noise alone produces; the path without the packed keys 0.9921). The reference ran with flash attention (f16 Q/K/V,
/// f16 V accumulator, online softmax); a scalar emulation of ggml's AVX2 path (that attention, AVX2 Q8_1
/// rounding, the Q4_1 dot's 8-lane order, ggml's RoPE cache and SiLU) reproduces every SmolLM2 reference
/// under 64 tokens bit for bit, plain_capital included; see the accuracy report.
/// (model, prompt, min cosine, top-1 may be llama.cpp's second token when their logits differ by < 0.1)
const KNOWN_GAPS: &[(&str, &str, f64)] = &[
    ("smollm2", "plain_capital", 0.98),
    ("gemma3", "plain_capital", 0.99),
    ("gemma3", "numbers_ws", 0.999),
];

/// Prompts the compat mode does not bring to the strict bar, with the bound they are held to.
const COMPAT_GAPS: &[(&str, &str, f64)] = &[];

fn read_tokens(path: &std::path::Path) -> Vec<u32> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.trim()
                .parse()
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}

fn read_f32(path: &std::path::Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn top_k(v: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
    idx.truncate(k);
    idx
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += x as f64 * y as f64;
        aa += x as f64 * x as f64;
        bb += y as f64 * y as f64;
    }
    ab / (aa.sqrt() * bb.sqrt())
}

/// The compat mode is scalar and 8-15x slower than native: in `cargo xtask test` it runs the prompts
/// of SmolLM2 and Gemma 3 up to this many tokens (plain_capital, plain_story, numbers_ws, unicode_mix:
/// the short, ill-conditioned ones; the longer chat and long_context prompts already meet the strict
/// bar natively, and their compat cosines, measured once, are in docs/numerics.md).
const COMPAT_MAX_TOKENS: usize = 64;
/// Qwen2.5-Coder 1.5B runs only its prompts up to this many tokens in compat mode.
const QWEN_COMPAT_MAX_TOKENS: usize = 16;

/// Runs every reference prompt of `model_dir` (up to `max_tokens` tokens) through `file` in mode
/// `arith`; panics with the failures.
fn compare(file: &str, model_dir: &str, arith: Arithmetic, max_tokens: usize) {
    let Some(bytes) = common::read_model(file) else {
        return;
    };
    let mut model = Model::load(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
    model.set_parallel(Box::new(ThreadPool::new(2)));
    model.set_arithmetic(arith);
    let (mode, gaps) = match arith {
        Arithmetic::Native => ("native", KNOWN_GAPS),
        Arithmetic::LlamaCppCompat => ("llamacpp", COMPAT_GAPS),
    };
    let refdir = common::reference_dir();
    let mut names: Vec<String> = match std::fs::read_dir(refdir.join("prompts")) {
        Ok(entries) => entries
            .filter_map(|e| {
                e.ok()?
                    .file_name()
                    .to_str()?
                    .strip_suffix(".txt")
                    .map(String::from)
            })
            .collect(),
        Err(e) if common::models_required() => panic!("reference prompts: {e}"),
        Err(_) => {
            eprintln!("SKIP {model_dir}: no reference prompts");
            return;
        }
    };
    names.sort();
    assert!(!names.is_empty(), "no reference prompts");
    let mut failures = Vec::new();
    for name in &names {
        let text =
            std::fs::read_to_string(refdir.join("prompts").join(format!("{name}.txt"))).unwrap();
        let want_tokens = read_tokens(&refdir.join(model_dir).join(format!("{name}.tokens")));
        if want_tokens.len() > max_tokens {
            println!(
                "[{mode}] {model_dir}/{name}: {} tokens, not run in this mode",
                want_tokens.len()
            );
            continue;
        }
        let want = read_f32(&refdir.join(model_dir).join(format!("{name}.f32")));
        let tokens = model.tokenizer().encode(&text, true, true);
        if tokens != want_tokens {
            failures.push(format!(
                "{name}: token ids differ ({} vs {} tokens)",
                tokens.len(),
                want_tokens.len()
            ));
        }
        // Evaluate llama.cpp's tokens so a tokenizer difference does not hide the logits comparison.
        let mut cache = KvCache::new(&model, want_tokens.len());
        let t0 = std::time::Instant::now();
        let got = model
            .forward(&mut cache, &want_tokens, LogitsRequest::Last)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let elapsed = t0.elapsed();
        assert_eq!(got.len(), want.len(), "{name}: logit vector length");
        let (ours, theirs) = (top_k(&got, 20), top_k(&want, 20));
        let overlap = theirs.iter().filter(|t| ours.contains(t)).count();
        let cos = cosine(&got, &want);
        let max_abs = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let differ = got.iter().zip(&want).filter(|(a, b)| a != b).count();
        println!(
            "[{mode}] {model_dir}/{name}: {} tokens, top1 ours {} theirs {}, top20 overlap {overlap}/20, cosine {cos:.6}, \
             max |diff| {max_abs:.3}, {differ} logits differ, {:.0} ms",
            want_tokens.len(),
            ours[0],
            theirs[0],
            elapsed.as_secs_f64() * 1e3
        );
        let gap = gaps.iter().find(|(m, p, _)| *m == model_dir && p == name);
        let min_cos = gap.map_or(MIN_COSINE, |g| g.2);
        let near_tie =
            gap.is_some() && ours[0] == theirs[1] && want[theirs[0]] - want[theirs[1]] < 0.1;
        if ours[0] != theirs[0] && !near_tie {
            failures.push(format!(
                "{name}: top-1 {} vs llama.cpp {}",
                ours[0], theirs[0]
            ));
        }
        if overlap < MIN_TOP20_OVERLAP {
            failures.push(format!(
                "{name}: top-20 overlap {overlap} < {MIN_TOP20_OVERLAP}"
            ));
        }
        if cos < min_cos {
            failures.push(format!("{name}: cosine {cos:.6} < {min_cos}"));
        }
    }
    assert!(
        failures.is_empty(),
        "[{mode}] {model_dir}: {} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn smollm2_matches_llama_cpp() {
    compare(common::SMOLLM2, "smollm2", Arithmetic::Native, usize::MAX);
}

#[test]
fn gemma3_matches_llama_cpp() {
    compare(common::GEMMA3, "gemma3", Arithmetic::Native, usize::MAX);
}

#[test]
fn qwen25coder_matches_llama_cpp() {
    compare(
        common::QWEN25CODER,
        "qwen25coder",
        Arithmetic::Native,
        usize::MAX,
    );
}

#[test]
fn smollm2_compat_matches_llama_cpp_strictly() {
    compare(
        common::SMOLLM2,
        "smollm2",
        Arithmetic::LlamaCppCompat,
        COMPAT_MAX_TOKENS,
    );
}

#[test]
fn gemma3_compat_matches_llama_cpp_strictly() {
    compare(
        common::GEMMA3,
        "gemma3",
        Arithmetic::LlamaCppCompat,
        COMPAT_MAX_TOKENS,
    );
}

#[test]
fn qwen25coder_compat_matches_llama_cpp_strictly() {
    compare(
        common::QWEN25CODER,
        "qwen25coder",
        Arithmetic::LlamaCppCompat,
        QWEN_COMPAT_MAX_TOKENS,
    );
}
