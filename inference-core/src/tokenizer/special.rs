//! Special-token partition (llama.cpp's `tokenizer_st_partition`): before any
//! pre-tokenization the text is cut at occurrences of control / user-defined / unknown
//! token texts, longest token text first, each leftmost-first without overlap.
//!
//! llama.cpp searches the whole text once per special token, which costs (number of special
//! tokens) x (text length): Gemma 3 has 6,414 of them, so a guest's megabyte of `<unused`
//! took seconds. Here one pass of an Aho-Corasick automaton over the text finds the special
//! tokens that start at each position, and the candidates are then taken in llama.cpp's order
//! (token by token, each left to right): the same fragments in O(text length) plus a sort of
//! the candidates.

use super::vocab::Vocab;
use alloc::collections::BinaryHeap;
use alloc::vec;
use alloc::vec::Vec;
use core::cmp::Reverse;
use core::ops::Range;

/// A piece of the input: raw text (a byte range of it) or an already known token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fragment {
    Text(Range<usize>),
    Token(u32),
}

const NONE: u32 = u32::MAX;

/// The special tokens of a vocabulary in the order they are searched for (longest text first,
/// ties by id), with an Aho-Corasick automaton of their texts read backwards: run from the end
/// of a text to its start, its state at a position names the special texts that start there.
#[derive(Clone, Debug)]
pub struct Specials {
    /// Token ids by rank (the search order).
    ids: Vec<u32>,
    /// The trie node of each rank's text.
    node_of: Vec<u32>,
    /// Trie nodes of the reversed texts; 0 is the root (the empty text).
    nodes: Vec<Node>,
    /// (byte, child) edges; each node's are a run sorted by byte.
    edges: Vec<(u8, u32)>,
    /// The ranks whose text ends at a node (several when texts repeat), ascending per node.
    ranks: Vec<u32>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Node {
    edges: (u32, u32),
    ranks: (u32, u32),
    /// Length of the node's text.
    len: u32,
    /// The longest proper suffix of the node's (reversed) text that is a node.
    fail: u32,
    /// The node of the longest special text that is a proper prefix of this node's (read
    /// forwards), NONE when there is none: the next shorter special text at a position.
    shorter: u32,
}

impl Specials {
    /// Indexes the non-empty texts of `ids`.
    pub fn new(ids: impl Iterator<Item = u32>, vocab: &Vocab) -> Specials {
        let mut ids: Vec<u32> = ids.filter(|&id| !vocab.text(id).is_empty()).collect();
        ids.sort_by_key(|&id| (Reverse(vocab.text(id).len()), id));
        // The trie, built with per-node vectors and then flattened.
        let mut children: Vec<Vec<(u8, u32)>> = vec![Vec::new()];
        let mut ends: Vec<Vec<u32>> = vec![Vec::new()];
        let mut node_of = Vec::with_capacity(ids.len());
        for (rank, &id) in ids.iter().enumerate() {
            let mut node = 0usize;
            for &b in vocab.text(id).iter().rev() {
                node = match children[node].iter().find(|e| e.0 == b) {
                    Some(&(_, c)) => c as usize,
                    None => {
                        let c = children.len();
                        children[node].push((b, c as u32));
                        children.push(Vec::new());
                        ends.push(Vec::new());
                        c
                    }
                };
            }
            ends[node].push(rank as u32);
            node_of.push(node as u32);
        }
        let mut sp = Specials {
            ids,
            node_of,
            nodes: vec![Node::default(); children.len()],
            edges: Vec::new(),
            ranks: Vec::new(),
        };
        for (i, (kids, ends)) in children.iter_mut().zip(&ends).enumerate() {
            kids.sort_unstable();
            let start = sp.edges.len() as u32;
            sp.edges.extend_from_slice(kids);
            sp.nodes[i].edges = (start, sp.edges.len() as u32);
            let start = sp.ranks.len() as u32;
            sp.ranks.extend_from_slice(ends);
            sp.nodes[i].ranks = (start, sp.ranks.len() as u32);
        }
        // Failure links breadth first (a node's fail is shallower, so it is done before it).
        sp.nodes[0].shorter = NONE;
        let mut queue = alloc::collections::VecDeque::from([0u32]);
        while let Some(u) = queue.pop_front() {
            let (s, e) = sp.nodes[u as usize].edges;
            for k in s..e {
                let (b, v) = sp.edges[k as usize];
                let fail = if u == 0 {
                    0
                } else {
                    sp.step(sp.nodes[u as usize].fail, b)
                };
                let (f, len) = (sp.nodes[fail as usize], sp.nodes[u as usize].len + 1);
                let n = &mut sp.nodes[v as usize];
                n.len = len;
                n.fail = fail;
                n.shorter = if f.ranks.0 < f.ranks.1 {
                    fail
                } else {
                    f.shorter
                };
                queue.push_back(v);
            }
        }
        sp
    }

    fn child(&self, node: u32, b: u8) -> Option<u32> {
        let (s, e) = self.nodes[node as usize].edges;
        let edges = &self.edges[s as usize..e as usize];
        edges
            .binary_search_by_key(&b, |e| e.0)
            .ok()
            .map(|i| edges[i].1)
    }

    /// The automaton's next state from `node` on byte `b`.
    fn step(&self, mut node: u32, b: u8) -> u32 {
        loop {
            if let Some(c) = self.child(node, b) {
                return c;
            }
            if node == 0 {
                return 0;
            }
            node = self.nodes[node as usize].fail;
        }
    }

    /// The first rank not skipped at `node` or its shorter special texts.
    fn candidate(&self, mut node: u32, skip: &impl Fn(u32) -> bool) -> Option<u32> {
        while node != NONE {
            let (s, e) = self.nodes[node as usize].ranks;
            let ranks = &self.ranks[s as usize..e as usize];
            if let Some(&r) = ranks.iter().find(|&&r| !skip(self.ids[r as usize])) {
                return Some(r);
            }
            node = self.nodes[node as usize].shorter;
        }
        None
    }
}

/// Splits `text` at the special tokens. `skip(id)` tells which of them to leave as text
/// (control tokens when not parsing special tokens).
///
/// The fragments are those of llama.cpp's loop: for each token in rank order, each text fragment
/// is cut at the token's leftmost non-overlapping occurrences. Here every position holds one
/// candidate, its longest special text not yet ruled out, taken in (rank, position) order; a
/// candidate is taken when its first and last bytes are still text (an earlier token, being no
/// shorter, that overlaps it covers one of them), and otherwise gives way to the next shorter
/// special text at its position.
pub fn partition(text: &str, specials: &Specials, skip: impl Fn(u32) -> bool) -> Vec<Fragment> {
    let bytes = text.as_bytes();
    // Each position's longest special text, in (rank, position) order; the shorter ones that
    // come up later join through `again`, a priority queue (rarely used: only a candidate
    // blocked at its end by an earlier token brings one).
    let mut cands = Vec::new();
    let mut state = 0;
    for p in (0..bytes.len()).rev() {
        state = specials.step(state, bytes[p]);
        let n = specials.nodes[state as usize];
        let longest = if n.ranks.0 < n.ranks.1 {
            state
        } else {
            n.shorter
        };
        if let Some(r) = specials.candidate(longest, &skip) {
            cands.push((r, p));
        }
    }
    cands.sort_unstable();
    let mut taken = vec![false; if cands.is_empty() { 0 } else { bytes.len() }];
    let mut cands = cands.into_iter().peekable();
    let mut again = BinaryHeap::new();
    let mut found: Vec<(usize, u32)> = Vec::new();
    loop {
        let next = match (cands.peek(), again.peek()) {
            (Some(c), Some(Reverse(a))) if a < c => again.pop().map(|Reverse(a)| a),
            (Some(_), _) => cands.next(),
            (None, _) => again.pop().map(|Reverse(a)| a),
        };
        let Some((r, p)) = next else { break };
        if taken[p] {
            continue;
        }
        let node = specials.nodes[specials.node_of[r as usize] as usize];
        let end = p + node.len as usize;
        if !taken[end - 1] {
            taken[p..end].fill(true);
            found.push((p, r));
        } else if let Some(r) = specials.candidate(node.shorter, &skip) {
            again.push(Reverse((r, p)));
        }
    }
    found.sort_unstable_by_key(|f| f.0);
    let mut frags = Vec::with_capacity(2 * found.len() + 1);
    let mut at = 0;
    for (p, r) in found {
        if p > at {
            frags.push(Fragment::Text(at..p));
        }
        frags.push(Fragment::Token(specials.ids[r as usize]));
        at = p + specials.nodes[specials.node_of[r as usize] as usize].len as usize;
    }
    if at < bytes.len() {
        frags.push(Fragment::Text(at..bytes.len()));
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
    specials: &Specials,
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
            for f in partition(piece, specials, &skip) {
                push(match f {
                    Fragment::Text(r) => Fragment::Text(r.start + part.start..r.end + part.start),
                    token => token,
                });
            }
        }
        if i == 0 && !literal.is_empty() {
            let piece = &text[literal.clone()];
            for f in partition(piece, specials, &skip_in_literal) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// llama.cpp's loop as it was written here before the trie: one search per special token.
    fn partition_naive(
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
        for &id in specials {
            let needle = vocab.text(id);
            if needle.is_empty() || skip(id) {
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

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        let last_start = hay.len().checked_sub(needle.len())?;
        (0..=last_start).find(|&i| &hay[i..i + needle.len()] == needle)
    }

    #[test]
    fn longest_special_first_and_skips() {
        let texts: [&[u8]; 4] = [b"<a>", b"<a><b>", b"x", b"<b>"];
        let vocab = Vocab::new(texts.iter().copied()).unwrap();
        let specials = Specials::new([1, 0, 3].into_iter(), &vocab);
        let t = "x<a><b>y<a>z<b>";
        let f = partition(t, &specials, |_| false);
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
        let f = partition(t, &specials, |id| id == 1);
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
        assert_eq!(partition("", &specials, |_| false), []);
        assert_eq!(partition("<a", &specials, |_| false), [Text(0..2)]);
    }

    #[test]
    fn a_literal_range_holds_no_special_token() {
        let texts: [&[u8]; 3] = [b"<a>", b"<b>", b"x"];
        let vocab = Vocab::new(texts.iter().copied()).unwrap();
        let specials = Specials::new([0, 1].into_iter(), &vocab);
        use Fragment::*;
        // "<a>" inside the literal (4..11) stays text; the ones outside are tokens.
        let t = "<a>u<b><a>vw<a>";
        let f = partition_with_literal(t, 3..12, &specials, |_| false, |_| true);
        assert_eq!(f, [Token(0), Text(3..12), Token(0)]);
        // A literal whose edge cuts a special-token text: "<a>" across it is no token, the "<b>"
        // after it still is.
        let f = partition_with_literal("q<a><b>", 0..2, &specials, |_| false, |_| true);
        assert_eq!(
            f,
            [Text(0..4), Token(1)],
            "q< is literal, a> text, <b> a token"
        );
        // Without special-token text in the literal: exactly `partition`.
        let t = "<a>user: x y<b>";
        assert_eq!(
            partition_with_literal(t, 9..12, &specials, |_| false, |_| true),
            partition(t, &specials, |_| false)
        );
        assert_eq!(
            partition_with_literal(t, 0..0, &specials, |_| false, |_| true),
            partition(t, &specials, |_| false)
        );
        // What the literal may still hold: here `<b>` (as a plain-whitespace token would be).
        let f = partition_with_literal("x<a><b>y", 0..8, &specials, |_| false, |id| id != 1);
        assert_eq!(f, [Text(0..4), Token(1), Text(7..8)]);
        // Ranges past the end or inside a character are clamped and widened, never a panic.
        let f = partition_with_literal("é<a>", 1..99, &specials, |_| false, |_| true);
        assert_eq!(f, [Text(0..5)]);
    }

    #[test]
    fn same_fragments_as_one_search_per_token() {
        // Texts over a two-letter alphabet overlap, repeat and nest in every way; ids 0..2 are
        // plain, the rest special (with a repeated text and ties in length).
        let texts: [&[u8]; 14] = [
            b"a",
            b"b",
            b"ab",
            b"aa",
            b"ab",
            b"ba",
            b"aab",
            b"aba",
            b"bab",
            b"abab",
            b"aaaa",
            b"bb",
            b"babba",
            b"\xc3\xa9",
        ];
        let vocab = Vocab::new(texts.iter().copied()).unwrap();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..3000 {
            // A random subset of the specials, and a random skip mask.
            let subset: Vec<u32> = (2..texts.len() as u32).filter(|_| next(3) > 0).collect();
            let mut naive_order = subset.clone();
            naive_order.sort_by_key(|&id| (core::cmp::Reverse(vocab.text(id).len()), id));
            let mask = next(1 << 14);
            let skip = |id: u32| mask >> id & 1 == 1 && round % 2 == 0;
            let len = next(40) as usize;
            let text: alloc::string::String = (0..len)
                .map(|_| ['a', 'b', 'é', 'x'][next(if round % 3 == 0 { 4 } else { 2 }) as usize])
                .collect();
            let specials = Specials::new(subset.iter().copied(), &vocab);
            assert_eq!(
                partition(&text, &specials, skip),
                partition_naive(&text, &naive_order, &vocab, skip),
                "{text:?} specials {subset:?} mask {mask:b}"
            );
        }
    }
}
