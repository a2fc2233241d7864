//! Second-level address translation: the 4-level table walk shared by Intel EPT (`vmx::ept`)
//! and AMD nested page tables (`svm::npt`).
//!
//! Both formats index guest-physical addresses the same way (9 bits a level, 4-KiB tables of
//! 512 little-endian `u64` entries), keep the host-physical address in bits 51:12, mark a 2-MiB
//! leaf with bit 7 and leave bit 52 to software. [`PageTables`] does the walking, table creation,
//! mapping, unmapping, protecting, splitting and translating; an [`EntryFormat`] says how the
//! rights, memory type and table entries are encoded. Tables live in frames handed out by a
//! [`FrameAllocator`]; host tests back it with [`HeapFrameAllocator`].
#![no_std]
#![warn(missing_docs)]

extern crate alloc;

mod error;
mod frames;
mod tables;

pub use error::SlatError;
pub use frames::{FrameAllocator, HeapFrameAllocator};
pub use tables::{EntryFormat, Flush, Leaf, PageSize, PageTables};

/// Bits 51:12 of an entry: the physical address of the next table or of the page.
pub const ADDRESS_MASK: u64 = 0x000F_FFFF_FFFF_F000;
/// Bit 7 of a page-directory entry: a 2-MiB leaf rather than a pointer to a page table.
pub const LARGE_PAGE: u64 = 1 << 7;
/// Software bit 52 (ignored by the CPU in both formats) marking a used entry, so a leaf without
/// any rights stays mapped.
pub const MAPPED: u64 = 1 << 52;

/// The index into the table of `level` (1 = page table ... 4 = PML4) that `gpa` selects.
pub fn index_at(gpa: u64, level: usize) -> usize {
    ((gpa >> (12 + 9 * (level - 1))) & 0x1FF) as usize
}

#[cfg(test)]
mod tests;
