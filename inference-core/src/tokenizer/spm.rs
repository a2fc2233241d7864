//! SentencePiece-style tokenization as llama.cpp's `llm_tokenizer_spm_session`: start from
//! UTF-8 characters, repeatedly merge the adjacent pair whose joined text is the token
//! with the highest score (ties: leftmost), then fall back to byte tokens for leftovers.

use super::vocab::Vocab;
use alloc::collections::BinaryHeap;
use alloc::vec::Vec;
use core::cmp::Ordering;

#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: usize,
    next: usize,
}

struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}

impl Ord for Bigram {
    // BinaryHeap pops the greatest: the highest score, then the leftmost.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then(other.left.cmp(&self.left))
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Tokenizes `text` (spaces already replaced by U+2581) and appends the ids to `out`.
/// `byte_tokens[b]` is the `<0xXX>` token of byte b (`u32::MAX` when there is none).
pub fn tokenize(
    text: &[u8],
    vocab: &Vocab,
    scores: &[f32],
    byte_tokens: &[u32; 256],
    out: &mut Vec<u32>,
) {
    let mut syms: Vec<Symbol> = Vec::with_capacity(text.len());
    let mut at = 0;
    while at < text.len() {
        let len = utf8_len(text[at]).min(text.len() - at);
        let i = syms.len();
        syms.push(Symbol {
            start: at,
            len,
            prev: i.wrapping_sub(1),
            next: i + 1,
        });
        at += len;
    }
    let n = syms.len();
    let mut heap = BinaryHeap::new();
    let push = |heap: &mut BinaryHeap<Bigram>, syms: &[Symbol], left: usize, right: usize| {
        if left >= n || right >= n {
            return;
        }
        let (l, r) = (syms[left], syms[right]);
        let joined = &text[l.start..r.start + r.len];
        if let Some(id) = vocab.lookup(joined) {
            let score = scores.get(id as usize).copied().unwrap_or(0.0);
            heap.push(Bigram {
                score,
                left,
                right,
                size: joined.len(),
            });
        }
    };
    for i in 1..n {
        push(&mut heap, &syms, i - 1, i);
    }
    while let Some(b) = heap.pop() {
        let (l, r) = (syms[b.left], syms[b.right]);
        if l.len == 0 || r.len == 0 || l.len + r.len != b.size {
            continue; // one side was merged since
        }
        syms[b.left].len += r.len;
        syms[b.left].next = r.next;
        syms[b.right].len = 0;
        if r.next < n {
            syms[r.next].prev = b.left;
        }
        push(&mut heap, &syms, l.prev, b.left);
        push(&mut heap, &syms, b.left, r.next);
    }
    let mut i = 0;
    while i < n {
        let s = syms[i];
        let piece = &text[s.start..s.start + s.len];
        match vocab.lookup(piece) {
            Some(id) => out.push(id),
            None => out.extend(
                piece
                    .iter()
                    .map(|&b| byte_tokens[b as usize])
                    .filter(|&id| id != u32::MAX),
            ),
        }
        i = s.next;
    }
}

/// Length of the UTF-8 sequence a lead byte starts (1 for a stray continuation byte).
fn utf8_len(lead: u8) -> usize {
    match lead >> 4 {
        0xF => 4,
        0xE => 3,
        0xC | 0xD => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highest_score_merges_first_and_bytes_fall_back() {
        let texts: [&[u8]; 6] = [b"a", b"b", b"ab", b"bc", b"c", b"<0x78>"];
        let vocab = Vocab::new(texts.iter().copied()).unwrap();
        let scores = [0.0, 0.0, -2.0, -1.0, 0.0, 0.0];
        let mut bytes = [u32::MAX; 256];
        bytes[b'x' as usize] = 5;
        let mut out = Vec::new();
        tokenize(b"abc", &vocab, &scores, &bytes, &mut out);
        assert_eq!(out, [0, 3]);
        out.clear();
        tokenize(b"abx", &vocab, &scores, &bytes, &mut out);
        assert_eq!(out, [2, 5]);
        out.clear();
        // "é" has no token and no byte tokens: dropped, as llama.cpp drops missing ones.
        tokenize("é".as_bytes(), &vocab, &scores, &bytes, &mut out);
        assert!(out.is_empty());
    }
}
