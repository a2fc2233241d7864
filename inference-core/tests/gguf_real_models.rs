//! Parses the real models when they are in the local cache (skipped with a note otherwise).

use inference_core::gguf::{GgmlType, Gguf};
use std::collections::BTreeMap;

fn model_bytes(file: &str) -> Option<Vec<u8>> {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let path = format!("{home}/.cache/probevisor/models/{file}");
    match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(_) => {
            eprintln!("skipping: {path} not present");
            None
        }
    }
}

fn type_counts(g: &Gguf) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for t in g.tensors() {
        *m.entry(t.ty.name()).or_insert(0) += 1;
    }
    m
}

#[test]
fn smollm2_q4_1_parses() {
    let Some(bytes) = model_bytes("SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let g = Gguf::parse(&bytes).expect("parse");
    assert_eq!(g.version, 3);
    assert_eq!(g.get_str("general.architecture"), Some("llama"));
    assert_eq!(g.get_u32("llama.block_count"), Some(30));
    assert_eq!(g.get_u32("llama.embedding_length"), Some(576));
    assert_eq!(g.get_u32("llama.attention.head_count_kv"), Some(3));
    assert_eq!(g.get_str("tokenizer.ggml.pre"), Some("smollm"));
    let counts = type_counts(&g);
    assert_eq!(counts.get("Q4_1"), Some(&210));
    assert_eq!(counts.get("F32"), Some(&61));
    assert_eq!(counts.get("Q8_0"), Some(&1));
    let emb = g.tensor("token_embd.weight").expect("token_embd");
    assert_eq!(emb.ty, GgmlType::Q8_0);
    assert_eq!(emb.shape, [576, 49152, 1, 1]);
    assert!(g.tensor("output.weight").is_none());
    let tokens = g.get_array("tokenizer.ggml.tokens").unwrap();
    assert_eq!(tokens.len(), 49152);
    assert_eq!(tokens.strings().unwrap().count(), 49152);
    assert_eq!(
        g.get_array("tokenizer.ggml.merges")
            .unwrap()
            .strings()
            .unwrap()
            .count(),
        48900
    );
}

#[test]
fn gemma3_q4_k_m_parses() {
    let Some(bytes) = model_bytes("gemma-3-270m-q4_k_m.gguf") else {
        return;
    };
    let g = Gguf::parse(&bytes).expect("parse");
    assert_eq!(g.get_str("general.architecture"), Some("gemma3"));
    let counts = type_counts(&g);
    assert_eq!(counts.get("Q5_0"), Some(&81));
    assert_eq!(counts.get("Q4_K"), Some(&27));
    assert_eq!(counts.get("Q8_0"), Some(&10));
    assert_eq!(counts.get("Q6_K"), Some(&9));
    assert_eq!(counts.get("F32"), Some(&109));
    let scores = g.get_array("tokenizer.ggml.scores").unwrap();
    assert_eq!(scores.f32s().unwrap().count(), 262144);
}

#[test]
fn qwen2_5_coder_q4_k_m_parses() {
    let Some(bytes) = model_bytes("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf") else {
        return;
    };
    let g = Gguf::parse(&bytes).expect("parse");
    assert_eq!(g.get_str("general.architecture"), Some("qwen2"));
    assert_eq!(g.get_u32("qwen2.block_count"), Some(28));
    let counts = type_counts(&g);
    assert_eq!(counts.get("Q4_K"), Some(&169));
    assert_eq!(counts.get("Q6_K"), Some(&29));
    assert_eq!(counts.get("F32"), Some(&141));
}
