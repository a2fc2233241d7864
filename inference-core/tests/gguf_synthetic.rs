//! The synthetic writer's output parses back with the same metadata and tensors.

use inference_core::gguf::{GgmlType, Gguf, MetaValue};
use inference_core::quant::dequantize_row;
use inference_core::synthetic::{
    tiny_llama_gguf, tiny_llama_gguf_with, ArrayValue, GgufWriter, TinyLlamaSpec, Value,
};

#[test]
fn every_value_type_round_trips() {
    let mut w = GgufWriter::new();
    w.add("u8", Value::U8(200))
        .add("i8", Value::I8(-5))
        .add("u16", Value::U16(60000))
        .add("i16", Value::I16(-300))
        .add("u32", Value::U32(4_000_000_000))
        .add("i32", Value::I32(-7))
        .add("f32", Value::F32(1.5))
        .add("bool", Value::Bool(true))
        .add("str", Value::Str("héllo".into()))
        .add("u64", Value::U64(u64::MAX))
        .add("i64", Value::I64(i64::MIN))
        .add("f64", Value::F64(0.25))
        .add(
            "a_str",
            Value::Array(ArrayValue::Str(vec!["a".into(), "".into(), "Ġthe".into()])),
        )
        .add("a_i32", Value::Array(ArrayValue::I32(vec![1, -2, 3])))
        .add("a_u32", Value::Array(ArrayValue::U32(vec![7, 8])))
        .add("a_f32", Value::Array(ArrayValue::F32(vec![0.5, -1.0])))
        .add("a_bool", Value::Array(ArrayValue::Bool(vec![true, false])))
        .add("a_empty", Value::Array(ArrayValue::U64(vec![])));
    w.set_alignment(64);
    w.add_tensor_f32("t", &[32, 2], GgmlType::Q8_0, &[0.5f32; 64])
        .unwrap();
    let bytes = w.to_bytes();
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.alignment, 64);
    assert_eq!(g.data_offset % 64, 0);
    assert_eq!(g.get("u8"), Some(&MetaValue::U8(200)));
    assert_eq!(g.get("i8"), Some(&MetaValue::I8(-5)));
    assert_eq!(g.get_u32("u16"), Some(60000));
    assert_eq!(g.get_i32("i16"), Some(-300));
    assert_eq!(g.get_u32("u32"), Some(4_000_000_000));
    assert_eq!(g.get_i32("u32"), None, "out of i32 range");
    assert_eq!(g.get_i32("i32"), Some(-7));
    assert_eq!(g.get_f32("f32"), Some(1.5));
    assert_eq!(g.get_bool("bool"), Some(true));
    assert_eq!(g.get_str("str"), Some("héllo"));
    assert_eq!(g.get_u64("u64"), Some(u64::MAX));
    assert_eq!(g.get("i64"), Some(&MetaValue::I64(i64::MIN)));
    assert_eq!(g.get_f32("f64"), Some(0.25));
    let s: Vec<&str> = g.get_array("a_str").unwrap().strings().unwrap().collect();
    assert_eq!(s, ["a", "", "Ġthe"]);
    assert!(
        g.get_array("a_str").unwrap().u32s().is_none(),
        "wrong element type"
    );
    assert_eq!(
        g.get_array("a_i32")
            .unwrap()
            .i32s()
            .unwrap()
            .collect::<Vec<_>>(),
        [1, -2, 3]
    );
    assert_eq!(
        g.get_array("a_u32")
            .unwrap()
            .u32s()
            .unwrap()
            .collect::<Vec<_>>(),
        [7, 8]
    );
    assert_eq!(
        g.get_array("a_f32")
            .unwrap()
            .f32s()
            .unwrap()
            .collect::<Vec<_>>(),
        [0.5, -1.0]
    );
    assert_eq!(
        g.get_array("a_bool")
            .unwrap()
            .bools()
            .unwrap()
            .collect::<Vec<_>>(),
        [true, false]
    );
    assert!(g.get_array("a_empty").unwrap().is_empty());
    let t = g.tensor("t").unwrap();
    assert_eq!(
        (t.shape, t.n_dims, t.ty, t.data.len()),
        ([32, 2, 1, 1], 2, GgmlType::Q8_0, 68)
    );
    let mut row = [0f32; 32];
    dequantize_row(t.ty, t.row(1).unwrap(), &mut row).unwrap();
    assert!(row.iter().all(|&v| (v - 0.5).abs() < 1e-3));
}

#[test]
fn tiny_llama_parses_and_is_deterministic() {
    let a = tiny_llama_gguf(7);
    assert_eq!(a, tiny_llama_gguf(7));
    assert_ne!(a, tiny_llama_gguf(8));
    assert!(a.len() < 512 * 1024, "{} bytes", a.len());
    let g = Gguf::parse(&a).unwrap();
    assert_eq!(g.get_str("general.architecture"), Some("llama"));
    assert_eq!(g.get_u32("llama.block_count"), Some(2));
    assert_eq!(g.get_u32("llama.embedding_length"), Some(64));
    assert_eq!(g.get_str("tokenizer.ggml.model"), Some("gpt2"));
    assert_eq!(g.get_bool("tokenizer.ggml.add_bos_token"), Some(false));
    let tokens: Vec<&str> = g
        .get_array("tokenizer.ggml.tokens")
        .unwrap()
        .strings()
        .unwrap()
        .collect();
    assert_eq!(tokens[b'a' as usize], "a");
    assert_eq!(tokens[b' ' as usize], "Ġ");
    assert_eq!(tokens[b'\n' as usize], "Ċ");
    let bos = g.get_u32("tokenizer.ggml.bos_token_id").unwrap() as usize;
    assert_eq!(tokens[bos], "<|im_start|>");
    assert_eq!(
        tokens[g.get_u32("tokenizer.ggml.eos_token_id").unwrap() as usize],
        "<|im_end|>"
    );
    assert!(tokens.contains(&"Ġthe") && tokens.contains(&"ĠYes") && tokens.contains(&"ĠNo"));
    let emb = g.tensor("token_embd.weight").unwrap();
    assert_eq!(
        (emb.ty, emb.shape[0], emb.shape[1]),
        (GgmlType::Q8_0, 64, tokens.len() as u64)
    );
    assert_eq!(
        g.tensor("blk.1.ffn_down.weight").unwrap().shape,
        [128, 64, 1, 1]
    );
    assert_eq!(g.tensor("blk.0.attn_k.weight").unwrap().ty, GgmlType::Q4_1);
    assert!(g.tensor("output.weight").is_none());
    assert_eq!(g.tensors().len(), 2 + 2 * 9);
}

#[test]
fn k_quant_variant_parses() {
    let mut spec = TinyLlamaSpec::new(1);
    spec.n_embd = 256;
    spec.n_ff = 512;
    spec.weight_type = GgmlType::Q4_K;
    spec.embd_type = GgmlType::Q6_K;
    spec.output_type = Some(GgmlType::Q5_0);
    let bytes = tiny_llama_gguf_with(&spec).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.tensor("blk.0.attn_q.weight").unwrap().ty, GgmlType::Q4_K);
    assert_eq!(g.tensor("token_embd.weight").unwrap().ty, GgmlType::Q6_K);
    assert_eq!(g.tensor("output.weight").unwrap().ty, GgmlType::Q5_0);
    // Rows of 64 cannot be Q4_K.
    let mut bad = TinyLlamaSpec::new(1);
    bad.weight_type = GgmlType::Q4_K;
    assert!(tiny_llama_gguf_with(&bad).is_err());
}
