//! Parser for the multiboot2 boot information structure (the block GRUB passes in EBX).
//!
//! Pure and bounds-checked: it works on a byte slice, so the host unit tests feed it hand-built buffers.
//! Layout (multiboot2 spec 1.0, section 3.6): `u32 total_size, u32 reserved`, then tags, each
//! `u32 type, u32 size, payload`, every tag starting on an 8-byte boundary, ended by a tag of type 0, size 8.

use core::fmt;

/// Value of EAX when a multiboot2 loader enters the kernel.
pub const BOOTLOADER_MAGIC: u32 = 0x36d7_6289;

const TAG_END: u32 = 0;
const TAG_COMMAND_LINE: u32 = 1;
const TAG_BOOTLOADER_NAME: u32 = 2;
const TAG_MODULE: u32 = 3;
const TAG_MEMORY_MAP: u32 = 6;

const TAG_HEADER_SIZE: usize = 8;
const MEMORY_MAP_HEADER_SIZE: usize = 16;
const MEMORY_MAP_ENTRY_MIN_SIZE: usize = 24;
const MODULE_HEADER_SIZE: usize = 16;

/// What is wrong with a boot information block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Multiboot2Error {
    /// The boot info address is null or not 8-byte aligned.
    BadAddress { address: u64 },
    /// The buffer is shorter than the 8-byte fixed header.
    TooShort { len: usize },
    /// `total_size` is smaller than the header or larger than the buffer.
    BadTotalSize { total_size: u32, buffer_len: usize },
    /// A tag's header or payload runs past `total_size`.
    TagOutOfBounds { offset: usize, size: u32 },
    /// A tag declares a size smaller than its own 8-byte header.
    TagTooSmall { offset: usize, size: u32 },
    /// The tag list ends without an end tag (type 0, size 8).
    MissingEndTag,
    /// The memory map tag has an entry size below 24 or not a multiple of 8.
    BadMemoryMapEntrySize { entry_size: u32 },
    /// The memory map tag's entries do not fill its payload exactly.
    MemoryMapTruncated { payload_len: usize, entry_size: u32 },
    /// A module tag is shorter than its fixed fields.
    ModuleTagTooSmall { offset: usize, size: u32 },
    /// A module ends before it starts.
    ModuleRangeInverted { start: u32, end: u32 },
    /// A string tag has no NUL terminator inside the tag.
    StringNotTerminated { tag_type: u32 },
    /// A string tag is not valid UTF-8.
    StringNotUtf8 { tag_type: u32 },
}

impl fmt::Display for Multiboot2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadAddress { address } => write!(f, "boot info address {address:#x} is null or not 8-byte aligned"),
            Self::TooShort { len } => write!(f, "boot info is {len} bytes, shorter than its 8-byte header"),
            Self::BadTotalSize { total_size, buffer_len } => {
                write!(f, "boot info total_size {total_size} is invalid (buffer holds {buffer_len} bytes)")
            }
            Self::TagOutOfBounds { offset, size } => {
                write!(f, "tag at offset {offset} with size {size} runs past the end of the boot info")
            }
            Self::TagTooSmall { offset, size } => {
                write!(f, "tag at offset {offset} has size {size}, smaller than its 8-byte header")
            }
            Self::MissingEndTag => write!(f, "boot info has no end tag"),
            Self::BadMemoryMapEntrySize { entry_size } => {
                write!(f, "memory map entry size {entry_size} is below 24 or not a multiple of 8")
            }
            Self::MemoryMapTruncated { payload_len, entry_size } => write!(
                f,
                "memory map payload of {payload_len} bytes is not a whole number of {entry_size}-byte entries"
            ),
            Self::ModuleTagTooSmall { offset, size } => {
                write!(f, "module tag at offset {offset} has size {size}, below the 16 bytes of its fields")
            }
            Self::ModuleRangeInverted { start, end } => {
                write!(f, "module end {end:#x} lies before its start {start:#x}")
            }
            Self::StringNotTerminated { tag_type } => write!(f, "string in tag type {tag_type} has no NUL terminator"),
            Self::StringNotUtf8 { tag_type } => write!(f, "string in tag type {tag_type} is not valid UTF-8"),
        }
    }
}

fn read_u32(bytes: &[u8], offset: usize) -> Option<u32> {
    let raw = bytes.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]))
}

fn read_u64(bytes: &[u8], offset: usize) -> Option<u64> {
    let raw = bytes.get(offset..offset.checked_add(8)?)?;
    let mut word = [0u8; 8];
    word.copy_from_slice(raw);
    Some(u64::from_le_bytes(word))
}

/// One raw tag: its type and its payload (the bytes after the 8-byte tag header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag<'a> {
    pub tag_type: u32,
    /// Offset of the tag header inside the boot info (for error messages).
    pub offset: usize,
    pub payload: &'a [u8],
}

/// A validated boot information block: every tag lies inside `total_size` and an end tag is present.
#[derive(Debug, Clone, Copy)]
pub struct BootInfo<'a> {
    bytes: &'a [u8],
}

impl<'a> BootInfo<'a> {
    /// Checks the fixed header and walks all tags once, so later accessors only decode payloads.
    pub fn parse(buffer: &'a [u8]) -> Result<Self, Multiboot2Error> {
        let total_size =
            read_u32(buffer, 0).ok_or(Multiboot2Error::TooShort { len: buffer.len() })?;
        if buffer.len() < TAG_HEADER_SIZE {
            return Err(Multiboot2Error::TooShort { len: buffer.len() });
        }
        let total = total_size as usize;
        if total < TAG_HEADER_SIZE || total > buffer.len() {
            return Err(Multiboot2Error::BadTotalSize {
                total_size,
                buffer_len: buffer.len(),
            });
        }
        let info = Self {
            bytes: &buffer[..total],
        };
        let mut saw_end = false;
        for tag in info.raw_tags() {
            if tag?.tag_type == TAG_END {
                saw_end = true;
            }
        }
        if !saw_end {
            return Err(Multiboot2Error::MissingEndTag);
        }
        Ok(info)
    }

    /// Size of the block as declared in its header (what a caller must keep reserved in memory).
    pub fn total_size(&self) -> usize {
        self.bytes.len()
    }

    /// All tags before the end tag, in order; yields an error (and then stops) on a malformed tag.
    pub fn raw_tags(&self) -> TagIter<'a> {
        TagIter {
            bytes: self.bytes,
            offset: TAG_HEADER_SIZE,
            done: false,
        }
    }

    fn find_tag(&self, tag_type: u32) -> Option<Tag<'a>> {
        self.raw_tags()
            .filter_map(Result::ok)
            .find(|tag| tag.tag_type == tag_type)
    }

    /// The kernel command line, if the loader passed one.
    pub fn command_line(&self) -> Option<Result<&'a str, Multiboot2Error>> {
        self.find_tag(TAG_COMMAND_LINE)
            .map(|tag| nul_terminated_str(tag.payload, TAG_COMMAND_LINE))
    }

    /// The boot loader's name, if the loader passed one.
    pub fn bootloader_name(&self) -> Option<Result<&'a str, Multiboot2Error>> {
        self.find_tag(TAG_BOOTLOADER_NAME)
            .map(|tag| nul_terminated_str(tag.payload, TAG_BOOTLOADER_NAME))
    }

    /// The memory map, if the loader passed one; the entry size is checked here.
    pub fn memory_map(&self) -> Option<Result<MemoryMapIter<'a>, Multiboot2Error>> {
        self.find_tag(TAG_MEMORY_MAP)
            .map(|tag| MemoryMapIter::new(tag.payload))
    }

    /// All module tags, in the order the loader listed them.
    pub fn modules(&self) -> ModuleIter<'a> {
        ModuleIter {
            tags: self.raw_tags(),
        }
    }
}

fn nul_terminated_str(payload: &[u8], tag_type: u32) -> Result<&str, Multiboot2Error> {
    let nul = payload
        .iter()
        .position(|&b| b == 0)
        .ok_or(Multiboot2Error::StringNotTerminated { tag_type })?;
    core::str::from_utf8(&payload[..nul]).map_err(|_| Multiboot2Error::StringNotUtf8 { tag_type })
}

/// Iterator over the tags of a boot info block (stops at the end tag or after the first error).
#[derive(Debug, Clone)]
pub struct TagIter<'a> {
    bytes: &'a [u8],
    offset: usize,
    done: bool,
}

impl<'a> Iterator for TagIter<'a> {
    type Item = Result<Tag<'a>, Multiboot2Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let offset = self.offset;
        let header = read_u32(self.bytes, offset).zip(read_u32(self.bytes, offset + 4));
        let Some((tag_type, size)) = header else {
            self.done = true;
            return Some(Err(Multiboot2Error::MissingEndTag));
        };
        if (size as usize) < TAG_HEADER_SIZE {
            self.done = true;
            return Some(Err(Multiboot2Error::TagTooSmall { offset, size }));
        }
        let end = offset
            .checked_add(size as usize)
            .filter(|&end| end <= self.bytes.len());
        let Some(end) = end else {
            self.done = true;
            return Some(Err(Multiboot2Error::TagOutOfBounds { offset, size }));
        };
        if tag_type == TAG_END {
            self.done = true;
            return Some(Ok(Tag {
                tag_type,
                offset,
                payload: &self.bytes[offset + TAG_HEADER_SIZE..end],
            }));
        }
        self.offset = end.next_multiple_of(8);
        Some(Ok(Tag {
            tag_type,
            offset,
            payload: &self.bytes[offset + TAG_HEADER_SIZE..end],
        }))
    }
}

/// Kind of a memory map region (multiboot2 numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryKind {
    Available,
    Reserved,
    AcpiReclaimable,
    AcpiNvs,
    Defective,
    /// A type the spec does not define; treated as reserved.
    Other(u32),
}

impl MemoryKind {
    pub fn from_raw(raw: u32) -> Self {
        match raw {
            1 => Self::Available,
            2 => Self::Reserved,
            3 => Self::AcpiReclaimable,
            4 => Self::AcpiNvs,
            5 => Self::Defective,
            other => Self::Other(other),
        }
    }
}

/// One memory map entry: `[base, base + length)` of the given kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryRegion {
    pub base: u64,
    pub length: u64,
    pub kind: MemoryKind,
}

impl MemoryRegion {
    /// Exclusive end address, saturating at `u64::MAX` for a region that would wrap.
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.length)
    }
}

/// Iterator over the entries of a memory map tag.
#[derive(Debug, Clone)]
pub struct MemoryMapIter<'a> {
    entries: &'a [u8],
    entry_size: usize,
}

impl<'a> MemoryMapIter<'a> {
    fn new(payload: &'a [u8]) -> Result<Self, Multiboot2Error> {
        let entry_size =
            read_u32(payload, 0).ok_or(Multiboot2Error::BadMemoryMapEntrySize { entry_size: 0 })?;
        let size = entry_size as usize;
        if size < MEMORY_MAP_ENTRY_MIN_SIZE || !size.is_multiple_of(8) {
            return Err(Multiboot2Error::BadMemoryMapEntrySize { entry_size });
        }
        let entries = payload
            .get(MEMORY_MAP_HEADER_SIZE - TAG_HEADER_SIZE..)
            .unwrap_or(&[]);
        if entries.len() % size != 0 {
            return Err(Multiboot2Error::MemoryMapTruncated {
                payload_len: entries.len(),
                entry_size,
            });
        }
        Ok(Self {
            entries,
            entry_size: size,
        })
    }
}

impl Iterator for MemoryMapIter<'_> {
    type Item = MemoryRegion;

    fn next(&mut self) -> Option<MemoryRegion> {
        let entry = self.entries.get(..self.entry_size)?;
        self.entries = &self.entries[self.entry_size..];
        // The constructor checked that every entry has at least 24 bytes, so these reads succeed.
        let base = read_u64(entry, 0)?;
        let length = read_u64(entry, 8)?;
        let kind = MemoryKind::from_raw(read_u32(entry, 16)?);
        Some(MemoryRegion { base, length, kind })
    }
}

/// A boot module: physical `[start, end)` and its command line string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Module<'a> {
    pub start: u32,
    pub end: u32,
    pub string: &'a str,
}

/// Iterator over module tags; a malformed module tag yields an error.
#[derive(Debug, Clone)]
pub struct ModuleIter<'a> {
    tags: TagIter<'a>,
}

impl<'a> Iterator for ModuleIter<'a> {
    type Item = Result<Module<'a>, Multiboot2Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let tag = match self.tags.next()? {
                Ok(tag) => tag,
                Err(err) => return Some(Err(err)),
            };
            if tag.tag_type == TAG_MODULE {
                return Some(parse_module(&tag));
            }
        }
    }
}

fn parse_module<'a>(tag: &Tag<'a>) -> Result<Module<'a>, Multiboot2Error> {
    let too_small = Multiboot2Error::ModuleTagTooSmall {
        offset: tag.offset,
        size: (tag.payload.len() + TAG_HEADER_SIZE) as u32,
    };
    if tag.payload.len() + TAG_HEADER_SIZE < MODULE_HEADER_SIZE {
        return Err(too_small);
    }
    let start = read_u32(tag.payload, 0).ok_or(too_small)?;
    let end = read_u32(tag.payload, 4).ok_or(too_small)?;
    if end < start {
        return Err(Multiboot2Error::ModuleRangeInverted { start, end });
    }
    let string = nul_terminated_str(&tag.payload[8..], TAG_MODULE)?;
    Ok(Module { start, end, string })
}

#[cfg(test)]
#[path = "multiboot2_tests.rs"]
mod tests;
