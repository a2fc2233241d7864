//! Byte-level BPE (GPT-2 style): the bytes <-> unicode mapping, the merge table and the
//! merge loop of llama.cpp's `llm_tokenizer_bpe_session` (lowest rank first, then leftmost).

use super::vocab::Vocab;
use alloc::collections::BinaryHeap;
use alloc::vec::Vec;
use core::cmp::Ordering;

/// GPT-2's `bytes_to_unicode`: printable bytes map to themselves, the others to U+0100 up.
pub fn byte_to_char(b: u8) -> char {
    let printable = |x: u8| matches!(x, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable(b) {
        return char::from(b);
    }
    let n = (0..b).filter(|&x| !printable(x)).count() as u32;
    char::from_u32(256 + n).unwrap_or('\u{FFFD}')
}

/// The inverse of [`byte_to_char`].
pub fn char_to_byte(c: char) -> Option<u8> {
    let cp = c as u32;
    if cp < 256 {
        let b = cp as u8;
        return (byte_to_char(b) == c).then_some(b);
    }
    (0..=255u8).find(|&b| byte_to_char(b) == c)
}

/// Appends the byte-level form (UTF-8 of the mapped chars) of `bytes` to `out`.
pub fn encode_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    let mut buf = [0u8; 4];
    for &b in bytes {
        out.extend_from_slice(byte_to_char(b).encode_utf8(&mut buf).as_bytes());
    }
}

/// Merges keyed by the token ids of their two parts.
#[derive(Clone, Debug, Default)]
pub struct MergeTable {
    /// (left id, right id, rank, merged id), sorted by (left, right).
    entries: Vec<(u32, u32, u32, u32)>,
}

impl MergeTable {
    /// Builds the table from "left right" strings in rank order. Merges whose parts or
    /// result are no vocabulary token cannot produce a token and are left out.
    pub fn new<'m>(merges: impl Iterator<Item = &'m str>, vocab: &Vocab) -> MergeTable {
        let mut entries = Vec::new();
        let mut joined = Vec::new();
        for (rank, m) in merges.enumerate() {
            // The separator is the first space after the first byte (llama.cpp: find(' ', 1)).
            let Some(split) = m.bytes().skip(1).position(|b| b == b' ').map(|i| i + 1) else {
                continue;
            };
            let (left, right) = (&m.as_bytes()[..split], &m.as_bytes()[split + 1..]);
            joined.clear();
            joined.extend_from_slice(left);
            joined.extend_from_slice(right);
            if let (Some(l), Some(r), Some(res)) = (
                vocab.lookup(left),
                vocab.lookup(right),
                vocab.lookup(&joined),
            ) {
                entries.push((l, r, rank as u32, res));
            }
        }
        // Stable sort keeps rank order among duplicates; the first (lowest rank) wins.
        entries.sort_by_key(|e| (e.0, e.1));
        entries.dedup_by_key(|e| (e.0, e.1));
        MergeTable { entries }
    }

    /// Number of usable merges.
    pub fn count(&self) -> usize {
        self.entries.len()
    }

    /// (rank, merged id) of merging `left` then `right`.
    fn find(&self, left: u32, right: u32) -> Option<(u32, u32)> {
        let i = self
            .entries
            .binary_search_by(|e| (e.0, e.1).cmp(&(left, right)))
            .ok()?;
        let e = self.entries[i];
        Some((e.2, e.3))
    }
}

const NONE: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Symbol {
    id: u32,
    alive: bool,
    prev: usize,
    next: usize,
}

#[derive(PartialEq, Eq)]
struct Bigram {
    rank: u32,
    left: usize,
    right: usize,
    left_id: u32,
    right_id: u32,
    merged: u32,
}

impl Ord for Bigram {
    // BinaryHeap pops the greatest: make that the lowest rank, then the leftmost.
    fn cmp(&self, other: &Self) -> Ordering {
        other.rank.cmp(&self.rank).then(other.left.cmp(&self.left))
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Merges the initial symbols `ids` (one per byte, `u32::MAX` for a byte with no token)
/// and appends the resulting token ids to `out`.
pub fn merge_word(ids: &[u32], merges: &MergeTable, out: &mut Vec<u32>) {
    let n = ids.len();
    let mut syms: Vec<Symbol> = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| Symbol {
            id,
            alive: true,
            prev: i.wrapping_sub(1),
            next: i + 1,
        })
        .collect();
    let mut heap = BinaryHeap::new();
    let push = |heap: &mut BinaryHeap<Bigram>, syms: &[Symbol], left: usize, right: usize| {
        if left >= n || right >= n {
            return;
        }
        let (l, r) = (syms[left].id, syms[right].id);
        if l == NONE || r == NONE {
            return;
        }
        if let Some((rank, merged)) = merges.find(l, r) {
            heap.push(Bigram {
                rank,
                left,
                right,
                left_id: l,
                right_id: r,
                merged,
            });
        }
    };
    for i in 1..n {
        push(&mut heap, &syms, i - 1, i);
    }
    while let Some(b) = heap.pop() {
        let (l, r) = (syms[b.left], syms[b.right]);
        if !l.alive || !r.alive || l.id != b.left_id || r.id != b.right_id {
            continue; // outdated
        }
        syms[b.left].id = b.merged;
        syms[b.left].next = r.next;
        syms[b.right].alive = false;
        if r.next < n {
            syms[r.next].prev = b.left;
        }
        push(&mut heap, &syms, l.prev, b.left);
        push(&mut heap, &syms, b.left, r.next);
    }
    out.extend(
        syms.iter()
            .filter(|s| s.alive && s.id != NONE)
            .map(|s| s.id),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_mapping_matches_gpt2() {
        assert_eq!(byte_to_char(b'a'), 'a');
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(byte_to_char(0), 'Ā');
        assert_eq!(byte_to_char(0xAD), 'Ń');
        for b in 0..=255u8 {
            assert_eq!(char_to_byte(byte_to_char(b)), Some(b));
        }
        assert_eq!(char_to_byte('€'), None);
    }

    #[test]
    fn merges_apply_by_rank_then_leftmost() {
        let texts: [&[u8]; 7] = [b"a", b"b", b"c", b"ab", b"bc", b"abc", b"ca"];
        let vocab = Vocab::new(texts.iter().copied()).unwrap();
        // "b c" outranks "a b": "abc" -> a + bc, then no "a bc" merge.
        let merges = MergeTable::new(["b c", "a b", "ab c"].into_iter(), &vocab);
        let mut out = Vec::new();
        merge_word(&[0, 1, 2], &merges, &mut out);
        assert_eq!(out, [0, 4]);
        // With "a b" first, "ab c" completes the word.
        let merges = MergeTable::new(["a b", "b c", "ab c"].into_iter(), &vocab);
        out.clear();
        merge_word(&[0, 1, 2], &merges, &mut out);
        assert_eq!(out, [5]);
        // Equal rank tie: leftmost pair first ("a b a b" with only "a b").
        let merges = MergeTable::new(["a b"].into_iter(), &vocab);
        out.clear();
        merge_word(&[0, 1, 0, 1, 2], &merges, &mut out);
        assert_eq!(out, [3, 3, 2]);
    }
}
