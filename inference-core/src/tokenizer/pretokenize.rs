//! Pre-tokenizers of byte-level BPE vocabularies: hand-written scanners that split text
//! exactly as llama.cpp's `unicode_regex_split` does for each `tokenizer.ggml.pre`.
//!
//! Every stage works on the pieces of the previous one (a piece's ends are text ends for
//! the next regex, which matters for the `\s+(?!\S)` lookahead), as llama.cpp does.

use super::unicode::{classify, CpClass};
use alloc::vec::Vec;
use core::ops::Range;

/// The pre-tokenizer families the engine implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreTokenizer {
    /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`.
    Gpt2,
    /// SmolLM / StarCoder: every `\p{N}` alone first, then the GPT-2 regex.
    Smollm,
    /// Llama 3: `(?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
    Llama3,
    /// Qwen 2: the Llama 3 regex with single digits (`\p{N}`).
    Qwen2,
    /// llama.cpp's default BPE split: punctuation runs, GPT-2, `\p{N}+`, `[0-9]{3}`.
    Default,
}

impl PreTokenizer {
    /// Maps a `tokenizer.ggml.pre` value to its family, as llama-vocab.cpp groups them.
    pub fn from_name(name: &str) -> Option<PreTokenizer> {
        Some(match name {
            "default" => PreTokenizer::Default,
            "gpt-2" | "gpt2" | "mpt" | "olmo" | "jais" | "trillion" | "granite-docling" => {
                PreTokenizer::Gpt2
            }
            "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone"
            | "minerva-7b" => PreTokenizer::Smollm,
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral"
            | "midm-2.0" | "lfm2" => PreTokenizer::Llama3,
            "qwen2" | "stablelm2" | "hunyuan" | "deepseek-r1-qwen" | "megrez" => {
                PreTokenizer::Qwen2
            }
            _ => return None,
        })
    }

    /// Splits `text` into words; returns byte ranges covering the text in order.
    pub fn split(self, text: &str) -> Vec<Range<usize>> {
        let cps: Vec<Cp> = text
            .char_indices()
            .map(|(at, c)| Cp {
                at,
                c,
                class: classify(c),
            })
            .collect();
        let mut pieces: Vec<Range<usize>> = Vec::new();
        if !cps.is_empty() {
            pieces.push(0..cps.len());
        }
        let stages: &[Stage] = match self {
            PreTokenizer::Gpt2 => &[Stage::Gpt2],
            PreTokenizer::Smollm => &[Stage::EachNumber, Stage::Gpt2],
            PreTokenizer::Llama3 => &[Stage::Llama(3)],
            PreTokenizer::Qwen2 => &[Stage::Llama(1)],
            PreTokenizer::Default => &[
                Stage::PunctRuns,
                Stage::Gpt2,
                Stage::NumberRuns,
                Stage::AsciiDigits3,
            ],
        };
        for stage in stages {
            let mut next = Vec::with_capacity(pieces.len() * 2);
            for seg in pieces {
                let scan = Scan {
                    cps: &cps,
                    end: seg.end,
                };
                match *stage {
                    Stage::Gpt2 => scan.gpt2(seg.start, &mut next),
                    Stage::Llama(max_digits) => scan.llama(seg.start, max_digits, &mut next),
                    _ => scan.matches(seg.start, *stage, &mut next),
                }
            }
            pieces = next;
        }
        let byte_at = |i: usize| cps.get(i).map_or(text.len(), |cp| cp.at);
        pieces
            .into_iter()
            .map(|r| byte_at(r.start)..byte_at(r.end))
            .collect()
    }
}

#[derive(Clone, Copy)]
struct Cp {
    at: usize,
    c: char,
    class: CpClass,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Gpt2,
    Llama(usize),
    EachNumber,
    PunctRuns,
    NumberRuns,
    AsciiDigits3,
}

/// One segment `[start, end)` of codepoints under a scan; positions past `end` are
/// "out of range" (no class), as in llama.cpp's custom splitters.
struct Scan<'c> {
    cps: &'c [Cp],
    end: usize,
}

impl Scan<'_> {
    fn class(&self, p: usize) -> Option<CpClass> {
        (p < self.end).then(|| self.cps[p].class)
    }
    fn ch(&self, p: usize) -> Option<char> {
        (p < self.end).then(|| self.cps[p].c)
    }
    fn is(&self, p: usize, class: CpClass) -> bool {
        self.class(p) == Some(class)
    }
    fn is_letter(&self, p: usize) -> bool {
        self.is(p, CpClass::Letter)
    }
    fn is_number(&self, p: usize) -> bool {
        self.is(p, CpClass::Number)
    }
    fn is_space(&self, p: usize) -> bool {
        self.is(p, CpClass::Whitespace)
    }
    /// `[^\s\p{L}\p{N}]` inside the segment.
    fn is_other(&self, p: usize) -> bool {
        matches!(self.class(p), Some(CpClass::Punctuation | CpClass::Other))
    }
    fn is_rn(&self, p: usize) -> bool {
        matches!(self.ch(p), Some('\r' | '\n'))
    }

    /// Length of a contraction (`'s`, `'re`, ...) at `pos`, or 0.
    fn contraction(&self, pos: usize, ignore_case: bool) -> usize {
        if self.ch(pos) != Some('\'') {
            return 0;
        }
        let low = |p: usize| {
            let c = self.ch(p).unwrap_or('\0');
            if ignore_case {
                c.to_ascii_lowercase()
            } else {
                c
            }
        };
        match low(pos + 1) {
            's' | 't' | 'm' | 'd' if pos + 1 < self.end => 2,
            'r' | 'v' if pos + 2 < self.end && low(pos + 2) == 'e' => 3,
            'l' if pos + 2 < self.end && low(pos + 2) == 'l' => 3,
            _ => 0,
        }
    }

    /// Whitespace handling shared by the GPT-2 and Llama 3 regexes: `\s+(?!\S)` then `\s+`.
    /// Returns the end of the match (at least `pos + 1`).
    fn spaces_end(&self, pos: usize) -> usize {
        let mut n = 0;
        while self.is_space(pos + n) {
            n += 1;
        }
        if n > 1 && pos + n < self.end {
            pos + n - 1
        } else {
            pos + n.max(1)
        }
    }

    fn gpt2(&self, start: usize, out: &mut Vec<Range<usize>>) {
        let mut pos = start;
        while pos < self.end {
            let begin = pos;
            let c = self.cps[pos].c;
            let n = self.contraction(pos, false);
            if n > 0 {
                pos += n;
            } else {
                let p2 = if c == ' ' { pos + 1 } else { pos };
                if self.is_letter(p2) {
                    pos = p2;
                    while self.is_letter(pos) {
                        pos += 1;
                    }
                } else if self.is_number(p2) {
                    pos = p2;
                    while self.is_number(pos) {
                        pos += 1;
                    }
                } else if self.is_other(p2) {
                    pos = p2;
                    while self.is_other(pos) {
                        pos += 1;
                    }
                } else {
                    pos = self.spaces_end(pos);
                }
            }
            out.push(begin..pos);
        }
    }

    fn llama(&self, start: usize, max_digits: usize, out: &mut Vec<Range<usize>>) {
        let mut pos = start;
        while pos < self.end {
            let c = self.cps[pos].c;
            let n = self.contraction(pos, true);
            if n > 0 {
                out.push(pos..pos + n);
                pos += n;
                continue;
            }
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if !(c == '\r' || c == '\n' || self.is_number(pos))
                && (self.is_letter(pos) || self.is_letter(pos + 1))
            {
                let begin = pos;
                pos += 1;
                while self.is_letter(pos) {
                    pos += 1;
                }
                out.push(begin..pos);
                continue;
            }
            // \p{N}{1,max}
            if self.is_number(pos) {
                let mut begin = pos;
                while self.is_number(pos) {
                    pos += 1;
                    if pos - begin >= max_digits {
                        out.push(begin..pos);
                        begin = pos;
                    }
                }
                if pos > begin {
                    out.push(begin..pos);
                }
                continue;
            }
            //  ?[^\s\p{L}\p{N}]+[\r\n]*
            let begin = pos;
            let p2 = if c == ' ' { pos + 1 } else { pos };
            if self.is_other(p2) {
                pos = p2;
                while self.is_other(pos) {
                    pos += 1;
                }
                while self.is_rn(pos) {
                    pos += 1;
                }
                out.push(begin..pos);
                continue;
            }
            // \s*[\r\n]+ : up to the last \r or \n of the whitespace run
            let mut n = 0;
            let mut last_rn = None;
            while self.is_space(pos + n) {
                if self.is_rn(pos + n) {
                    last_rn = Some(pos + n + 1);
                }
                n += 1;
            }
            pos = match last_rn {
                Some(end) => end,
                None => self.spaces_end(pos),
            };
            out.push(begin..pos);
        }
    }

    /// Length of a match of a simple stage regex at `pos` (0: no match).
    fn match_len(&self, pos: usize, stage: Stage) -> usize {
        let run = |pred: &dyn Fn(usize) -> bool| {
            let mut p = pos;
            while p < self.end && pred(p) {
                p += 1;
            }
            p - pos
        };
        match stage {
            Stage::EachNumber => usize::from(self.is_number(pos)),
            Stage::NumberRuns => run(&|p| self.is_number(p)),
            Stage::PunctRuns => run(&|p| {
                self.is(p, CpClass::Punctuation)
                    || matches!(self.cps[p].c, '$' | '+' | '<' | '=' | '>' | '^' | '~' | '|')
            }),
            Stage::AsciiDigits3 => {
                // Only three codepoints are looked at: measuring the whole run at every match
                // made a long digit run quadratic (1 MiB of digits took minutes).
                let digit = |p: usize| p < self.end && self.cps[p].c.is_ascii_digit();
                if (pos..pos + 3).all(digit) {
                    3
                } else {
                    0
                }
            }
            Stage::Gpt2 | Stage::Llama(_) => 0,
        }
    }

    /// std::regex-style split: every match is a piece, and so is each gap between matches.
    fn matches(&self, start: usize, stage: Stage, out: &mut Vec<Range<usize>>) {
        let mut gap_start = start;
        let mut pos = start;
        while pos < self.end {
            let n = self.match_len(pos, stage);
            if n == 0 {
                pos += 1;
                continue;
            }
            if pos > gap_start {
                out.push(gap_start..pos);
            }
            out.push(pos..pos + n);
            pos += n;
            gap_start = pos;
        }
        if self.end > gap_start {
            out.push(gap_start..self.end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn words(pre: PreTokenizer, text: &str) -> Vec<&str> {
        pre.split(text).into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn gpt2_contractions_spaces_and_newlines() {
        let w = words(PreTokenizer::Gpt2, "Hello world's  test\n\nend  ");
        assert_eq!(
            w,
            ["Hello", " world", "'s", " ", " test", "\n", "\n", "end", "  "]
        );
        // Contractions are case-sensitive in the GPT-2 regex.
        assert_eq!(
            words(PreTokenizer::Gpt2, "IT'S 42x"),
            ["IT", "'", "S", " 42", "x"]
        );
        assert_eq!(
            words(PreTokenizer::Gpt2, "Grüße 日本語! 🚀🔥"),
            ["Grüße", " 日本語", "!", " 🚀🔥"]
        );
    }

    #[test]
    fn smollm_isolates_every_digit() {
        assert_eq!(
            words(PreTokenizer::Smollm, "abc123 4x"),
            ["abc", "1", "2", "3", " ", "4", "x"]
        );
        assert_eq!(words(PreTokenizer::Smollm, "v²"), ["v", "²"]);
    }

    #[test]
    fn llama3_and_qwen2_regexes() {
        let text = "I'm HAPPY'S 12345 abc\r\n\r\n  x  ";
        let w = words(PreTokenizer::Llama3, text);
        assert_eq!(
            w,
            ["I", "'m", " HAPPY", "'S", " ", "123", "45", " abc", "\r\n\r\n", " ", " x", "  "]
        );
        let w = words(PreTokenizer::Qwen2, text);
        let want = [
            "I", "'m", " HAPPY", "'S", " ", "1", "2", "3", "4", "5", " abc", "\r\n\r\n", " ", " x",
            "  ",
        ];
        assert_eq!(w, want);
        assert_eq!(
            words(PreTokenizer::Qwen2, "foo(){}\n\nbar"),
            ["foo", "(){}\n\n", "bar"]
        );
        assert_eq!(words(PreTokenizer::Qwen2, "\ttabs x"), ["\ttabs", " x"]);
        assert_eq!(
            words(PreTokenizer::Qwen2, "a \u{3000}b"),
            ["a", " ", "\u{3000}b"]
        );
    }

    #[test]
    fn default_splits_punctuation_numbers_and_triples() {
        assert_eq!(
            words(PreTokenizer::Default, "a+=b 1234567"),
            ["a", "+=", "b", " ", "123", "456", "7"]
        );
    }

    #[test]
    fn names_map_to_families() {
        assert_eq!(
            PreTokenizer::from_name("smollm"),
            Some(PreTokenizer::Smollm)
        );
        assert_eq!(
            PreTokenizer::from_name("llama-bpe"),
            Some(PreTokenizer::Llama3)
        );
        assert_eq!(PreTokenizer::from_name("qwen2"), Some(PreTokenizer::Qwen2));
        assert_eq!(PreTokenizer::from_name("gpt-2"), Some(PreTokenizer::Gpt2));
        assert_eq!(
            PreTokenizer::from_name("default"),
            Some(PreTokenizer::Default)
        );
        assert_eq!(PreTokenizer::from_name("no-such-pre"), None);
        assert!(PreTokenizer::Qwen2.split("").is_empty());
    }
}
