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

/// [`partition`] with `literal` (a byte range of `text`) partitioned with `skip_in_literal` instead
/// of `skip` (the caller leaves out every token that is not plain text there): the text before and
/// after it is partitioned on its own (so a special token there is found whatever the literal's
/// edges hold), and text fragments that touch are joined, so a `text` whose literal holds no
/// special-token text gives exactly [`partition`]'s fragments.
pub fn partition_with_literal(
    text: &str,
    literal: Range<usize>,
    specials: &[u32],
    vocab: &Vocab,
    skip: impl Fn(u32) -> bool,
    skip_in_literal: impl Fn(u32) -> bool,
) -> Vec<Fragment> {
    // Clamped to the text and widened to whole characters (a range from a caller's own offsets
    // already is).
    let mut start = literal.start.min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = literal.end.clamp(start, text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    let literal = start..end;
    let mut frags: Vec<Fragment> = Vec::new();
    let mut push = |f: Fragment| match (frags.last_mut(), f) {
        (Some(Fragment::Text(last)), Fragment::Text(r)) if last.end == r.start => last.end = r.end,
        (_, f) => frags.push(f),
    };
    let outside = [0..literal.start, literal.end..text.len()];
    for (i, part) in outside.into_iter().enumerate() {
        if let Some(piece) = text.get(part.clone()) {
            for f in partition(piece, specials, vocab, &skip) {
                push(match f {
                    Fragment::Text(r) => Fragment::Text(r.start + part.start..r.end + part.start),
                    token => token,
                });
            }
        }
        if i == 0 && !literal.is_empty() {
            let piece = &text[literal.clone()];
            for f in partition(piece, specials, vocab, &skip_in_literal) {
                push(match f {
                    Fragment::Text(r) => {
                        Fragment::Text(r.start + literal.start..r.end + literal.start)
                    }
                    token => token,
                });
            }
        }
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

    #[test]
    fn a_literal_range_holds_no_special_token() {
        let texts: [&[u8]; 3] = [b"<a>", b"<b>", b"x"];
        let vocab = Vocab::new(texts.iter().copied()).unwrap();
        let specials = [0, 1];
        use Fragment::*;
        // "<a>" inside the literal (4..11) stays text; the ones outside are tokens.
        let t = "<a>u<b><a>vw<a>";
        let f = partition_with_literal(t, 3..12, &specials, &vocab, |_| false, |_| true);
        assert_eq!(f, [Token(0), Text(3..12), Token(0)]);
        // A literal whose edge cuts a special-token text: "<a>" across it is no token, the "<b>"
        // after it still is.
        let f = partition_with_literal("q<a><b>", 0..2, &specials, &vocab, |_| false, |_| true);
        assert_eq!(
            f,
            [Text(0..4), Token(1)],
            "q< is literal, a> text, <b> a token"
        );
        // Without special-token text in the literal: exactly `partition`.
        let t = "<a>user: x y<b>";
        assert_eq!(
            partition_with_literal(t, 9..12, &specials, &vocab, |_| false, |_| true),
            partition(t, &specials, &vocab, |_| false)
        );
        assert_eq!(
            partition_with_literal(t, 0..0, &specials, &vocab, |_| false, |_| true),
            partition(t, &specials, &vocab, |_| false)
        );
        // What the literal may still hold: here `<b>` (as a plain-whitespace token would be).
        let f =
            partition_with_literal("x<a><b>y", 0..8, &specials, &vocab, |_| false, |id| id != 1);
        assert_eq!(f, [Text(0..4), Token(1), Text(7..8)]);
        // Ranges past the end or inside a character are clamped and widened, never a panic.
        let f = partition_with_literal("é<a>", 1..99, &specials, &vocab, |_| false, |_| true);
        assert_eq!(f, [Text(0..5)]);
    }
}
