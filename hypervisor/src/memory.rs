//! Physical memory range arithmetic: turning the boot memory map into the RAM the heap may use.
//!
//! Works without a heap (fixed-capacity sets), because it runs before the heap exists.

use core::fmt;

/// Half-open physical address range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    /// `[start, end)`; an `end` below `start` gives the empty range at `start`.
    pub const fn new(start: u64, end: u64) -> Self {
        Self {
            start,
            end: if end < start { start } else { end },
        }
    }

    /// `[start, start + len)`, saturating at the top of the address space.
    pub const fn from_len(start: u64, len: u64) -> Self {
        Self::new(start, start.saturating_add(len))
    }

    pub const fn len(&self) -> u64 {
        self.end - self.start
    }

    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// True when the two ranges share at least one byte.
    pub const fn overlaps(&self, other: &Range) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// The largest sub-range whose ends are multiples of `align` (a power of two), possibly empty.
    pub fn align_inward(&self, align: u64) -> Range {
        let mask = align - 1;
        let start = self.start.checked_add(mask).map_or(!mask, |s| s & !mask);
        Range::new(start, self.end & !mask)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#012x}, {:#012x})", self.start, self.end)
    }
}

/// Why a range set operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryError {
    /// The set would need more than its fixed capacity of disjoint ranges.
    TooManyRanges { capacity: usize },
}

impl fmt::Display for MemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyRanges { capacity } => {
                write!(
                    f,
                    "the memory map splits into more than {capacity} disjoint ranges"
                )
            }
        }
    }
}

/// A sorted set of disjoint, non-adjacent, non-empty ranges with room for `N` of them.
#[derive(Debug, Clone, Copy)]
pub struct RangeSet<const N: usize> {
    ranges: [Range; N],
    len: usize,
}

impl<const N: usize> Default for RangeSet<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> RangeSet<N> {
    pub const fn new() -> Self {
        Self {
            ranges: [Range { start: 0, end: 0 }; N],
            len: 0,
        }
    }

    pub fn as_slice(&self) -> &[Range] {
        &self.ranges[..self.len]
    }

    pub fn total_bytes(&self) -> u64 {
        self.as_slice().iter().map(Range::len).sum()
    }

    /// Adds `range`, merging it with every range it overlaps or touches.
    pub fn insert(&mut self, range: Range) -> Result<(), MemoryError> {
        if range.is_empty() {
            return Ok(());
        }
        let mut merged = range;
        let mut kept = [Range::default(); N];
        let mut kept_len = 0;
        for existing in self.as_slice() {
            if existing.start <= merged.end && merged.start <= existing.end {
                merged = Range::new(
                    merged.start.min(existing.start),
                    merged.end.max(existing.end),
                );
            } else {
                kept[kept_len] = *existing;
                kept_len += 1;
            }
        }
        if kept_len == N {
            return Err(MemoryError::TooManyRanges { capacity: N });
        }
        let at = kept[..kept_len].partition_point(|r| r.start < merged.start);
        kept.copy_within(at..kept_len, at + 1);
        kept[at] = merged;
        self.ranges = kept;
        self.len = kept_len + 1;
        Ok(())
    }

    /// Removes every byte of `range` from the set, splitting a range that contains it.
    pub fn remove(&mut self, range: Range) -> Result<(), MemoryError> {
        if range.is_empty() {
            return Ok(());
        }
        let mut out = Self::new();
        for existing in self.as_slice() {
            if !existing.overlaps(&range) {
                out.push_sorted(*existing)?;
                continue;
            }
            let below = Range::new(existing.start, range.start.min(existing.end));
            let above = Range::new(range.end.max(existing.start), existing.end);
            for piece in [below, above] {
                if !piece.is_empty() {
                    out.push_sorted(piece)?;
                }
            }
        }
        *self = out;
        Ok(())
    }

    /// Shrinks every range to `align` boundaries (a power of two) and drops those that become empty.
    pub fn align_inward(&mut self, align: u64) {
        let mut out = Self::new();
        for range in self.as_slice() {
            let aligned = range.align_inward(align);
            if !aligned.is_empty() {
                // Shrinking never adds ranges, so this cannot exceed the capacity.
                let _ = out.push_sorted(aligned);
            }
        }
        *self = out;
    }

    /// The parts of the set inside `window`.
    pub fn clipped_to(&self, window: Range) -> Self {
        let mut out = Self::new();
        for range in self.as_slice() {
            let piece = Range::new(range.start.max(window.start), range.end.min(window.end));
            if !piece.is_empty() {
                // A subset of an existing set never exceeds its capacity.
                let _ = out.push_sorted(piece);
            }
        }
        out
    }

    fn push_sorted(&mut self, range: Range) -> Result<(), MemoryError> {
        if self.len == N {
            return Err(MemoryError::TooManyRanges { capacity: N });
        }
        self.ranges[self.len] = range;
        self.len += 1;
        Ok(())
    }
}

/// One memory map entry as the heap setup needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapEntry {
    pub range: Range,
    pub available: bool,
}

/// RAM the allocator may use: the available entries, minus every non-available entry (a reserved entry wins
/// where the map overlaps itself), minus `reserved` (kernel image, boot info, modules, low memory),
/// shrunk to 4 KiB pages.
pub fn usable_ram<const N: usize>(
    map: impl Iterator<Item = MapEntry> + Clone,
    reserved: &[Range],
) -> Result<RangeSet<N>, MemoryError> {
    let mut set = RangeSet::<N>::new();
    for entry in map.clone().filter(|e| e.available) {
        set.insert(entry.range)?;
    }
    for entry in map.filter(|e| !e.available) {
        set.remove(entry.range)?;
    }
    for range in reserved {
        set.remove(*range)?;
    }
    set.align_inward(4096);
    Ok(set)
}

/// Exclusive top of the identity map: the highest end of any map entry, at least 4 GiB (so the MMIO below
/// 4 GiB is reachable), rounded up to 1 GiB, and no higher than the physical address width allows
/// (`physical_address_bits`, MAXPHYADDR: a page entry with an address beyond it has reserved bits set).
pub fn identity_map_top(map: impl Iterator<Item = MapEntry>, physical_address_bits: u8) -> u64 {
    const GIB: u64 = 1 << 30;
    let highest = map.map(|e| e.range.end).max().unwrap_or(0).max(4 * GIB);
    let rounded = highest.checked_next_multiple_of(GIB).unwrap_or(!(GIB - 1));
    let limit = 1u64
        .checked_shl(u32::from(physical_address_bits.clamp(32, 63)))
        .unwrap_or(u64::MAX);
    rounded.min(limit & !(GIB - 1))
}

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;
