//! ELF64 loader for guest images (static x86_64 EXEC files, virtual = physical addresses): every header
//! field is bounds-checked, every PT_LOAD must have p_vaddr = p_paddr and fit in the guest's RAM above the
//! hypervisor's reserved low area, and the entry point must lie in the file-backed bytes of an executable
//! segment (not in its zero-filled tail). A malformed image is an error, never a panic, and nothing is
//! written to guest memory unless the whole image checks out.

use alloc::vec::Vec;
use core::fmt;

const PT_LOAD: u32 = 1;
const PF_X: u32 = 1;
const ET_EXEC: u16 = 2;
const EM_X86_64: u16 = 62;
const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const MAX_PHDRS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfError {
    TooShort {
        len: usize,
    },
    BadMagic,
    /// Not ELFCLASS64 little-endian version 1.
    NotElf64LittleEndian,
    NotExecutable {
        e_type: u16,
    },
    NotX86_64 {
        machine: u16,
    },
    BadProgramHeaderTable {
        offset: u64,
        entry_size: u16,
        count: u16,
    },
    /// A segment's file bytes lie beyond the end of the file.
    SegmentOutsideFile {
        index: usize,
    },
    /// p_filesz > p_memsz.
    FileSizeAboveMemSize {
        index: usize,
    },
    /// A segment reaches outside `[low, ram_size)` or wraps around.
    SegmentOutsideRam {
        index: usize,
        start: u64,
        end: u64,
    },
    SegmentsOverlap {
        index: usize,
    },
    /// p_vaddr != p_paddr (the format places each segment at guest-physical = virtual p_paddr).
    PhysicalAddressMismatch {
        index: usize,
        vaddr: u64,
        paddr: u64,
    },
    NoLoadableSegment,
    EntryNotInCode {
        entry: u64,
    },
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TooShort { len } => write!(f, "ELF: file of {len} bytes is shorter than an ELF header"),
            Self::BadMagic => write!(f, "ELF: bad magic (not an ELF file)"),
            Self::NotElf64LittleEndian => write!(f, "ELF: not a 64-bit little-endian ELF version 1"),
            Self::NotExecutable { e_type } => write!(f, "ELF: type {e_type} is not EXEC (static executable)"),
            Self::NotX86_64 { machine } => write!(f, "ELF: machine {machine} is not x86_64"),
            Self::BadProgramHeaderTable { offset, entry_size, count } => write!(
                f,
                "ELF: program header table at {offset:#x} ({count} x {entry_size} bytes) is malformed"
            ),
            Self::SegmentOutsideFile { index } => write!(f, "ELF: segment {index} lies beyond the end of the file"),
            Self::FileSizeAboveMemSize { index } => write!(f, "ELF: segment {index} has p_filesz > p_memsz"),
            Self::SegmentOutsideRam { index, start, end } => {
                write!(f, "ELF: segment {index} [{start:#x}, {end:#x}) lies outside the guest's loadable RAM")
            }
            Self::SegmentsOverlap { index } => write!(f, "ELF: segment {index} overlaps an earlier one"),
            Self::PhysicalAddressMismatch { index, vaddr, paddr } => write!(
                f,
                "ELF: segment {index} has p_vaddr {vaddr:#x} != p_paddr {paddr:#x}"
            ),
            Self::NoLoadableSegment => write!(f, "ELF: no PT_LOAD segment"),
            Self::EntryNotInCode { entry } => {
                write!(f, "ELF: entry point {entry:#x} is not in the file bytes of an executable segment")
            }
        }
    }
}

/// One checked PT_LOAD segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub gpa: u64,
    pub mem_size: u64,
    pub file_offset: usize,
    pub file_size: usize,
    pub executable: bool,
}

/// A checked image, ready to copy into guest memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfImage {
    pub entry: u64,
    pub segments: Vec<Segment>,
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(w)
}

/// Checks `file` as a guest image for RAM `[low, ram_size)`.
pub fn parse(file: &[u8], low: u64, ram_size: u64) -> Result<ElfImage, ElfError> {
    if file.len() < EHDR_SIZE {
        return Err(ElfError::TooShort { len: file.len() });
    }
    if file[..4] != *b"\x7fELF" {
        return Err(ElfError::BadMagic);
    }
    if file[4] != 2 || file[5] != 1 || file[6] != 1 {
        return Err(ElfError::NotElf64LittleEndian);
    }
    let e_type = u16_at(file, 16);
    if e_type != ET_EXEC {
        return Err(ElfError::NotExecutable { e_type });
    }
    let machine = u16_at(file, 18);
    if machine != EM_X86_64 {
        return Err(ElfError::NotX86_64 { machine });
    }
    let entry = u64_at(file, 24);
    let (offset, entry_size, count) = (u64_at(file, 32), u16_at(file, 54), u16_at(file, 56));
    let table_error = ElfError::BadProgramHeaderTable {
        offset,
        entry_size,
        count,
    };
    if usize::from(entry_size) != PHDR_SIZE || usize::from(count) > MAX_PHDRS {
        return Err(table_error);
    }
    let table_start = usize::try_from(offset).map_err(|_| table_error)?;
    let table_end = table_start
        .checked_add(PHDR_SIZE * usize::from(count))
        .ok_or(table_error)?;
    let table = file.get(table_start..table_end).ok_or(table_error)?;
    let mut segments: Vec<Segment> = Vec::new();
    for (index, ph) in table.chunks_exact(PHDR_SIZE).enumerate() {
        if u32_at(ph, 0) != PT_LOAD {
            continue;
        }
        let flags = u32_at(ph, 4);
        let (p_offset, vaddr, paddr, filesz, memsz) = (
            u64_at(ph, 8),
            u64_at(ph, 16),
            u64_at(ph, 24),
            u64_at(ph, 32),
            u64_at(ph, 40),
        );
        if vaddr != paddr {
            return Err(ElfError::PhysicalAddressMismatch {
                index,
                vaddr,
                paddr,
            });
        }
        if filesz > memsz {
            return Err(ElfError::FileSizeAboveMemSize { index });
        }
        let file_range = usize::try_from(p_offset)
            .ok()
            .zip(usize::try_from(filesz).ok())
            .and_then(|(start, len)| Some((start, start.checked_add(len)?)))
            .filter(|(_, end)| *end <= file.len())
            .ok_or(ElfError::SegmentOutsideFile { index })?;
        let end = vaddr.checked_add(memsz);
        if vaddr < low || end.is_none_or(|end| end > ram_size) {
            return Err(ElfError::SegmentOutsideRam {
                index,
                start: vaddr,
                end: end.unwrap_or(u64::MAX),
            });
        }
        let end = vaddr + memsz;
        if segments
            .iter()
            .any(|s| vaddr < s.gpa + s.mem_size && s.gpa < end)
        {
            return Err(ElfError::SegmentsOverlap { index });
        }
        segments.push(Segment {
            gpa: vaddr,
            mem_size: memsz,
            file_offset: file_range.0,
            file_size: file_range.1 - file_range.0,
            executable: flags & PF_X != 0,
        });
    }
    if segments.is_empty() {
        return Err(ElfError::NoLoadableSegment);
    }
    // The entry must be a byte the image supplied: file_size <= mem_size, so this stays inside the segment.
    let in_code = segments
        .iter()
        .any(|s| s.executable && entry >= s.gpa && entry - s.gpa < s.file_size as u64);
    if !in_code {
        return Err(ElfError::EntryNotInCode { entry });
    }
    Ok(ElfImage { entry, segments })
}

impl ElfImage {
    /// Copies the segments into `mem` (guest-physical 0 = `mem[0]`) and zeroes their tails. `mem` must be the
    /// RAM the image was checked against (its size at least that `ram_size`).
    pub fn load(&self, file: &[u8], mem: &mut [u8]) -> Result<(), ElfError> {
        for (index, s) in self.segments.iter().enumerate() {
            // `parse` made these checks already; the arithmetic stays checked for an image built
            // by hand (the fields are public).
            let outside = ElfError::SegmentOutsideRam {
                index,
                start: s.gpa,
                end: s.gpa.saturating_add(s.mem_size),
            };
            let start = usize::try_from(s.gpa).map_err(|_| outside)?;
            let size = usize::try_from(s.mem_size).map_err(|_| outside)?;
            let target = start
                .checked_add(size)
                .and_then(|end| mem.get_mut(start..end))
                .ok_or(outside)?;
            let source = s
                .file_offset
                .checked_add(s.file_size)
                .and_then(|end| file.get(s.file_offset..end))
                .filter(|source| source.len() <= target.len())
                .ok_or(ElfError::SegmentOutsideFile { index })?;
            let (loaded, zeroed) = target.split_at_mut(source.len());
            loaded.copy_from_slice(source);
            zeroed.fill(0);
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "guest_loader_tests.rs"]
mod tests;
