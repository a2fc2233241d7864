//! The tokenizers on text a guest controls: llama.cpp's ids on special-token look-alikes, no
//! panic and exact round trips on random and long single-kind text, no control token out of a
//! literal, and the pre-tokenizers on long runs.

mod common;

use common::tokenizer;
use inference_core::tokenizer::{PreTokenizer, TokenType, Tokenizer};
use std::ops::Range;

const MODELS: [&str; 3] = [common::SMOLLM2, common::QWEN25CODER, common::GEMMA3];

/// Units a guest can repeat: one-kind runs (one pre-tokenized word, or one SentencePiece
/// fragment), special-token texts and near misses, bytes without a piece of their own.
const UNITS: [&str; 28] = [
    "a",
    "ab",
    "aя中",
    "7",
    "1234567890",
    "🚀",
    "\u{301}",
    "a\u{301}",
    " ",
    "\n",
    " \n",
    "\t ",
    "\r\n",
    "!",
    "(){}",
    "\0",
    "\u{FFFD}",
    "\u{F0000}",
    "\u{10FFFF}",
    "'s",
    "'",
    "\u{3000}",
    "<unused",
    "<unused1",
    "<start_of_turn",
    "<|im_start|",
    "<0x41>",
    "▁Ġ",
];

/// xorshift64: the same strings on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn char(&mut self) -> char {
        let cp = match self.below(5) {
            0 => self.below(0x80),
            1 => 0x80 + self.below(0x780),
            2 => 0x800 + self.below(0xF800),
            _ => 0x10000 + self.below(0x100000),
        };
        char::from_u32(cp as u32).unwrap_or('\u{FFFD}')
    }
}

/// Whether `id` marks structure: a control or unknown token, or a user-defined one that is
/// not whitespace (as `encode_with_literal` promises never to take from its literal).
fn structural(t: &Tokenizer, id: u32) -> bool {
    match t.token_type(id) {
        Some(TokenType::Control | TokenType::Unknown) => true,
        Some(TokenType::UserDefined) => !t.token_piece(id).iter().all(u8::is_ascii_whitespace),
        _ => false,
    }
}

/// Which bytes have a token of their own: in SmolLM2 0xF1, 0xF2, 0xF5..=0xFF and a few controls
/// have none, and vanish from the ids (in llama.cpp too). SentencePiece falls back on `<0xXX>`.
fn bytes_with_tokens(t: &Tokenizer) -> [bool; 256] {
    let mut has = [t.pre_tokenizer().is_none(); 256];
    for id in 0..t.n_vocab() as u32 {
        if let [b] = t.decode(&[id])[..] {
            has[usize::from(b)] = true;
        }
    }
    has
}

/// `decode(ids)` is `text` less the bytes without a token, SentencePiece's `▁` read as a space.
fn assert_decodes(t: &Tokenizer, has_token: &[bool; 256], ids: &[u32], text: &str, what: &str) {
    let want: Vec<u8> = match t.pre_tokenizer() {
        Some(_) => text
            .bytes()
            .filter(|&b| has_token[usize::from(b)])
            .collect(),
        None => text.replace('\u{2581}', " ").into_bytes(),
    };
    let got = t.decode(ids);
    if got != want {
        let at = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
        let head: String = text.chars().take(40).collect();
        panic!(
            "{what} of {head:?}... ({} bytes) decodes differently from byte {at}",
            text.len()
        );
    }
}

fn check_round_trips(file: &str, t: &Tokenizer, has: &[bool; 256], text: &str, lit: Range<usize>) {
    let plain = t.encode(text, false, false);
    assert_decodes(t, has, &plain, text, &format!("{file}: encode"));
    let parsed = t.encode(text, true, true);
    let body = &parsed[usize::from(t.add_bos())..];
    assert_decodes(t, has, body, text, &format!("{file}: parsed"));
    let ids = t.encode_with_literal(text, lit.clone());
    assert_decodes(t, has, &ids, text, &format!("{file}: literal {lit:?}"));
    let all = t.encode_with_literal(text, 0..text.len());
    if let Some(id) = all.iter().find(|&&id| structural(t, id)) {
        panic!("{file}: token {id} out of the literal {text:?}");
    }
}

#[test]
fn special_token_look_alikes_match_llama_cpp() {
    // Ids from llama.cpp (llama-cpp-python 0.3.36, as the shared reference): add_special and
    // parse_special both `parsed`.
    let cases: [(&str, &str, bool, &[u32]); 7] = [
        (
            common::GEMMA3,
            "<unused12><unused1<start_of_turn>\n\n\n   x<table><tr>\t\t\t",
            true,
            &[
                2, 18, 236820, 63634, 236770, 105, 109, 139, 236781, 168, 173, 255970,
            ],
        ),
        (
            common::GEMMA3,
            "<start_of_turn><start_of_turn",
            false,
            &[
                236820, 3041, 236779, 1340, 236779, 887, 1798, 3041, 236779, 1340, 236779, 887,
            ],
        ),
        (
            common::GEMMA3,
            "<unused<unused<unused<unused<unused<unused99>",
            true,
            &[
                2, 236820, 63634, 236820, 63634, 236820, 63634, 236820, 63634, 236820, 63634,
                256001,
            ],
        ),
        (
            common::SMOLLM2,
            "<|im_start|><|im_start|im_end|>\0\u{FFFD}",
            true,
            &[
                1, 44, 108, 306, 79, 3738, 108, 306, 79, 486, 108, 46, 190, 24211,
            ],
        ),
        (
            common::SMOLLM2,
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx 12345",
            true,
            &[
                31069, 31069, 31069, 31069, 31069, 31069, 31069, 31069, 31069, 31069, 216, 33, 34,
                35, 36, 37,
            ],
        ),
        (
            common::QWEN25CODER,
            "<tool_call><|im_start|>\u{FFFD}\0\u{F0000}",
            true,
            &[151657, 151644, 5691, 188, 175, 108, 222, 222],
        ),
        (
            common::QWEN25CODER,
            "<tool_call><|im_start|>\u{FFFD}\0\u{F0000}",
            false,
            &[
                151657, 27, 91, 318, 4906, 91, 29, 5691, 188, 175, 108, 222, 222,
            ],
        ),
    ];
    for (file, text, parsed, want) in cases {
        let Some(t) = tokenizer(file) else { continue };
        assert_eq!(t.encode(text, parsed, parsed), want, "{file}: {text:?}");
    }
}

#[test]
fn random_text_round_trips_without_panics() {
    for file in MODELS {
        let Some(t) = tokenizer(file) else { continue };
        let has_token = bytes_with_tokens(t);
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..600 {
            let mut text = String::new();
            for _ in 0..1 + rng.below(24) {
                match rng.below(3) {
                    0 => text.push(rng.char()),
                    1 => text.push_str(UNITS[rng.below(UNITS.len())]),
                    _ => text.push_str(&UNITS[rng.below(UNITS.len())].repeat(1 + rng.below(40))),
                }
            }
            // Any range at all: out of bounds, reversed, inside a character.
            let (a, b) = (rng.below(text.len() + 8), rng.below(text.len() + 8));
            check_round_trips(file, t, &has_token, &text, a..b);
        }
        assert!(t.encode("", false, true).is_empty());
        let (start, end) = (3, 1);
        assert!(t.encode_with_literal("", start..end).is_empty());
    }
}

#[test]
fn long_single_kind_runs_round_trip() {
    for file in MODELS {
        let Some(t) = tokenizer(file) else { continue };
        let has_token = bytes_with_tokens(t);
        for unit in UNITS {
            let text = unit.repeat(16384 / unit.len());
            check_round_trips(file, t, &has_token, &text, 5..text.len() / 2);
        }
    }
}

#[test]
fn default_pretokenizer_cuts_long_digit_runs_in_threes() {
    // `[0-9]{3}` over a long run measured the whole run at every match: quadratic (64 KiB of
    // digits took 0.45 s, 1 MiB took 113 s in release builds).
    let text = "1234567".repeat(40_000);
    let pieces = PreTokenizer::Default.split(&text);
    assert_eq!(pieces.len(), text.len().div_ceil(3));
    assert!(pieces[..pieces.len() - 1].iter().all(|r| r.len() == 3));
    let text = "12a3456 7890";
    let words: Vec<&str> = PreTokenizer::Default
        .split(text)
        .into_iter()
        .map(|r| &text[r])
        .collect();
    assert_eq!(words, ["12", "a", "345", "6", " ", "789", "0"]);
}

#[test]
fn characters_new_in_unicode_15_split_as_in_llama_cpp() {
    // llama.cpp classifies codepoints by Unicode 15.1: these are a letter (U+1123F Khojki,
    // U+31350 CJK extension H) or a number (U+1D2C0 Kaktovik, U+11F50 Kawi) there, so a
    // contraction after them is its own word; unknown to Unicode 14 they were symbols, and the
    // symbol run swallowed the apostrophe. Ids from llama.cpp (llama-cpp-python 0.3.36).
    let cases: [(&str, [&[u32]; 4]); 2] = [
        (
            common::SMOLLM2,
            [
                &[187, 235, 226, 140, 506],
                &[187, 126, 231, 234, 506, 1792],
                &[23159, 229, 218, 3060],
                &[187, 235, 138, 234, 6737],
            ],
        ),
        (
            common::QWEN25CODER,
            [
                &[128240, 230, 123, 594],
                &[172, 109, 235, 238, 594, 856],
                &[56252, 233, 222, 3278],
                &[128240, 121, 238, 4172],
            ],
        ),
    ];
    let texts = [
        "\u{1123F}'s",
        "\u{31350}'s x",
        "\u{1D2C0}'ll",
        "\u{11F50}'d",
    ];
    for (file, want) in cases {
        let Some(t) = tokenizer(file) else { continue };
        for (text, want) in texts.iter().zip(want) {
            assert_eq!(t.encode(text, false, false), want, "{file}: {text:?}");
        }
    }
}
