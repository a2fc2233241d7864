//! 4-level EPT (extended page tables) builder (SDM Vol. 3, 29.3).
//!
//! Tables live in frames handed out by a [`FrameAllocator`]; host tests back it with
//! [`HeapFrameAllocator`]. Each table is 512 little-endian `u64` entries.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

/// A source of zeroed 4-KiB frames for EPT tables.
pub trait FrameAllocator {
    /// Allocates a zeroed, 4-KiB aligned frame and returns its host-physical address.
    fn alloc_zeroed_frame(&mut self) -> Option<u64>;
    /// The table stored in the frame at `phys` (the phys-to-virt mapping), or None if unknown.
    fn phys_to_virt(&self, phys: u64) -> Option<&[u64; 512]>;
    /// Mutable access to the table stored in the frame at `phys`.
    fn phys_to_virt_mut(&mut self, phys: u64) -> Option<&mut [u64; 512]>;
}

/// Heap-backed frames with made-up physical addresses (`base + index * 4096`), for host tests.
#[derive(Debug)]
pub struct HeapFrameAllocator {
    base: u64,
    limit: usize,
    frames: Vec<Box<[u64; 512]>>,
}

impl HeapFrameAllocator {
    /// At most `limit` frames, the first at the 4-KiB aligned physical address `base`.
    pub fn new(base: u64, limit: usize) -> Self {
        Self {
            base: base & !0xFFF,
            limit,
            frames: Vec::new(),
        }
    }

    /// Frames handed out so far.
    pub fn allocated(&self) -> usize {
        self.frames.len()
    }

    fn index(&self, phys: u64) -> Option<usize> {
        let offset = phys.checked_sub(self.base)?;
        if offset & 0xFFF != 0 {
            return None;
        }
        let index = usize::try_from(offset >> 12).ok()?;
        (index < self.frames.len()).then_some(index)
    }
}

impl FrameAllocator for HeapFrameAllocator {
    fn alloc_zeroed_frame(&mut self) -> Option<u64> {
        if self.frames.len() >= self.limit {
            return None;
        }
        self.frames.push(Box::new([0; 512]));
        Some(self.base + ((self.frames.len() as u64 - 1) << 12))
    }

    fn phys_to_virt(&self, phys: u64) -> Option<&[u64; 512]> {
        self.index(phys).map(|i| &*self.frames[i])
    }

    fn phys_to_virt_mut(&mut self, phys: u64) -> Option<&mut [u64; 512]> {
        self.index(phys).map(|i| &mut *self.frames[i])
    }
}

/// EPT access rights (bits 2:0 of an entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EptPerms(u8);

impl EptPerms {
    /// No access.
    pub const NONE: Self = Self(0);
    /// Read.
    pub const R: Self = Self(1);
    /// Read + write.
    pub const RW: Self = Self(3);
    /// Read + execute.
    pub const RX: Self = Self(5);
    /// Read + write + execute.
    pub const RWX: Self = Self(7);

    /// Builds rights from flags. Write without read is a misconfiguration and is refused.
    pub fn new(read: bool, write: bool, execute: bool) -> Result<Self, EptError> {
        if write && !read {
            return Err(EptError::WriteWithoutRead);
        }
        Ok(Self(read as u8 | (write as u8) << 1 | (execute as u8) << 2))
    }
    /// Read allowed.
    pub fn read(self) -> bool {
        self.0 & 1 != 0
    }
    /// Write allowed.
    pub fn write(self) -> bool {
        self.0 & 2 != 0
    }
    /// Execute allowed.
    pub fn execute(self) -> bool {
        self.0 & 4 != 0
    }
    /// The raw bits 2:0.
    pub fn bits(self) -> u8 {
        self.0
    }
}

/// EPT memory type of a leaf entry (bits 5:3) or of the EPTP (bits 2:0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EptMemoryType {
    /// Uncacheable (0), for MMIO.
    Uncacheable = 0,
    /// Write-back (6), for RAM.
    WriteBack = 6,
}

/// Page sizes the builder maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageSize {
    /// 4 KiB, a PTE.
    Size4K,
    /// 2 MiB, a PDE with bit 7.
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
    /// Rights were only widened: stale entries at most cause an EPT violation that refetches.
    NotNeeded,
    /// Rights were removed or a mapping dropped: run INVEPT for this EPTP.
    NeedsInvept,
}

/// EPT builder failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EptError {
    /// The frame allocator is exhausted.
    OutOfFrames,
    /// An address is not aligned to the page size.
    Misaligned(u64),
    /// A guest-physical address beyond the 48 bits a 4-level walk covers, or a host-physical one beyond 52.
    AddressTooLarge(u64),
    /// The guest-physical page (or part of it) is already mapped.
    AlreadyMapped(u64),
    /// Nothing is mapped at that guest-physical address with that page size.
    NotMapped(u64),
    /// A page of the other size covers that guest-physical address (no splitting or merging).
    SizeMismatch(u64),
    /// The allocator does not know a table frame the walk reached.
    UnknownFrame(u64),
    /// Write access requested without read (an EPT misconfiguration).
    WriteWithoutRead,
}

impl fmt::Display for EptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfFrames => write!(f, "EPT: out of frames for page tables"),
            Self::Misaligned(a) => write!(f, "EPT: address {a:#x} is not aligned to the page size"),
            Self::AddressTooLarge(a) => write!(f, "EPT: address {a:#x} is out of range"),
            Self::AlreadyMapped(a) => write!(f, "EPT: guest-physical {a:#x} is already mapped"),
            Self::NotMapped(a) => write!(
                f,
                "EPT: guest-physical {a:#x} is not mapped with that page size"
            ),
            Self::SizeMismatch(a) => write!(
                f,
                "EPT: guest-physical {a:#x} is mapped with a different page size"
            ),
            Self::UnknownFrame(a) => {
                write!(f, "EPT: table frame {a:#x} is unknown to the allocator")
            }
            Self::WriteWithoutRead => write!(f, "EPT: write access without read access"),
        }
    }
}

/// The result of [`Ept::translate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// Host-physical address of the byte.
    pub hpa: u64,
    /// Access rights of the leaf.
    pub perms: EptPerms,
    /// Memory type of the leaf (None for a reserved encoding).
    pub memory_type: Option<EptMemoryType>,
    /// Size of the leaf page.
    pub size: PageSize,
}

const ADDRESS_MASK: u64 = 0x000F_FFFF_FFFF_F000;
const LARGE_PAGE: u64 = 1 << 7;
/// Software bit (bit 52 is ignored by the CPU) marking a used entry, so NONE rights stay mapped.
const SOFTWARE_PRESENT: u64 = 1 << 52;
const TABLE_ENTRY_RIGHTS: u64 = 7;

fn index_at(gpa: u64, level: usize) -> usize {
    ((gpa >> (12 + 9 * (level - 1))) & 0x1FF) as usize
}

/// A 4-level EPT hierarchy; owns its frame allocator.
#[derive(Debug)]
pub struct Ept<A: FrameAllocator> {
    alloc: A,
    pml4: u64,
}

impl<A: FrameAllocator> Ept<A> {
    /// Allocates an empty PML4.
    pub fn new(mut alloc: A) -> Result<Self, EptError> {
        let pml4 = alloc.alloc_zeroed_frame().ok_or(EptError::OutOfFrames)?;
        Ok(Self { alloc, pml4 })
    }

    /// Physical address of the PML4 table.
    pub fn pml4_phys(&self) -> u64 {
        self.pml4
    }

    /// The allocator, e.g. to inspect frames in tests.
    pub fn allocator(&self) -> &A {
        &self.alloc
    }

    /// The EPT pointer: WB paging-structure memory type, page-walk length 4, optional A/D flags.
    pub fn eptp(&self, accessed_dirty: bool) -> u64 {
        self.pml4 | EptMemoryType::WriteBack as u64 | (3 << 3) | (u64::from(accessed_dirty) << 6)
    }

    /// Maps one page of `size` at `gpa` to `hpa`.
    pub fn map(
        &mut self,
        gpa: u64,
        hpa: u64,
        size: PageSize,
        perms: EptPerms,
        memory_type: EptMemoryType,
    ) -> Result<(), EptError> {
        check_addresses(gpa, hpa, size)?;
        let (table, index) = self.walk(gpa, size, true)?;
        let slot = &mut self.table_mut(table)?[index];
        if *slot & SOFTWARE_PRESENT != 0 {
            return Err(EptError::AlreadyMapped(gpa));
        }
        let large = if size == PageSize::Size2M {
            LARGE_PAGE
        } else {
            0
        };
        *slot =
            hpa | u64::from(perms.bits()) | (memory_type as u64) << 3 | large | SOFTWARE_PRESENT;
        Ok(())
    }

    /// Maps `len` bytes (rounded up to 4 KiB), using 2-MiB pages wherever both addresses allow.
    pub fn map_range(
        &mut self,
        gpa: u64,
        hpa: u64,
        len: u64,
        perms: EptPerms,
        memory_type: EptMemoryType,
    ) -> Result<(), EptError> {
        let end = gpa.checked_add(len).ok_or(EptError::AddressTooLarge(gpa))?;
        let (mut g, mut h) = (gpa, hpa);
        while g < end {
            let size = if (g | h) & (PageSize::Size2M.bytes() - 1) == 0
                && end - g >= PageSize::Size2M.bytes()
            {
                PageSize::Size2M
            } else {
                PageSize::Size4K
            };
            self.map(g, h, size, perms, memory_type)?;
            g += size.bytes();
            h += size.bytes();
        }
        Ok(())
    }

    /// Removes the page of `size` at `gpa`. Always needs INVEPT afterwards.
    pub fn unmap(&mut self, gpa: u64, size: PageSize) -> Result<Flush, EptError> {
        let (table, index) = self.leaf(gpa, size)?;
        self.table_mut(table)?[index] = 0;
        Ok(Flush::NeedsInvept)
    }

    /// Replaces the access rights of the page of `size` at `gpa`.
    pub fn protect(
        &mut self,
        gpa: u64,
        size: PageSize,
        perms: EptPerms,
    ) -> Result<Flush, EptError> {
        let (table, index) = self.leaf(gpa, size)?;
        let slot = &mut self.table_mut(table)?[index];
        let old = (*slot & 7) as u8;
        *slot = (*slot & !7) | u64::from(perms.bits());
        Ok(if old & !perms.bits() != 0 {
            Flush::NeedsInvept
        } else {
            Flush::NotNeeded
        })
    }

    /// Replaces the 2-MiB page at `gpa` by a page table of 512 4-KiB pages with the same
    /// translation, rights and memory type, so parts of it can be protected separately.
    pub fn split_2m(&mut self, gpa: u64) -> Result<Flush, EptError> {
        let (table, index) = self.leaf(gpa, PageSize::Size2M)?;
        let large = self.table_mut(table)?[index];
        let frame = self
            .alloc
            .alloc_zeroed_frame()
            .ok_or(EptError::OutOfFrames)?;
        let small_flags = large & !ADDRESS_MASK & !LARGE_PAGE;
        let base = large & ADDRESS_MASK;
        for (i, slot) in self.table_mut(frame)?.iter_mut().enumerate() {
            *slot = (base + ((i as u64) << 12)) | small_flags;
        }
        self.table_mut(table)?[index] = frame | TABLE_ENTRY_RIGHTS | SOFTWARE_PRESENT;
        Ok(Flush::NeedsInvept)
    }

    /// Walks the tables like the CPU would and returns the leaf translation of `gpa`.
    pub fn translate(&self, gpa: u64) -> Option<Translation> {
        if gpa >> 48 != 0 {
            return None;
        }
        let mut table = self.pml4;
        for level in (1..=4).rev() {
            let entry = self.alloc.phys_to_virt(table)?[index_at(gpa, level)];
            if entry & SOFTWARE_PRESENT == 0 {
                return None;
            }
            let leaf = level == 1 || (level == 2 && entry & LARGE_PAGE != 0);
            if leaf {
                let size = if level == 1 {
                    PageSize::Size4K
                } else {
                    PageSize::Size2M
                };
                let memory_type = match (entry >> 3) & 7 {
                    0 => Some(EptMemoryType::Uncacheable),
                    6 => Some(EptMemoryType::WriteBack),
                    _ => None,
                };
                let page = entry & ADDRESS_MASK & !(size.bytes() - 1);
                return Some(Translation {
                    hpa: page | (gpa & (size.bytes() - 1)),
                    perms: EptPerms((entry & 7) as u8),
                    memory_type,
                    size,
                });
            }
            table = entry & ADDRESS_MASK;
        }
        None
    }

    fn table_mut(&mut self, phys: u64) -> Result<&mut [u64; 512], EptError> {
        self.alloc
            .phys_to_virt_mut(phys)
            .ok_or(EptError::UnknownFrame(phys))
    }

    /// The existing leaf slot for a page of `size` at `gpa`.
    fn leaf(&mut self, gpa: u64, size: PageSize) -> Result<(u64, usize), EptError> {
        check_addresses(gpa, 0, size)?;
        let (table, index) = self.walk(gpa, size, false)?;
        let entry = self.table_mut(table)?[index];
        if entry & SOFTWARE_PRESENT == 0 {
            return Err(EptError::NotMapped(gpa));
        }
        if size == PageSize::Size2M && entry & LARGE_PAGE == 0 {
            return Err(EptError::SizeMismatch(gpa));
        }
        Ok((table, index))
    }

    /// Walks down to the table holding the entry for `size`, creating tables when `create`.
    fn walk(&mut self, gpa: u64, size: PageSize, create: bool) -> Result<(u64, usize), EptError> {
        let mut table = self.pml4;
        for level in ((size.level() + 1)..=4).rev() {
            let index = index_at(gpa, level);
            let entry = self.table_mut(table)?[index];
            if entry & SOFTWARE_PRESENT == 0 {
                if !create {
                    return Err(EptError::NotMapped(gpa));
                }
                let frame = self
                    .alloc
                    .alloc_zeroed_frame()
                    .ok_or(EptError::OutOfFrames)?;
                self.table_mut(table)?[index] = frame | TABLE_ENTRY_RIGHTS | SOFTWARE_PRESENT;
                table = frame;
            } else if entry & LARGE_PAGE != 0 {
                return Err(EptError::SizeMismatch(gpa));
            } else {
                table = entry & ADDRESS_MASK;
            }
        }
        Ok((table, index_at(gpa, size.level())))
    }
}

fn check_addresses(gpa: u64, hpa: u64, size: PageSize) -> Result<(), EptError> {
    if gpa >> 48 != 0 {
        return Err(EptError::AddressTooLarge(gpa));
    }
    if hpa >> 52 != 0 {
        return Err(EptError::AddressTooLarge(hpa));
    }
    for addr in [gpa, hpa] {
        if addr & (size.bytes() - 1) != 0 {
            return Err(EptError::Misaligned(addr));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "ept_tests.rs"]
mod tests;
