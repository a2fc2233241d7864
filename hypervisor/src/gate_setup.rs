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
pub enum ModuleRole<'a> {
    Model,
    Policy,
    Fs,
    /// `agent:NAME` or `agent-NAME`: a guest image.
    Agent(&'a str),
    Other,
}

/// The role of a boot module by its GRUB string; an agent module without a name is an error.
pub fn module_role(string: &str) -> Result<ModuleRole<'_>, String> {
    let role = match string.trim() {
        "model" => ModuleRole::Model,
        "policy" => ModuleRole::Policy,
        "fs" => ModuleRole::Fs,
        s => match s
            .strip_prefix("agent:")
            .or_else(|| s.strip_prefix("agent-"))
        {
            Some("") => return Err(format!("boot module {string:?} names no agent")),
            Some(name) => ModuleRole::Agent(name),
            None => ModuleRole::Other,
        },
    };
    Ok(role)
}

/// The boot modules the gate uses, each given at most once.
#[derive(Default)]
pub struct GateModules {
    pub model: Option<&'static [u8]>,
    pub policy: Option<&'static [u8]>,
    pub fs: Option<&'static [u8]>,
}

impl GateModules {
    /// Takes a `model`, `policy` or `fs` module (other roles are not the gate's). A second one of
    /// a role is an error: which one the gate used would be an accident of module order.
    pub fn add(&mut self, role: ModuleRole<'_>, bytes: &'static [u8]) -> Result<(), String> {
        let (slot, name) = match role {
            ModuleRole::Model => (&mut self.model, "model"),
            ModuleRole::Policy => (&mut self.policy, "policy"),
            ModuleRole::Fs => (&mut self.fs, "fs"),
            ModuleRole::Agent(_) | ModuleRole::Other => return Ok(()),
        };
        if slot.replace(bytes).is_some() {
            return Err(format!("two {name} boot modules"));
        }
        Ok(())
    }
}

/// The first name given twice: two guests of one name would share audit records and rate limits.
pub fn first_duplicate<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut seen = Vec::new();
    for name in names {
        if seen.contains(&name) {
            return Some(name);
        }
        seen.push(name);
    }
    None
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
        assert_eq!(module_role("model"), Ok(ModuleRole::Model));
        assert_eq!(module_role(" policy "), Ok(ModuleRole::Policy));
        assert_eq!(module_role("fs"), Ok(ModuleRole::Fs));
        assert_eq!(module_role("agent-benign"), Ok(ModuleRole::Agent("benign")));
        assert_eq!(
            module_role("agent:misbehaving"),
            Ok(ModuleRole::Agent("misbehaving"))
        );
        assert_eq!(module_role("model.gguf"), Ok(ModuleRole::Other));
        assert!(module_role("agent:")
            .unwrap_err()
            .contains("names no agent"));
    }

    #[test]
    fn a_second_module_of_a_gate_role_or_a_second_agent_of_a_name_is_refused() {
        static A: [u8; 1] = [1];
        static B: [u8; 1] = [2];
        let mut modules = GateModules::default();
        modules.add(ModuleRole::Policy, &A).unwrap();
        modules.add(ModuleRole::Model, &A).unwrap();
        modules.add(ModuleRole::Other, &B).unwrap();
        assert_eq!(
            modules.add(ModuleRole::Policy, &B),
            Err(String::from("two policy boot modules"))
        );
        assert_eq!(modules.policy, Some(&B[..]));
        assert_eq!(first_duplicate(["a", "b", "test-a"]), None);
        assert_eq!(first_duplicate(["a", "b", "a", "b"]), Some("a"));
    }
}
