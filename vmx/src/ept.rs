//! 4-level EPT (extended page tables) builder (SDM Vol. 3, 29.3).
//!
//! The walk is the shared [`slat::PageTables`]; this module adds the EPT entry encoding: rights
//! in bits 2:0, the memory type in bits 5:3, table entries with all rights. Tables live in
//! frames handed out by a [`FrameAllocator`]; host tests back it with [`HeapFrameAllocator`].
//! Each table is 512 little-endian `u64` entries.

use slat::{EntryFormat, PageTables};
pub use slat::{FrameAllocator, HeapFrameAllocator, PageSize};

#[cfg(test)]
use slat::ADDRESS_MASK;

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

/// What the caller must do after changing existing mappings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flush {
    /// Rights were only widened: stale entries at most cause an EPT violation that refetches.
    NotNeeded,
    /// Rights were removed or a mapping dropped: run INVEPT for this EPTP.
    NeedsInvept,
}

impl From<slat::Flush> for Flush {
    fn from(flush: slat::Flush) -> Self {
        match flush {
            slat::Flush::NotNeeded => Self::NotNeeded,
            slat::Flush::Needed => Self::NeedsInvept,
        }
    }
}

slat::format_error!(
    /// EPT builder failures.
    pub enum EptError, "EPT",
    /// Write access requested without read (an EPT misconfiguration).
    WriteWithoutRead => "write access without read access"
);

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

/// Rights bits 2:0 (read, write, execute).
const RIGHTS_MASK: u64 = 7;

/// The EPT entry encoding for [`PageTables`].
#[derive(Debug)]
struct EptFormat;

impl EntryFormat for EptFormat {
    /// Table entries grant everything: bits 2:0 all set.
    const TABLE_FLAGS: u64 = RIGHTS_MASK;
    const LEAF_FLAGS: u64 = 0;
    const RIGHTS_MASK: u64 = RIGHTS_MASK;

    fn removes_rights(old: u64, new: u64) -> bool {
        old & !new != 0
    }
}

fn memory_type_bits(memory_type: EptMemoryType) -> u64 {
    (memory_type as u64) << 3
}

/// A 4-level EPT hierarchy; owns its frame allocator.
#[derive(Debug)]
pub struct Ept<A: FrameAllocator> {
    tables: PageTables<EptFormat, A>,
}

impl<A: FrameAllocator> Ept<A> {
    /// Allocates an empty PML4.
    pub fn new(alloc: A) -> Result<Self, EptError> {
        Ok(Self {
            tables: PageTables::new(alloc)?,
        })
    }

    /// Physical address of the PML4 table.
    pub fn pml4_phys(&self) -> u64 {
        self.tables.pml4_phys()
    }

    /// The allocator, e.g. to inspect frames in tests.
    pub fn allocator(&self) -> &A {
        self.tables.allocator()
    }

    /// The EPT pointer: WB paging-structure memory type, page-walk length 4, optional A/D flags.
    pub fn eptp(&self, accessed_dirty: bool) -> u64 {
        self.pml4_phys()
            | EptMemoryType::WriteBack as u64
            | (3 << 3)
            | (u64::from(accessed_dirty) << 6)
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
        let (rights, memory_type) = (u64::from(perms.bits()), memory_type_bits(memory_type));
        Ok(self.tables.map(gpa, hpa, size, rights, memory_type)?)
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
        let (rights, memory_type) = (u64::from(perms.bits()), memory_type_bits(memory_type));
        Ok(self.tables.map_range(gpa, hpa, len, rights, memory_type)?)
    }

    /// Removes the page of `size` at `gpa`. Always needs INVEPT afterwards.
    pub fn unmap(&mut self, gpa: u64, size: PageSize) -> Result<Flush, EptError> {
        Ok(self.tables.unmap(gpa, size)?.into())
    }

    /// Replaces the access rights of the page of `size` at `gpa`.
    pub fn protect(
        &mut self,
        gpa: u64,
        size: PageSize,
        perms: EptPerms,
    ) -> Result<Flush, EptError> {
        let rights = u64::from(perms.bits());
        Ok(self.tables.protect(gpa, size, rights)?.into())
    }

    /// Replaces the 2-MiB page at `gpa` by a page table of 512 4-KiB pages with the same
    /// translation, rights and memory type, so parts of it can be protected separately.
    pub fn split_2m(&mut self, gpa: u64) -> Result<Flush, EptError> {
        Ok(self.tables.split_2m(gpa)?.into())
    }

    /// Walks the tables like the CPU would and returns the leaf translation of `gpa`.
    pub fn translate(&self, gpa: u64) -> Option<Translation> {
        let leaf = self.tables.translate(gpa)?;
        let memory_type = match (leaf.entry >> 3) & 7 {
            0 => Some(EptMemoryType::Uncacheable),
            6 => Some(EptMemoryType::WriteBack),
            _ => None,
        };
        Some(Translation {
            hpa: leaf.hpa,
            perms: EptPerms((leaf.entry & RIGHTS_MASK) as u8),
            memory_type,
            size: leaf.size,
        })
    }
}

#[cfg(test)]
#[path = "ept_tests.rs"]
mod tests;
