//! Token ids against llama.cpp's reference tokenization of every shared prompt, plus
//! round-trips and special-token behaviour on the three real vocabularies.

mod common;

use common::tokenizer;
use inference_core::tokenizer::TokenType;
use std::time::Instant;

/// Compares `encode(prompt, true, true)` with every `<model>/<name>.tokens` file.
fn check_reference(file: &'static str, model_dir: &str) {
    let Some(tok) = tokenizer(file) else { return };
    let refdir = common::reference_dir();
    let prompts = refdir.join("prompts");
    let Ok(entries) = std::fs::read_dir(&prompts) else {
        assert!(
            !common::models_required(),
            "reference prompts missing at {}",
            prompts.display()
        );
        eprintln!(
            "SKIP {model_dir}: no reference prompts at {}",
            prompts.display()
        );
        return;
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .into_string()
                .ok()?
                .strip_suffix(".txt")
                .map(String::from)
        })
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no prompts in {}", prompts.display());
    let mut failures = Vec::new();
    for name in &names {
        let text = std::fs::read_to_string(prompts.join(format!("{name}.txt"))).unwrap();
        let want_path = refdir.join(model_dir).join(format!("{name}.tokens"));
        let want: Vec<u32> = std::fs::read_to_string(&want_path)
            .unwrap_or_else(|e| panic!("{}: {e}", want_path.display()))
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.trim().parse().unwrap())
            .collect();
        let t0 = Instant::now();
        let got = tok.encode(&text, true, true);
        let took = t0.elapsed();
        if got != want {
            let at = got
                .iter()
                .zip(&want)
                .position(|(a, b)| a != b)
                .unwrap_or(got.len().min(want.len()));
            let lo = at.saturating_sub(3);
            failures.push(format!(
                "{name}: first difference at {at}: got {:?} want {:?} (len {} vs {})",
                &got[lo..(at + 4).min(got.len())],
                &want[lo..(at + 4).min(want.len())],
                got.len(),
                want.len()
            ));
        } else {
            eprintln!("{model_dir}/{name}: {} tokens match ({took:?})", got.len());
        }
        assert_eq!(
            tok.decode(&got[usize::from(tok.add_bos())..]),
            text.as_bytes(),
            "{name}: decode round trip"
        );
    }
    assert!(
        failures.is_empty(),
        "{model_dir}: {} prompt(s) differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn smollm2_matches_llama_cpp() {
    check_reference(common::SMOLLM2, "smollm2");
}

#[test]
fn gemma3_matches_llama_cpp() {
    check_reference(common::GEMMA3, "gemma3");
}

#[test]
fn qwen25coder_matches_llama_cpp() {
    check_reference(common::QWEN25CODER, "qwen25coder");
}

#[test]
fn metadata_of_the_three_models() {
    if let Some(t) = tokenizer(common::SMOLLM2) {
        assert_eq!(
            (t.n_vocab(), t.bos(), t.eos(), t.add_bos()),
            (49152, Some(1), Some(2), false)
        );
        assert!(t.chat_template().unwrap().contains("<|im_start|>"));
        assert_eq!(t.token_type(1), Some(TokenType::Control));
        assert!(
            t.is_eog(2) && !t.is_eog(1),
            "<|im_end|> ends generation, <|im_start|> does not"
        );
        assert_eq!(
            t.n_merges(),
            48900,
            "every merge resolves to vocabulary tokens"
        );
    }
    if let Some(t) = tokenizer(common::GEMMA3) {
        assert_eq!(
            (t.n_vocab(), t.bos(), t.eos(), t.add_bos()),
            (262144, Some(2), Some(1), true)
        );
        assert_eq!(t.encode("", true, true), [2]);
        assert!(t.encode("", false, true).is_empty());
        let eot = t.text_to_id("<end_of_turn>").unwrap();
        assert!(t.is_eog(eot) && t.is_eog(1) && !t.is_eog(2));
    }
    if let Some(t) = tokenizer(common::QWEN25CODER) {
        assert_eq!(
            (t.n_vocab(), t.eos(), t.add_bos()),
            (151936, Some(151645), false)
        );
        for (word, id) in [("Yes", 9454), ("No", 2753), ("yes", 9693), ("no", 2152)] {
            assert_eq!(t.text_to_id(word), Some(id), "{word}");
        }
        assert_eq!(t.text_to_id("<|im_end|>"), Some(151645));
        assert_eq!(
            t.n_merges(),
            151387,
            "every merge resolves to vocabulary tokens"
        );
    }
}

#[test]
fn special_tokens_only_when_parsed() {
    for file in [common::SMOLLM2, common::QWEN25CODER] {
        let Some(t) = tokenizer(file) else { continue };
        let start = t.text_to_id("<|im_start|>").expect("<|im_start|> exists");
        let parsed = t.encode("<|im_start|>user\nhi", false, true);
        assert_eq!(parsed[0], start);
        let plain = t.encode("<|im_start|>user\nhi", false, false);
        assert!(
            !plain.contains(&start),
            "{file}: control token parsed without parse_special"
        );
        assert_eq!(t.decode(&plain), b"<|im_start|>user\nhi");
    }
    if let Some(t) = tokenizer(common::GEMMA3) {
        let sot = t.text_to_id("<start_of_turn>").expect("<start_of_turn>");
        assert_eq!(t.token_type(sot), Some(TokenType::Control));
        assert_eq!(t.encode("<start_of_turn>user", false, true)[0], sot);
        assert_ne!(t.encode("<start_of_turn>user", false, false)[0], sot);
    }
}

#[test]
fn verbalizers_are_single_tokens_with_leading_space() {
    for file in [common::SMOLLM2, common::QWEN25CODER, common::GEMMA3] {
        let Some(t) = tokenizer(file) else { continue };
        for word in [" Yes", " No", "Yes", "No"] {
            let id = t
                .text_to_id(word)
                .unwrap_or_else(|| panic!("{file}: {word:?} is no single token"));
            assert_eq!(t.decode(&[id]), word.as_bytes(), "{file}: {word:?}");
            assert_eq!(
                t.encode(word, false, false),
                [id],
                "{file}: {word:?} encodes to itself"
            );
        }
        assert_eq!(t.text_to_id(" Yes maybe"), None);
    }
}

#[test]
fn gemma3_byte_fallback_and_round_trips() {
    let Some(t) = tokenizer(common::GEMMA3) else {
        return;
    };
    // A plane-15 private-use character has no piece: it falls back to its four UTF-8
    // byte tokens (F3 B0 80 80).
    let ids = t.encode("\u{F0000}", false, false);
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert!(ids
        .iter()
        .all(|&id| t.token_type(id) == Some(TokenType::Byte)));
    assert_eq!(t.token_piece(ids[0]), b"<0xF3>");
    assert_eq!(t.token_piece(ids[3]), b"<0x80>");
    for text in [
        "\u{F0000}x",
        "  two  spaces ",
        "tabs\tand\nnewlines\n\n",
        "Grüße 日本語 🚀",
        "a  b   c",
    ] {
        assert_eq!(
            t.decode(&t.encode(text, false, false)),
            text.as_bytes(),
            "{text:?}"
        );
    }
}

#[test]
fn bpe_round_trips_arbitrary_text() {
    for file in [common::SMOLLM2, common::QWEN25CODER] {
        let Some(t) = tokenizer(file) else { continue };
        for text in [
            "\u{E000}\u{10FFFF}",
            "  two  spaces ",
            "x\r\n\r\ny",
            "Grüße 日本語 🚀",
            "12345678 it's IT'S",
        ] {
            assert_eq!(
                t.decode(&t.encode(text, false, false)),
                text.as_bytes(),
                "{file}: {text:?}"
            );
        }
    }
}
