//! Token texts in one owned buffer, with an open-addressing hash index for exact
//! text -> id lookups (no std HashMap in no_std; built in one pass, lookups touch
//! about one slot, so even 262,144 tokens and 151k merges load fast).

use alloc::vec;
use alloc::vec::Vec;

/// The vocabulary's token texts.
#[derive(Clone, Debug)]
pub struct Vocab {
    blob: Vec<u8>,
    /// `offsets[i]..offsets[i + 1]` is token i's text in `blob`.
    offsets: Vec<u32>,
    /// Hash slots: (high hash bits, id + 1); id + 1 == 0 marks an empty slot. For texts
    /// held by several ids the highest id is kept (llama.cpp's text -> id map keeps the
    /// last one written).
    slots: Vec<(u32, u32)>,
}

/// FNV-1a, 64 bits.
fn hash(text: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in text {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl Vocab {
    /// Builds the vocabulary; None when the texts exceed 4 GiB or 2^31 tokens.
    pub fn new<'t>(texts: impl Iterator<Item = &'t [u8]>) -> Option<Vocab> {
        let mut blob = Vec::new();
        let mut offsets = Vec::new();
        offsets.push(0u32);
        for t in texts {
            blob.extend_from_slice(t);
            offsets.push(u32::try_from(blob.len()).ok()?);
        }
        let n = offsets.len() - 1;
        if n >= 1 << 31 {
            return None;
        }
        let n_slots = (2 * n).next_power_of_two().max(16);
        let mut vocab = Vocab {
            blob,
            offsets,
            slots: vec![(0, 0); n_slots],
        };
        for id in 0..n as u32 {
            let text = vocab.text(id);
            if text.is_empty() {
                continue;
            }
            let slot = vocab.find_slot(text);
            vocab.slots[slot] = ((hash(text) >> 32) as u32, id + 1);
        }
        Some(vocab)
    }

    /// The slot holding `text`, or the empty slot where it would go.
    fn find_slot(&self, text: &[u8]) -> usize {
        let h = hash(text);
        let tag = (h >> 32) as u32;
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        loop {
            let (t, id1) = self.slots[i];
            if id1 == 0 || (t == tag && self.text(id1 - 1) == text) {
                return i;
            }
            i = (i + 1) & mask;
        }
    }

    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// The text of `id` (empty for an id out of range).
    pub fn text(&self, id: u32) -> &[u8] {
        let i = id as usize;
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&a), Some(&b)) => &self.blob[a as usize..b as usize],
            _ => &[],
        }
    }

    /// The id whose text is exactly `text`.
    pub fn lookup(&self, text: &[u8]) -> Option<u32> {
        if text.is_empty() {
            return None;
        }
        self.slots[self.find_slot(text)].1.checked_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_exact_texts_and_last_duplicate() {
        let texts: [&[u8]; 5] = [b"b", b"a", b"ab", b"a", b""];
        let v = Vocab::new(texts.iter().copied()).unwrap();
        assert_eq!(v.len(), 5);
        assert_eq!(v.lookup(b"a"), Some(3));
        assert_eq!(v.lookup(b"ab"), Some(2));
        assert_eq!(v.lookup(b"b"), Some(0));
        assert_eq!(v.lookup(b"abc"), None);
        assert_eq!(v.lookup(b""), None);
        assert_eq!(v.text(2), b"ab");
        assert_eq!(v.text(9), b"");
    }
}
