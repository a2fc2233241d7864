//! Building the policy gate from the boot modules: the policy text (`policy`), the model GGUF
//! (`model`, loaded zero-copy from the module memory), the guests' file tree (`fs`), and the logits
//! digest that ties the hypervisor's forward pass to the host CLI's.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use inference_core::model::{KvCache, LogitsRequest, Model};
use probe::calibration::CalibrationCache;
use probe::engine::EngineModel;
use probe::pipeline::Layers;
use probe::{Pipeline, Policy};

/// The fixed prompt whose last-position logits are digested (`logits-digest` line); the host
/// computes the same with `probevisor logits --threads 1 --isa scalar --raw-out F "<prompt>"`.
pub const DIGEST_PROMPT: &str = "The agent asks to read /project/README.md";

/// Parses the `policy` module; the error names the line.
pub fn parse_policy(bytes: &[u8]) -> Result<Policy, String> {
    let text = core::str::from_utf8(bytes).map_err(|e| format!("policy is not UTF-8: {e}"))?;
    Policy::parse(text).map_err(|e| format!("{e}"))
}

/// Loads the `model` module (zero-copy: the weights stay in the module's memory).
pub fn load_model(bytes: &[u8]) -> Result<EngineModel<'_>, String> {
    EngineModel::load(bytes).map_err(|e| format!("{e}"))
}

/// Builds the pipeline: prefills the gate's cached prompt prefix and computes its calibration.
pub fn build_pipeline<'m>(
    policy: Policy,
    model: &'m EngineModel<'m>,
) -> Result<Pipeline<'m, EngineModel<'m>>, String> {
    Pipeline::new(
        policy,
        Some(model),
        &mut CalibrationCache::new(),
        Layers::ALL,
    )
    .map_err(|e| format!("{e}"))
}

/// The f32 logits (little-endian bytes) after the last token of `prompt`, as the CLI's `logits`
/// command tokenizes it (BOS added, special tokens parsed).
pub fn last_logits_bytes(model: &Model<'_>, prompt: &str) -> Result<Vec<u8>, String> {
    let tokens = model.tokenizer().encode(prompt, true, true);
    if tokens.is_empty() {
        return Err(String::from("the digest prompt has no tokens"));
    }
    let mut cache = KvCache::new(model, tokens.len());
    let logits = model
        .forward(&mut cache, &tokens, LogitsRequest::Last)
        .map_err(|e| format!("{e}"))?;
    Ok(logits.iter().flat_map(|v| v.to_le_bytes()).collect())
}

/// blake3 of [`last_logits_bytes`] for [`DIGEST_PROMPT`].
pub fn logits_digest(model: &Model<'_>) -> Result<[u8; 32], String> {
    last_logits_bytes(model, DIGEST_PROMPT).map(|bytes| *blake3::hash(&bytes).as_bytes())
}

/// What a boot module's string names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleRole {
    Model,
    Policy,
    Fs,
    Other,
}

pub fn module_role(string: &str) -> ModuleRole {
    match string.trim() {
        "model" => ModuleRole::Model,
        "policy" => ModuleRole::Policy,
        "fs" => ModuleRole::Fs,
        _ => ModuleRole::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inference_core::kernels::Isa;
    use inference_core::synthetic::tiny_llama_gguf;

    #[test]
    fn logits_digest_is_reproducible_on_the_scalar_path() {
        let bytes = tiny_llama_gguf(7);
        let mut model = Model::load(&bytes).unwrap();
        model.set_isa(Isa::Scalar);
        let raw = last_logits_bytes(&model, DIGEST_PROMPT).unwrap();
        assert_eq!(raw.len(), model.config().n_vocab * 4);
        let first = logits_digest(&model).unwrap();
        assert_eq!(first, logits_digest(&model).unwrap());
        assert_eq!(first, *blake3::hash(&raw).as_bytes());
        let other_bytes = tiny_llama_gguf(8);
        let other = Model::load(&other_bytes).unwrap();
        assert_ne!(first, logits_digest(&other).unwrap());
    }

    #[test]
    fn module_roles() {
        assert_eq!(module_role("model"), ModuleRole::Model);
        assert_eq!(module_role("policy"), ModuleRole::Policy);
        assert_eq!(module_role("fs"), ModuleRole::Fs);
        assert_eq!(module_role("agent-benign"), ModuleRole::Other);
    }
}
