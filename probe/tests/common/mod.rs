//! What the tests on the verdict model share.

use std::path::PathBuf;

/// The verdict model's file name in the model cache.
pub const QWEN: &str = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf";

/// The verdict model's bytes from `$PROBEVISOR_MODELS` (default `~/.cache/probevisor/models`); None
/// (the test skipped) when missing, unless `PROBEVISOR_REQUIRE_MODELS=1` (as `cargo xtask test`
/// sets), which makes a missing model a failure.
pub fn verdict_model_bytes() -> Option<Vec<u8>> {
    model_bytes(QWEN)
}

/// The bytes of model `file` from the model cache (see [`verdict_model_bytes`]).
#[allow(dead_code)] // not every test binary reads another model
pub fn model_bytes(file: &str) -> Option<Vec<u8>> {
    let dir = std::env::var_os("PROBEVISOR_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/probevisor/models")
        });
    let path = dir.join(file);
    match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(e) if std::env::var("PROBEVISOR_REQUIRE_MODELS").is_ok_and(|v| v == "1") => {
            panic!(
                "model {file} required but unreadable at {}: {e}",
                path.display()
            )
        }
        Err(_) => {
            eprintln!("SKIP {file}: not found at {}", path.display());
            None
        }
    }
}
