//! Writes the fuzzing seed corpus: synthetic GGUF files of several shapes and types.

use inference_core::gguf::GgmlType;
use inference_core::synthetic::{
    tiny_llama_gguf_with, ArrayValue, GgufWriter, TinyLlamaSpec, Value,
};

fn main() -> std::io::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/gguf_parse");
    std::fs::create_dir_all(&dir)?;
    let mut w = GgufWriter::new();
    w.add("u8", Value::U8(1))
        .add("i16", Value::I16(-2))
        .add("f64", Value::F64(0.5))
        .add("s", Value::Str("x".into()))
        .add(
            "as",
            Value::Array(ArrayValue::Str(vec!["a".into(), "bc".into()])),
        )
        .add("ai", Value::Array(ArrayValue::I32(vec![1, 2])))
        .add("ab", Value::Array(ArrayValue::Bool(vec![true])));
    w.add_tensor_f32("t", &[32, 2], GgmlType::Q8_0, &[0.5; 64])
        .expect("q8_0 tensor");
    w.add_tensor_f32("u", &[32], GgmlType::F16, &[0.5; 32])
        .expect("f16 tensor");
    std::fs::write(dir.join("small.gguf"), w.to_bytes())?;
    let mut spec = TinyLlamaSpec::new(1);
    spec.n_layers = 1;
    spec.n_embd = 32;
    spec.n_heads = 2;
    spec.n_kv_heads = 1;
    spec.n_ff = 32;
    std::fs::write(
        dir.join("tiny_llama_1layer.gguf"),
        tiny_llama_gguf_with(&spec).expect("tiny"),
    )?;
    spec.weight_type = GgmlType::Q5_0;
    spec.embd_type = GgmlType::Q4_0;
    std::fs::write(
        dir.join("tiny_llama_q5_0.gguf"),
        tiny_llama_gguf_with(&spec).expect("tiny"),
    )?;
    Ok(())
}
