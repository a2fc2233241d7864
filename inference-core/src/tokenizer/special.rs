//! Special-token partition (llama.cpp's `tokenizer_st_partition`): before any
//! pre-tokenization the text is cut at occurrences of control / user-defined / unknown
//! token texts, longest token text first, each leftmost-first without overlap.

use super::vocab::Vocab;
use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

/// A piece of the input: raw text (a byte range of it) or an already known token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fragment {
    Text(Range<usize>),
    Token(u32),
}

/// Splits `text` at the special tokens `specials` (ordered longest text first).
/// `skip(id)` tells which of them to leave as text (control tokens when not parsing
/// special tokens).
pub fn partition(
    text: &str,
    specials: &[u32],
    vocab: &Vocab,
    skip: impl Fn(u32) -> bool,
) -> Vec<Fragment> {
    let bytes = text.as_bytes();
    let mut frags = Vec::new();
    if !bytes.is_empty() {
        frags.push(Fragment::Text(0..bytes.len()));
    }
    // Adjacent byte pairs present in the text: most special tokens (e.g. Gemma's 6,000
    // "<unusedN>") are ruled out by their first two bytes without a scan.
    let mut pairs = vec![0u64; 65536 / 64];
    for w in bytes.windows(2) {
        let p = usize::from(w[0]) << 8 | usize::from(w[1]);
        pairs[p / 64] |= 1 << (p % 64);
    }
    for &id in specials {
        let needle = vocab.text(id);
        if needle.is_empty() || skip(id) {
            continue;
        }
        if let [a, b, ..] = *needle {
            let p = usize::from(a) << 8 | usize::from(b);
            if pairs[p / 64] & (1 << (p % 64)) == 0 {
                continue;
            }
        }
        let found = frags.iter().any(|f| match f {
            Fragment::Text(r) => find(&bytes[r.clone()], needle).is_some(),
            Fragment::Token(_) => false,
        });
        if !found {
            continue;
        }
        let mut next = Vec::with_capacity(frags.len() + 2);
        for f in frags {
            let Fragment::Text(r) = f else {
                next.push(f);
                continue;
            };
            let mut at = r.start;
            while let Some(i) = find(&bytes[at..r.end], needle) {
                if i > 0 {
                    next.push(Fragment::Text(at..at + i));
                }
                next.push(Fragment::Token(id));
                at += i + needle.len();
            }
            if at < r.end {
                next.push(Fragment::Text(at..r.end));
            }
        }
        frags = next;
    }
    frags
}

/// First occurrence of `needle` (non-empty) in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let first = needle[0];
    let last_start = hay.len().checked_sub(needle.len())?;
    (0..=last_start).find(|&i| hay[i] == first && &hay[i..i + needle.len()] == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_special_first_and_skips() {
        let texts: [&[u8]; 4] = [b"<a>", b"<a><b>", b"x", b"<b>"];
        let vocab = Vocab::new(texts.iter().copied()).unwrap();
        let specials = [1, 0, 3];
        let t = "x<a><b>y<a>z<b>";
        let f = partition(t, &specials, &vocab, |_| false);
        use Fragment::*;
        assert_eq!(
            f,
            [
                Text(0..1),
                Token(1),
                Text(7..8),
                Token(0),
                Text(11..12),
                Token(3)
            ]
        );
        let f = partition(t, &specials, &vocab, |id| id == 1);
        assert_eq!(
            f,
            [
                Text(0..1),
                Token(0),
                Token(3),
                Text(7..8),
                Token(0),
                Text(11..12),
                Token(3)
            ]
        );
        assert_eq!(partition("", &specials, &vocab, |_| false), []);
        assert_eq!(partition("<a", &specials, &vocab, |_| false), [Text(0..2)]);
    }
}
