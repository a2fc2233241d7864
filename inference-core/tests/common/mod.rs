//! Test support shared by the integration tests: where the real models are, and the
//! skip-or-fail rule when one is missing.
//!
//! Models live in `$PROBEVISOR_MODELS` (default `$PROBEVISOR_CACHE/models`, else `~/.cache/probevisor/models`). A test
//! whose model is missing prints `SKIP <model>: not found at <path>` and returns, unless
//! `PROBEVISOR_REQUIRE_MODELS=1`, in which case it fails.
#![allow(dead_code)]

use inference_core::gguf::Gguf;
use inference_core::tokenizer::Tokenizer;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

pub const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const GEMMA3: &str = "gemma-3-270m-q4_k_m.gguf";
pub const QWEN25CODER: &str = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf";

/// Directory holding the model files.
pub fn models_dir() -> PathBuf {
    std::env::var_os("PROBEVISOR_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("PROBEVISOR_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                        .join(".cache/probevisor")
                });
            cache.join("models")
        })
}

/// Whether a missing model must fail the test instead of skipping it.
pub fn models_required() -> bool {
    std::env::var("PROBEVISOR_REQUIRE_MODELS").is_ok_and(|v| v == "1")
}

/// Path of `file` when it exists; otherwise prints the SKIP line and returns None, or
/// panics when models are required.
pub fn model_path(file: &str) -> Option<PathBuf> {
    let path = models_dir().join(file);
    if path.is_file() {
        return Some(path);
    }
    if models_required() {
        panic!(
            "{file}: not found at {} (PROBEVISOR_REQUIRE_MODELS=1)",
            path.display()
        );
    }
    eprintln!("SKIP {file}: not found at {}", path.display());
    None
}

/// The bytes of model `file` (None when skipped, see [`model_path`]).
pub fn read_model(file: &str) -> Option<Vec<u8>> {
    let path = model_path(file)?;
    Some(std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display())))
}

/// Directory of the llama.cpp reference data: `shared/reference` beside the checkout
/// (`../shared` of the workspace root) unless `PROBEVISOR_REFERENCE` says otherwise.
pub fn reference_dir() -> PathBuf {
    std::env::var_os("PROBEVISOR_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference"))
}

/// Loads (once per test binary) the tokenizer of model `file`; None when skipped.
pub fn tokenizer(file: &'static str) -> Option<&'static Tokenizer> {
    static SMOLLM2_TOK: OnceLock<Option<Tokenizer>> = OnceLock::new();
    static GEMMA3_TOK: OnceLock<Option<Tokenizer>> = OnceLock::new();
    static QWEN_TOK: OnceLock<Option<Tokenizer>> = OnceLock::new();
    let cell = match file {
        SMOLLM2 => &SMOLLM2_TOK,
        GEMMA3 => &GEMMA3_TOK,
        _ => &QWEN_TOK,
    };
    cell.get_or_init(|| {
        let bytes = read_model(file)?;
        let gguf = Gguf::parse(&bytes).expect("GGUF parses");
        let t0 = Instant::now();
        let tok = Tokenizer::from_gguf(&gguf).expect("tokenizer loads");
        eprintln!(
            "{file}: tokenizer built in {:?} ({} tokens)",
            t0.elapsed(),
            tok.n_vocab()
        );
        Some(tok)
    })
    .as_ref()
}
