//! Codepoint classes as llama.cpp's unicode.cpp sees them: letter (\p{L}), number (\p{N}),
//! punctuation (\p{P}) from the generated table, whitespace from PropList's White_Space.

use super::unicode_tables::CLASS_RANGES;

/// The class of one codepoint, as far as the pre-tokenizer regexes care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpClass {
    Letter,
    Number,
    Whitespace,
    Punctuation,
    /// Anything else (symbols, marks, controls, unassigned): `[^\s\p{L}\p{N}]`.
    Other,
}

/// White_Space property (PropList.txt), the set llama.cpp uses for `\s`.
pub fn is_whitespace(c: u32) -> bool {
    matches!(
        c,
        0x09..=0x0D | 0x20 | 0x85 | 0xA0 | 0x1680 | 0x2000..=0x200A | 0x2028 | 0x2029 | 0x202F | 0x205F | 0x3000
    )
}

/// Classifies a codepoint.
pub fn classify(c: char) -> CpClass {
    let c = c as u32;
    if is_whitespace(c) {
        return CpClass::Whitespace;
    }
    let idx = CLASS_RANGES.partition_point(|&(_, last, _)| last < c);
    match CLASS_RANGES.get(idx) {
        Some(&(first, _, class)) if first <= c => match class {
            1 => CpClass::Letter,
            2 => CpClass::Number,
            3 => CpClass::Punctuation,
            _ => CpClass::Other,
        },
        _ => CpClass::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_of_sample_codepoints() {
        assert_eq!(classify('a'), CpClass::Letter);
        assert_eq!(classify('Z'), CpClass::Letter);
        assert_eq!(classify('ü'), CpClass::Letter);
        assert_eq!(classify('我'), CpClass::Letter);
        assert_eq!(classify('ア'), CpClass::Letter);
        assert_eq!(classify('7'), CpClass::Number);
        assert_eq!(classify('²'), CpClass::Number);
        assert_eq!(classify('٣'), CpClass::Number);
        assert_eq!(classify(' '), CpClass::Whitespace);
        assert_eq!(classify('\u{3000}'), CpClass::Whitespace);
        assert_eq!(classify('\u{A0}'), CpClass::Whitespace);
        assert_eq!(classify('\u{1C}'), CpClass::Other);
        assert_eq!(classify('!'), CpClass::Punctuation);
        assert_eq!(classify('。'), CpClass::Punctuation);
        assert_eq!(classify('$'), CpClass::Other);
        assert_eq!(classify('🚀'), CpClass::Other);
        assert_eq!(classify('\u{301}'), CpClass::Other);
        // New in Unicode 15 / 15.1, as llama.cpp's tables have them.
        assert_eq!(classify('\u{31350}'), CpClass::Letter);
        assert_eq!(classify('\u{2EBF0}'), CpClass::Letter);
        assert_eq!(classify('\u{1D2C0}'), CpClass::Number);
        assert_eq!(classify('\u{11F43}'), CpClass::Punctuation);
    }
}
