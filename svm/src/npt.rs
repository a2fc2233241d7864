//! Nested page tables (APM Vol. 2, 15.25): the ordinary 4-level long-mode format, walked with
//! the host's paging mode. Every nested access counts as a user access, so the U/S bit is set
//! at every level; rights are read (present), write (R/W) and execute (NX clear; NX needs the
//! host's EFER.NXE). Tables live in frames from a [`FrameAllocator`].

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

/// A source of zeroed 4-KiB frames for nested page tables.
pub trait FrameAllocator {
    /// Allocates a zeroed, 4-KiB aligned frame and returns its host-physical address.
    fn alloc_zeroed_frame(&mut self) -> Option<u64>;
    /// The table stored in the frame at `phys`, or None if unknown.
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

/// Page sizes the builder maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageSize {
    /// 4 KiB, a PTE.
    Size4K,
    /// 2 MiB, a PDE with PS.
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
    /// Rights were only widened: a stale entry at most causes a #NPF that refetches.
    NotNeeded,
    /// Rights were removed or a mapping dropped: flush the guest's ASID (TLB_CONTROL) before
    /// the next VMRUN.
    NeedsAsidFlush,
}

/// Nested page table builder failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NptError {
    /// The frame allocator is exhausted.
    OutOfFrames,
    /// An address is not aligned to the page size.
    Misaligned(u64),
    /// A guest-physical address beyond 48 bits or a host-physical one beyond 52.
    AddressTooLarge(u64),
    /// The guest-physical page is already mapped.
    AlreadyMapped(u64),
    /// Nothing is mapped there with that page size.
    NotMapped(u64),
    /// A page of the other size covers that address.
    SizeMismatch(u64),
    /// The allocator does not know a table frame the walk reached.
    UnknownFrame(u64),
    /// Write or execute without read.
    AccessWithoutRead,
}

impl fmt::Display for NptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfFrames => write!(f, "NPT: out of frames for page tables"),
            Self::Misaligned(a) => write!(f, "NPT: address {a:#x} is not aligned to the page size"),
            Self::AddressTooLarge(a) => write!(f, "NPT: address {a:#x} is out of range"),
            Self::AlreadyMapped(a) => write!(f, "NPT: guest-physical {a:#x} is already mapped"),
            Self::NotMapped(a) => write!(
                f,
                "NPT: guest-physical {a:#x} is not mapped with that page size"
            ),
            Self::SizeMismatch(a) => write!(
                f,
                "NPT: guest-physical {a:#x} is mapped with a different page size"
            ),
            Self::UnknownFrame(a) => {
                write!(f, "NPT: table frame {a:#x} is unknown to the allocator")
            }
            Self::AccessWithoutRead => {
                write!(f, "NPT: write or execute access without read access")
            }
        }
    }
}

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
const LARGE_PAGE: u64 = 1 << 7;
const NO_EXECUTE: u64 = 1 << 63;
/// Software bit 52 (ignored by the CPU) marking a used entry, so NONE rights stay mapped.
const SOFTWARE_MAPPED: u64 = 1 << 52;
const ADDRESS_MASK: u64 = 0x000F_FFFF_FFFF_F000;
const RIGHTS_MASK: u64 = PRESENT | WRITABLE | NO_EXECUTE;
/// Non-leaf entries allow everything; leaves restrict.
const TABLE_ENTRY: u64 = PRESENT | WRITABLE | USER | SOFTWARE_MAPPED;

fn index_at(gpa: u64, level: usize) -> usize {
    ((gpa >> (12 + 9 * (level - 1))) & 0x1FF) as usize
}

/// A 4-level nested page table hierarchy; owns its frame allocator.
#[derive(Debug)]
pub struct Npt<A: FrameAllocator> {
    alloc: A,
    pml4: u64,
}

impl<A: FrameAllocator> Npt<A> {
    /// Allocates an empty PML4.
    pub fn new(mut alloc: A) -> Result<Self, NptError> {
        let pml4 = alloc.alloc_zeroed_frame().ok_or(NptError::OutOfFrames)?;
        Ok(Self { alloc, pml4 })
    }

    /// The N_CR3 value for the VMCB: the PML4 address (PWT/PCD clear: write-back walks).
    pub fn ncr3(&self) -> u64 {
        self.pml4
    }

    /// The allocator, e.g. to inspect frames in tests.
    pub fn allocator(&self) -> &A {
        &self.alloc
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
        check_addresses(gpa, hpa, size)?;
        let (table, index) = self.walk(gpa, size, true)?;
        let slot = &mut self.table_mut(table)?[index];
        if *slot & SOFTWARE_MAPPED != 0 {
            return Err(NptError::AlreadyMapped(gpa));
        }
        let large = if size == PageSize::Size2M {
            LARGE_PAGE
        } else {
            0
        };
        let cache = match memory_type {
            NptMemoryType::WriteBack => 0,
            NptMemoryType::Uncacheable => PCD | PWT,
        };
        *slot = hpa | perms.bits() | USER | cache | large | SOFTWARE_MAPPED;
        Ok(())
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
        let end = gpa.checked_add(len).ok_or(NptError::AddressTooLarge(gpa))?;
        let (mut g, mut h) = (gpa, hpa);
        while g < end {
            let big = PageSize::Size2M.bytes();
            let size = if (g | h) & (big - 1) == 0 && end - g >= big {
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

    /// Removes the page of `size` at `gpa`. Always needs a flush afterwards.
    pub fn unmap(&mut self, gpa: u64, size: PageSize) -> Result<Flush, NptError> {
        let (table, index) = self.leaf(gpa, size)?;
        self.table_mut(table)?[index] = 0;
        Ok(Flush::NeedsAsidFlush)
    }

    /// Replaces the rights of the page of `size` at `gpa`.
    pub fn protect(
        &mut self,
        gpa: u64,
        size: PageSize,
        perms: NptPerms,
    ) -> Result<Flush, NptError> {
        let (table, index) = self.leaf(gpa, size)?;
        let slot = &mut self.table_mut(table)?[index];
        let old = NptPerms::from_entry(*slot);
        *slot = (*slot & !RIGHTS_MASK) | perms.bits();
        Ok(if old.loses_rights_to(perms) {
            Flush::NeedsAsidFlush
        } else {
            Flush::NotNeeded
        })
    }

    /// Walks the tables like the CPU would and returns the leaf translation of `gpa`, also for
    /// a NONE page (so a #NPF handler can see what is there).
    pub fn translate(&self, gpa: u64) -> Option<Translation> {
        if gpa >> 48 != 0 {
            return None;
        }
        let mut table = self.pml4;
        for level in (1..=4).rev() {
            let entry = self.alloc.phys_to_virt(table)?[index_at(gpa, level)];
            if entry & SOFTWARE_MAPPED == 0 {
                return None;
            }
            if level == 1 || (level == 2 && entry & LARGE_PAGE != 0) {
                let size = if level == 1 {
                    PageSize::Size4K
                } else {
                    PageSize::Size2M
                };
                let memory_type = if entry & (PCD | PWT) == PCD | PWT {
                    NptMemoryType::Uncacheable
                } else {
                    NptMemoryType::WriteBack
                };
                let page = entry & ADDRESS_MASK & !(size.bytes() - 1);
                return Some(Translation {
                    hpa: page | (gpa & (size.bytes() - 1)),
                    perms: NptPerms::from_entry(entry),
                    memory_type,
                    size,
                });
            }
            table = entry & ADDRESS_MASK;
        }
        None
    }

    fn table_mut(&mut self, phys: u64) -> Result<&mut [u64; 512], NptError> {
        self.alloc
            .phys_to_virt_mut(phys)
            .ok_or(NptError::UnknownFrame(phys))
    }

    fn leaf(&mut self, gpa: u64, size: PageSize) -> Result<(u64, usize), NptError> {
        check_addresses(gpa, 0, size)?;
        let (table, index) = self.walk(gpa, size, false)?;
        let entry = self.table_mut(table)?[index];
        if entry & SOFTWARE_MAPPED == 0 {
            return Err(NptError::NotMapped(gpa));
        }
        if size == PageSize::Size2M && entry & LARGE_PAGE == 0 {
            return Err(NptError::SizeMismatch(gpa));
        }
        Ok((table, index))
    }

    fn walk(&mut self, gpa: u64, size: PageSize, create: bool) -> Result<(u64, usize), NptError> {
        let mut table = self.pml4;
        for level in ((size.level() + 1)..=4).rev() {
            let index = index_at(gpa, level);
            let entry = self.table_mut(table)?[index];
            if entry & SOFTWARE_MAPPED == 0 {
                if !create {
                    return Err(NptError::NotMapped(gpa));
                }
                let frame = self
                    .alloc
                    .alloc_zeroed_frame()
                    .ok_or(NptError::OutOfFrames)?;
                self.table_mut(table)?[index] = frame | TABLE_ENTRY;
                table = frame;
            } else if level == 2 && entry & LARGE_PAGE != 0 {
                return Err(NptError::SizeMismatch(gpa));
            } else {
                table = entry & ADDRESS_MASK;
            }
        }
        Ok((table, index_at(gpa, size.level())))
    }
}

fn check_addresses(gpa: u64, hpa: u64, size: PageSize) -> Result<(), NptError> {
    if gpa >> 48 != 0 {
        return Err(NptError::AddressTooLarge(gpa));
    }
    if hpa >> 52 != 0 {
        return Err(NptError::AddressTooLarge(hpa));
    }
    for addr in [gpa, hpa] {
        if addr & (size.bytes() - 1) != 0 {
            return Err(NptError::Misaligned(addr));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "npt_tests.rs"]
mod tests;
