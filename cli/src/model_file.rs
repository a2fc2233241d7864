//! Read-only memory mapping of a GGUF model file and model setup shared by the commands.

use inference_core::model::Model;
use inference_core::parallel::ThreadPool;
use memmap2::Mmap;
use std::fs::File;

/// File name of the verdict model (Qwen2.5-Coder-1.5B-Instruct Q4_K_M) in the model cache.
pub const VERDICT_MODEL: &str = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf";

/// The model `probe` and `eval` use without `--model`: the verdict model in
/// `$PROBEVISOR_MODELS`, else `${PROBEVISOR_CACHE:-$HOME/.cache/probevisor}/models` (where
/// `cargo xtask setup` puts it).
pub fn default_model_path() -> Result<String, String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let dir = match (
        env("PROBEVISOR_MODELS"),
        env("PROBEVISOR_CACHE"),
        env("HOME"),
    ) {
        (Some(m), _, _) => std::path::PathBuf::from(m),
        (None, Some(c), _) => std::path::Path::new(&c).join("models"),
        (None, None, Some(h)) => std::path::Path::new(&h).join(".cache/probevisor/models"),
        _ => {
            return Err(
                "no --model, and neither PROBEVISOR_MODELS, PROBEVISOR_CACHE nor HOME is set"
                    .into(),
            )
        }
    };
    let path = dir.join(VERDICT_MODEL);
    if !path.is_file() {
        return Err(format!(
            "no --model, and the verdict model is not at {} (run `cargo xtask setup`)",
            path.display()
        ));
    }
    Ok(path.display().to_string())
}

/// A model file mapped read-only: pages are loaded on demand and shared with the page cache.
pub struct ModelFile {
    map: Mmap,
}

impl ModelFile {
    pub fn open(path: &str) -> Result<ModelFile, String> {
        let file = File::open(path).map_err(|e| format!("cannot open model '{path}': {e}"))?;
        let len = file
            .metadata()
            .map_err(|e| format!("model '{path}': {e}"))?
            .len();
        if len == 0 {
            return Err(format!("model '{path}' is empty"));
        }
        // SAFETY: the mapping is read-only and private to this process; the model file is not
        // expected to be modified while probevisor runs (the same assumption llama.cpp makes).
        let map =
            unsafe { Mmap::map(&file) }.map_err(|e| format!("cannot map model '{path}': {e}"))?;
        Ok(ModelFile { map })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Loads the model with `threads` threads (0: all available cores).
    pub fn load(&self, path: &str, threads: usize) -> Result<Model<'_>, String> {
        let mut model =
            Model::load(self.bytes()).map_err(|e| format!("cannot load model '{path}': {e}"))?;
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        if threads > 1 {
            model.set_parallel(Box::new(ThreadPool::new(threads)));
        }
        // The host has the memory for a second copy of the K-quant weights in the 8-row
        // tile's layout (faster prompts, verdicts and decoding; bit-identical results).
        model.pack_k_quant_weights();
        Ok(model)
    }
}
