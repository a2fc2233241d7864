//! Nested page tables (APM Vol. 2, 15.25): the ordinary 4-level long-mode format, walked with
//! the host's paging mode. Every nested access counts as a user access, so the U/S bit is set
//! at every level; rights are read (present), write (R/W) and execute (NX clear; NX needs the
//! host's EFER.NXE). The walk is the shared [`slat::PageTables`]; tables live in frames from a
//! [`FrameAllocator`].

use slat::{EntryFormat, PageTables};
pub use slat::{FrameAllocator, HeapFrameAllocator, PageSize};

#[cfg(test)]
use slat::{index_at, ADDRESS_MASK, LARGE_PAGE};

/// Access rights of a nested mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NptPerms {
    /// Readable (the P bit). Without it every access faults (#NPF), the mapping is kept.
    pub read: bool,
    /// Writable (R/W).
    pub write: bool,
    /// Executable (NX clear).
    pub execute: bool,
}

impl NptPerms {
    /// No access (not present, mapping remembered).
    pub const NONE: Self = Self::flags(false, false, false);
    /// Read only, no execute.
    pub const R: Self = Self::flags(true, false, false);
    /// Read + write.
    pub const RW: Self = Self::flags(true, true, false);
    /// Read + execute.
    pub const RX: Self = Self::flags(true, false, true);
    /// Read + write + execute.
    pub const RWX: Self = Self::flags(true, true, true);

    const fn flags(read: bool, write: bool, execute: bool) -> Self {
        Self {
            read,
            write,
            execute,
        }
    }

    /// Builds rights; write or execute without read cannot be expressed and is refused.
    pub fn new(read: bool, write: bool, execute: bool) -> Result<Self, NptError> {
        if (write || execute) && !read {
            return Err(NptError::AccessWithoutRead);
        }
        Ok(Self::flags(read, write, execute))
    }

    fn bits(self) -> u64 {
        (if self.read { PRESENT } else { 0 })
            | (if self.write { WRITABLE } else { 0 })
            | (if self.execute { 0 } else { NO_EXECUTE })
    }

    fn from_entry(entry: u64) -> Self {
        Self::flags(
            entry & PRESENT != 0,
            entry & WRITABLE != 0,
            entry & NO_EXECUTE == 0,
        )
    }

    /// True when `self` allows something `new` does not.
    fn loses_rights_to(self, new: Self) -> bool {
        (self.read && !new.read) || (self.write && !new.write) || (self.execute && !new.execute)
    }
}

/// Host memory type of a leaf, chosen through the PAT index bits with the default PAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NptMemoryType {
    /// PAT index 0 (WB): RAM.
    WriteBack,
    /// PAT index 3 (UC, PCD|PWT): MMIO.
    Uncacheable,
}

/// What the caller must do after changing existing mappings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flush {
    /// Rights were only widened: a stale entry at most causes a #NPF that refetches.
    NotNeeded,
    /// Rights were removed or a mapping dropped: flush the guest's ASID (TLB_CONTROL) before
    /// the next VMRUN.
    NeedsAsidFlush,
}

impl From<slat::Flush> for Flush {
    fn from(flush: slat::Flush) -> Self {
        match flush {
            slat::Flush::NotNeeded => Self::NotNeeded,
            slat::Flush::Needed => Self::NeedsAsidFlush,
        }
    }
}

slat::format_error!(
    /// Nested page table builder failures.
    pub enum NptError, "NPT",
    /// Write or execute without read.
    AccessWithoutRead => "write or execute access without read access"
);

/// The result of [`Npt::translate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// Host-physical address of the byte.
    pub hpa: u64,
    /// Rights of the leaf.
    pub perms: NptPerms,
    /// Memory type of the leaf.
    pub memory_type: NptMemoryType,
    /// Size of the leaf page.
    pub size: PageSize,
}

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const USER: u64 = 1 << 2;
const PWT: u64 = 1 << 3;
const PCD: u64 = 1 << 4;
const NO_EXECUTE: u64 = 1 << 63;

/// The nested page table entry encoding for [`PageTables`].
#[derive(Debug)]
struct NptFormat;

impl EntryFormat for NptFormat {
    /// Non-leaf entries allow everything; leaves restrict.
    const TABLE_FLAGS: u64 = PRESENT | WRITABLE | USER;
    /// Every nested access is a user access.
    const LEAF_FLAGS: u64 = USER;
    const RIGHTS_MASK: u64 = PRESENT | WRITABLE | NO_EXECUTE;

    fn removes_rights(old: u64, new: u64) -> bool {
        NptPerms::from_entry(old).loses_rights_to(NptPerms::from_entry(new))
    }
}

fn memory_type_bits(memory_type: NptMemoryType) -> u64 {
    match memory_type {
        NptMemoryType::WriteBack => 0,
        NptMemoryType::Uncacheable => PCD | PWT,
    }
}

/// A 4-level nested page table hierarchy; owns its frame allocator.
#[derive(Debug)]
pub struct Npt<A: FrameAllocator> {
    tables: PageTables<NptFormat, A>,
}

impl<A: FrameAllocator> Npt<A> {
    /// Allocates an empty PML4.
    pub fn new(alloc: A) -> Result<Self, NptError> {
        Ok(Self {
            tables: PageTables::new(alloc)?,
        })
    }

    /// The N_CR3 value for the VMCB: the PML4 address (PWT/PCD clear: write-back walks).
    pub fn ncr3(&self) -> u64 {
        self.tables.pml4_phys()
    }

    /// The allocator, e.g. to inspect frames in tests.
    pub fn allocator(&self) -> &A {
        self.tables.allocator()
    }

    /// Maps one page of `size` at `gpa` to `hpa`.
    pub fn map(
        &mut self,
        gpa: u64,
        hpa: u64,
        size: PageSize,
        perms: NptPerms,
        memory_type: NptMemoryType,
    ) -> Result<(), NptError> {
        let (rights, memory_type) = (perms.bits(), memory_type_bits(memory_type));
        Ok(self.tables.map(gpa, hpa, size, rights, memory_type)?)
    }

    /// Maps `len` bytes (rounded up to 4 KiB), using 2-MiB pages wherever both addresses allow.
    pub fn map_range(
        &mut self,
        gpa: u64,
        hpa: u64,
        len: u64,
        perms: NptPerms,
        memory_type: NptMemoryType,
    ) -> Result<(), NptError> {
        let (rights, memory_type) = (perms.bits(), memory_type_bits(memory_type));
        Ok(self.tables.map_range(gpa, hpa, len, rights, memory_type)?)
    }

    /// Removes the page of `size` at `gpa`. Always needs a flush afterwards.
    pub fn unmap(&mut self, gpa: u64, size: PageSize) -> Result<Flush, NptError> {
        Ok(self.tables.unmap(gpa, size)?.into())
    }

    /// Replaces the rights of the page of `size` at `gpa`.
    pub fn protect(
        &mut self,
        gpa: u64,
        size: PageSize,
        perms: NptPerms,
    ) -> Result<Flush, NptError> {
        Ok(self.tables.protect(gpa, size, perms.bits())?.into())
    }

    /// Walks the tables like the CPU would and returns the leaf translation of `gpa`, also for
    /// a NONE page (so a #NPF handler can see what is there).
    pub fn translate(&self, gpa: u64) -> Option<Translation> {
        let leaf = self.tables.translate(gpa)?;
        let memory_type = if leaf.entry & (PCD | PWT) == PCD | PWT {
            NptMemoryType::Uncacheable
        } else {
            NptMemoryType::WriteBack
        };
        Some(Translation {
            hpa: leaf.hpa,
            perms: NptPerms::from_entry(leaf.entry),
            memory_type,
            size: leaf.size,
        })
    }
}

#[cfg(test)]
#[path = "npt_tests.rs"]
mod tests;
