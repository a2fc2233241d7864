//! The generic 4-level table walk.

use crate::{index_at, FrameAllocator, SlatError, ADDRESS_MASK, LARGE_PAGE, MAPPED};
use core::marker::PhantomData;

/// How one second-level format encodes what differs between EPT and nested page tables.
///
/// Rights and memory types are passed around already encoded, as the bits they occupy in a
/// leaf entry; the address, [`LARGE_PAGE`] and [`MAPPED`] are added by [`PageTables`].
pub trait EntryFormat {
    /// Flag bits of a non-leaf (table) entry besides its address and [`MAPPED`]: everything
    /// allowed, so the leaves alone restrict.
    const TABLE_FLAGS: u64;
    /// Flag bits set in every leaf entry whatever its rights and memory type.
    const LEAF_FLAGS: u64;
    /// The bits of a leaf entry that hold its access rights; [`PageTables::protect`] replaces
    /// exactly these.
    const RIGHTS_MASK: u64;

    /// The leaf entry mapping the page at `hpa` with `rights` and `memory_type` (both already
    /// in their entry bit positions), a 2-MiB page when `large`.
    fn leaf_entry(hpa: u64, rights: u64, memory_type: u64, large: bool) -> u64 {
        let large = if large { LARGE_PAGE } else { 0 };
        hpa | rights | Self::LEAF_FLAGS | memory_type | large | MAPPED
    }

    /// Whether replacing the rights bits `old` by `new` (both within [`Self::RIGHTS_MASK`])
    /// takes away an access, so cached translations must be flushed.
    fn removes_rights(old: u64, new: u64) -> bool;
}

/// Page sizes the builder maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageSize {
    /// 4 KiB, a PTE.
    Size4K,
    /// 2 MiB, a PDE with bit 7 (PS).
    Size2M,
}

impl PageSize {
    /// Size in bytes.
    pub fn bytes(self) -> u64 {
        match self {
            Self::Size4K => 1 << 12,
            Self::Size2M => 1 << 21,
        }
    }

    fn level(self) -> usize {
        match self {
            Self::Size4K => 1,
            Self::Size2M => 2,
        }
    }
}

/// What the caller must do after changing existing mappings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flush {
    /// Rights were only widened: a stale cached entry at most causes a fault that refetches.
    NotNeeded,
    /// Rights were removed or a mapping dropped or split: flush the cached translations
    /// (INVEPT for EPT, an ASID flush for nested paging).
    Needed,
}

/// The leaf that translates a guest-physical address (see [`PageTables::translate`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// Host-physical address of the byte.
    pub hpa: u64,
    /// The raw leaf entry, for the format to decode rights and memory type from.
    pub entry: u64,
    /// Size of the leaf page.
    pub size: PageSize,
}

/// A 4-level second-level table hierarchy in format `F`; owns its frame allocator.
#[derive(Debug)]
pub struct PageTables<F: EntryFormat, A: FrameAllocator> {
    alloc: A,
    pml4: u64,
    format: PhantomData<F>,
}

impl<F: EntryFormat, A: FrameAllocator> PageTables<F, A> {
    /// Allocates an empty PML4.
    pub fn new(mut alloc: A) -> Result<Self, SlatError> {
        let pml4 = alloc.alloc_zeroed_frame().ok_or(SlatError::OutOfFrames)?;
        Ok(Self {
            alloc,
            pml4,
            format: PhantomData,
        })
    }

    /// Physical address of the PML4 table.
    pub fn pml4_phys(&self) -> u64 {
        self.pml4
    }

    /// The allocator, e.g. to inspect frames in tests.
    pub fn allocator(&self) -> &A {
        &self.alloc
    }

    /// Maps one page of `size` at `gpa` to `hpa` with the encoded `rights` and `memory_type`.
    pub fn map(
        &mut self,
        gpa: u64,
        hpa: u64,
        size: PageSize,
        rights: u64,
        memory_type: u64,
    ) -> Result<(), SlatError> {
        check_addresses(gpa, hpa, size)?;
        let (table, index) = self.walk(gpa, size, true)?;
        let slot = &mut self.table_mut(table)?[index];
        if *slot & MAPPED != 0 {
            return Err(SlatError::AlreadyMapped(gpa));
        }
        *slot = F::leaf_entry(hpa, rights, memory_type, size == PageSize::Size2M);
        Ok(())
    }

    /// Maps `len` bytes (rounded up to 4 KiB), using 2-MiB pages wherever both addresses allow.
    pub fn map_range(
        &mut self,
        gpa: u64,
        hpa: u64,
        len: u64,
        rights: u64,
        memory_type: u64,
    ) -> Result<(), SlatError> {
        let end = gpa
            .checked_add(len)
            .ok_or(SlatError::AddressTooLarge(gpa))?;
        let (mut g, mut h) = (gpa, hpa);
        while g < end {
            let big = PageSize::Size2M.bytes();
            let size = if (g | h) & (big - 1) == 0 && end - g >= big {
                PageSize::Size2M
            } else {
                PageSize::Size4K
            };
            self.map(g, h, size, rights, memory_type)?;
            g += size.bytes();
            h += size.bytes();
        }
        Ok(())
    }

    /// Removes the page of `size` at `gpa`. Always needs a flush afterwards.
    pub fn unmap(&mut self, gpa: u64, size: PageSize) -> Result<Flush, SlatError> {
        let (table, index) = self.leaf(gpa, size)?;
        self.table_mut(table)?[index] = 0;
        Ok(Flush::Needed)
    }

    /// Replaces the access rights (the [`EntryFormat::RIGHTS_MASK`] bits) of the page of `size`
    /// at `gpa` by the encoded `rights`.
    pub fn protect(&mut self, gpa: u64, size: PageSize, rights: u64) -> Result<Flush, SlatError> {
        let (table, index) = self.leaf(gpa, size)?;
        let slot = &mut self.table_mut(table)?[index];
        let old = *slot & F::RIGHTS_MASK;
        *slot = (*slot & !F::RIGHTS_MASK) | rights;
        Ok(if F::removes_rights(old, rights) {
            Flush::Needed
        } else {
            Flush::NotNeeded
        })
    }

    /// Replaces the 2-MiB page at `gpa` by a page table of 512 4-KiB pages with the same
    /// translation, rights and memory type, so parts of it can be protected separately.
    pub fn split_2m(&mut self, gpa: u64) -> Result<Flush, SlatError> {
        let (table, index) = self.leaf(gpa, PageSize::Size2M)?;
        let large = self.table_mut(table)?[index];
        let frame = self
            .alloc
            .alloc_zeroed_frame()
            .ok_or(SlatError::OutOfFrames)?;
        let small_flags = large & !ADDRESS_MASK & !LARGE_PAGE;
        let base = large & ADDRESS_MASK;
        for (i, slot) in self.table_mut(frame)?.iter_mut().enumerate() {
            *slot = (base + ((i as u64) << 12)) | small_flags;
        }
        self.table_mut(table)?[index] = frame | F::TABLE_FLAGS | MAPPED;
        Ok(Flush::Needed)
    }

    /// Walks the tables like the CPU would and returns the leaf translating `gpa`, also for a
    /// leaf without rights (so a fault handler can see what is there).
    pub fn translate(&self, gpa: u64) -> Option<Leaf> {
        if gpa >> 48 != 0 {
            return None;
        }
        let mut table = self.pml4;
        for level in (1..=4).rev() {
            let entry = self.alloc.phys_to_virt(table)?[index_at(gpa, level)];
            if entry & MAPPED == 0 {
                return None;
            }
            if level == 1 || (level == 2 && entry & LARGE_PAGE != 0) {
                let size = if level == 1 {
                    PageSize::Size4K
                } else {
                    PageSize::Size2M
                };
                let page = entry & ADDRESS_MASK & !(size.bytes() - 1);
                return Some(Leaf {
                    hpa: page | (gpa & (size.bytes() - 1)),
                    entry,
                    size,
                });
            }
            table = entry & ADDRESS_MASK;
        }
        None
    }

    fn table_mut(&mut self, phys: u64) -> Result<&mut [u64; 512], SlatError> {
        self.alloc
            .phys_to_virt_mut(phys)
            .ok_or(SlatError::UnknownFrame(phys))
    }

    /// The existing leaf slot for a page of `size` at `gpa`.
    fn leaf(&mut self, gpa: u64, size: PageSize) -> Result<(u64, usize), SlatError> {
        check_addresses(gpa, 0, size)?;
        let (table, index) = self.walk(gpa, size, false)?;
        let entry = self.table_mut(table)?[index];
        if entry & MAPPED == 0 {
            return Err(SlatError::NotMapped(gpa));
        }
        if size == PageSize::Size2M && entry & LARGE_PAGE == 0 {
            return Err(SlatError::SizeMismatch(gpa));
        }
        Ok((table, index))
    }

    /// Walks down to the table holding the entry for `size`, creating tables when `create`.
    fn walk(&mut self, gpa: u64, size: PageSize, create: bool) -> Result<(u64, usize), SlatError> {
        let mut table = self.pml4;
        for level in ((size.level() + 1)..=4).rev() {
            let index = index_at(gpa, level);
            let entry = self.table_mut(table)?[index];
            if entry & MAPPED == 0 {
                if !create {
                    return Err(SlatError::NotMapped(gpa));
                }
                let frame = self
                    .alloc
                    .alloc_zeroed_frame()
                    .ok_or(SlatError::OutOfFrames)?;
                self.table_mut(table)?[index] = frame | F::TABLE_FLAGS | MAPPED;
                table = frame;
            } else if entry & LARGE_PAGE != 0 {
                return Err(SlatError::SizeMismatch(gpa));
            } else {
                table = entry & ADDRESS_MASK;
            }
        }
        Ok((table, index_at(gpa, size.level())))
    }
}

fn check_addresses(gpa: u64, hpa: u64, size: PageSize) -> Result<(), SlatError> {
    if gpa >> 48 != 0 {
        return Err(SlatError::AddressTooLarge(gpa));
    }
    if hpa >> 52 != 0 {
        return Err(SlatError::AddressTooLarge(hpa));
    }
    for addr in [gpa, hpa] {
        if addr & (size.bytes() - 1) != 0 {
            return Err(SlatError::Misaligned(addr));
        }
    }
    Ok(())
}
