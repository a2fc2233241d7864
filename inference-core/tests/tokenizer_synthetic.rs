//! Tokenizer behaviour on small synthetic GGUF files (no model download needed): the
//! tiny llama's byte-level BPE, a small SentencePiece vocabulary, and the load errors.

use inference_core::gguf::Gguf;
use inference_core::synthetic::{tiny_llama_gguf, ArrayValue, GgufWriter, Value, TINY_MERGES};
use inference_core::tokenizer::{TokenType, Tokenizer, TokenizerError};

fn strings(v: &[&str]) -> Value {
    Value::Array(ArrayValue::Str(v.iter().map(|s| s.to_string()).collect()))
}

fn load(w: &GgufWriter) -> Result<Tokenizer, TokenizerError> {
    let bytes = w.to_bytes();
    let g = Gguf::parse(&bytes).expect("synthetic GGUF parses");
    Tokenizer::from_gguf(&g)
}

#[test]
fn tiny_llama_bpe_merges_and_specials() {
    let bytes = tiny_llama_gguf(1);
    let t = Tokenizer::from_gguf(&Gguf::parse(&bytes).unwrap()).unwrap();
    assert_eq!(t.n_merges(), TINY_MERGES.len());
    let merged = |m: &str| 256 + TINY_MERGES.iter().position(|x| *x == m).unwrap() as u32;
    assert_eq!(t.text_to_id(" Yes"), Some(merged("ĠY es")));
    assert_eq!(t.encode(" Yes", true, true), [merged("ĠY es")]);
    // "the": only "h e" applies (there is no "t he"); " the": "Ġ t", then "Ġt he".
    assert_eq!(
        t.encode("the the", false, false),
        [u32::from(b't'), merged("h e"), merged("Ġt he")]
    );
    // Bytes without merges map to their byte tokens (token id = byte value here).
    assert_eq!(t.encode("\u{1}", false, false), [1]);
    let start = t.text_to_id("<|im_start|>").unwrap();
    assert_eq!(t.token_type(start), Some(TokenType::Control));
    assert_eq!(
        t.encode("<|im_start|>x", false, true),
        [start, u32::from(b'x')]
    );
    let plain = t.encode("<|im_start|>x", false, false);
    assert!(!plain.contains(&start) && plain.len() > 2, "{plain:?}");
    assert_eq!(t.decode(&plain), b"<|im_start|>x");
    assert!(!t.add_bos());
    assert!(t.chat_template().unwrap().contains("<|im_start|>"));
    let text = "Grüße, the cat's 123 <|im_end|>\n";
    assert_eq!(t.decode(&t.encode(text, false, true)), text.as_bytes());
}

/// A small SentencePiece vocabulary: specials, 256 byte tokens, then scored pieces.
fn spm_writer(add_space_prefix: Option<bool>) -> GgufWriter {
    let mut tokens: Vec<String> = ["<unk>", "<s>", "</s>"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    tokens.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    let pieces = [
        ("▁", -1.0),
        ("a", -2.0),
        ("b", -2.0),
        ("▁a", -1.5),
        ("ab", -0.5),
        ("▁b", -3.0),
        ("<eot>", 0.0),
    ];
    tokens.extend(pieces.iter().map(|p| p.0.to_string()));
    let mut scores = vec![0.0f32; 259];
    scores.extend(pieces.iter().map(|p| p.1));
    let mut types = vec![2, 3, 3];
    types.extend([6; 256]);
    types.extend([1, 1, 1, 1, 1, 1, 4]);
    let mut w = GgufWriter::new();
    w.add_str("tokenizer.ggml.model", "llama")
        .add(
            "tokenizer.ggml.tokens",
            Value::Array(ArrayValue::Str(tokens)),
        )
        .add(
            "tokenizer.ggml.scores",
            Value::Array(ArrayValue::F32(scores)),
        )
        .add(
            "tokenizer.ggml.token_type",
            Value::Array(ArrayValue::I32(types)),
        )
        .add_u32("tokenizer.ggml.bos_token_id", 1)
        .add_u32("tokenizer.ggml.eos_token_id", 2);
    if let Some(v) = add_space_prefix {
        w.add_bool("tokenizer.ggml.add_space_prefix", v);
    }
    w
}

#[test]
fn spm_scores_space_prefix_and_byte_fallback() {
    let t = load(&spm_writer(None)).unwrap();
    let id = |s: &str| t.text_to_id(s).unwrap();
    assert!(t.add_bos(), "SentencePiece adds BOS by default");
    // Space prefix by default: "ab" -> "▁ab"; "ab" (score -0.5) merges before "▁a" (-1.5).
    assert_eq!(t.encode("ab", true, true), [1, id("▁"), id("ab")]);
    assert_eq!(t.decode(&t.encode("ab", false, true)), b" ab");
    // "é" has no piece: its UTF-8 bytes come out as <0xC3> <0xA9>.
    assert_eq!(t.encode("é", false, false)[1..], [3 + 0xC3, 3 + 0xA9]);
    assert_eq!(t.decode(&t.encode("a é", false, false)), " a é".as_bytes());
    // User-defined tokens split the text even without parse_special; after one, the
    // next text gets the space prefix again.
    assert_eq!(
        t.encode("a<eot>a", false, false),
        [id(" a"), id("<eot>"), id(" a")]
    );
    let t = load(&spm_writer(Some(false))).unwrap();
    assert_eq!(t.encode("ab", false, false), [t.text_to_id("ab").unwrap()]);
    assert_eq!(
        t.text_to_id("\u{1}"),
        Some(3 + 1),
        "single bytes map to byte tokens"
    );
}

#[test]
fn load_errors_are_reported() {
    let mut w = GgufWriter::new();
    w.add("tokenizer.ggml.tokens", strings(&["a"]));
    assert_eq!(
        load(&w).unwrap_err(),
        TokenizerError::MissingKey("tokenizer.ggml.model")
    );
    w.add_str("tokenizer.ggml.model", "bert");
    assert!(matches!(load(&w), Err(TokenizerError::UnsupportedModel(m)) if m == "bert"));

    let mut w = GgufWriter::new();
    w.add_str("tokenizer.ggml.model", "gpt2")
        .add_str("tokenizer.ggml.pre", "no-such-pre");
    w.add("tokenizer.ggml.tokens", strings(&["a"]))
        .add("tokenizer.ggml.merges", strings(&[]));
    assert!(matches!(load(&w), Err(TokenizerError::UnsupportedPre(p)) if p == "no-such-pre"));

    let mut w = GgufWriter::new();
    w.add_str("tokenizer.ggml.model", "gpt2")
        .add("tokenizer.ggml.tokens", strings(&["a", "b"]));
    assert_eq!(
        load(&w).unwrap_err(),
        TokenizerError::MissingKey("tokenizer.ggml.merges")
    );
    w.add("tokenizer.ggml.merges", strings(&["a b"]));
    w.add(
        "tokenizer.ggml.scores",
        Value::Array(ArrayValue::F32(vec![0.0])),
    );
    assert_eq!(
        load(&w).unwrap_err(),
        TokenizerError::LengthMismatch("tokenizer.ggml.scores")
    );

    let mut w = spm_writer(None);
    w.add_u32("tokenizer.ggml.padding_token_id", 100_000);
    assert_eq!(
        load(&w).unwrap_err(),
        TokenizerError::BadTokenId("tokenizer.ggml.padding_token_id", 100_000)
    );
    assert!(!format!("{}", TokenizerError::BadVocab).is_empty());
}
