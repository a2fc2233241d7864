//! The VMCB (APM Vol. 2, Appendix B): a 4-KiB page, control area at 0x000..0x400 and state-save
//! area at 0x400..; fields are typed by offset and width ([`Field8`] .. [`Field64`]) and read or
//! written little-endian through [`Vmcb`] accessors, without `unsafe`.

pub mod control;
pub mod save;

use core::fmt;

/// Size of a VMCB in bytes.
pub const VMCB_SIZE: usize = 4096;
/// Offset of the state-save area.
pub const SAVE_AREA_OFFSET: usize = 0x400;

macro_rules! field_types {
    ($($name:ident: $ty:ty;)*) => {$(
        /// A VMCB field of this width at a byte offset from the start of the VMCB.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name {
            /// Byte offset from the start of the VMCB.
            pub offset: u16,
            /// The APM name of the field.
            pub name: &'static str,
        }

        impl $name {
            /// A field at `offset` (from the start of the VMCB).
            pub const fn new(offset: u16, name: &'static str) -> Self {
                assert!(offset as usize + core::mem::size_of::<$ty>() <= VMCB_SIZE);
                Self { offset, name }
            }
        }
    )*};
}

field_types! {
    Field8: u8;
    Field16: u16;
    Field32: u32;
    Field64: u64;
}

/// A VMCB: one 4-KiB aligned page. Place it in memory whose host-physical address is known
/// (VMRUN takes that address in RAX).
#[repr(C, align(4096))]
#[derive(Clone, PartialEq, Eq)]
pub struct Vmcb {
    bytes: [u8; VMCB_SIZE],
}

impl Default for Vmcb {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Vmcb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vmcb")
            .field("exitcode", &self.get64(control::EXITCODE))
            .field("rip", &self.get64(save::RIP))
            .finish_non_exhaustive()
    }
}

impl Vmcb {
    /// An all-zero VMCB.
    pub const fn new() -> Self {
        Self {
            bytes: [0; VMCB_SIZE],
        }
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; VMCB_SIZE] {
        &self.bytes
    }

    /// The raw bytes, mutable.
    pub fn as_bytes_mut(&mut self) -> &mut [u8; VMCB_SIZE] {
        &mut self.bytes
    }

    fn read<const N: usize>(&self, offset: u16) -> [u8; N] {
        let start = usize::from(offset);
        let mut out = [0; N];
        out.copy_from_slice(&self.bytes[start..start + N]);
        out
    }

    fn write<const N: usize>(&mut self, offset: u16, value: [u8; N]) {
        let start = usize::from(offset);
        self.bytes[start..start + N].copy_from_slice(&value);
    }

    /// Reads an 8-bit field.
    pub fn get8(&self, field: Field8) -> u8 {
        self.bytes[usize::from(field.offset)]
    }
    /// Writes an 8-bit field.
    pub fn set8(&mut self, field: Field8, value: u8) {
        self.bytes[usize::from(field.offset)] = value;
    }
    /// Reads a 16-bit field.
    pub fn get16(&self, field: Field16) -> u16 {
        u16::from_le_bytes(self.read(field.offset))
    }
    /// Writes a 16-bit field.
    pub fn set16(&mut self, field: Field16, value: u16) {
        self.write(field.offset, value.to_le_bytes());
    }
    /// Reads a 32-bit field.
    pub fn get32(&self, field: Field32) -> u32 {
        u32::from_le_bytes(self.read(field.offset))
    }
    /// Writes a 32-bit field.
    pub fn set32(&mut self, field: Field32, value: u32) {
        self.write(field.offset, value.to_le_bytes());
    }
    /// Reads a 64-bit field.
    pub fn get64(&self, field: Field64) -> u64 {
        u64::from_le_bytes(self.read(field.offset))
    }
    /// Writes a 64-bit field.
    pub fn set64(&mut self, field: Field64, value: u64) {
        self.write(field.offset, value.to_le_bytes());
    }

    /// Sets or clears one intercept.
    pub fn set_intercept(&mut self, intercept: control::Intercept, on: bool) {
        let word = self.get32(intercept.word);
        let bit = 1u32 << intercept.bit;
        self.set32(intercept.word, if on { word | bit } else { word & !bit });
    }

    /// True when the intercept is set.
    pub fn intercepts(&self, intercept: control::Intercept) -> bool {
        self.get32(intercept.word) & (1 << intercept.bit) != 0
    }

    /// A segment register of the state-save area.
    pub fn segment(&self, seg: save::SegmentRegister) -> Segment {
        let f = seg.fields();
        Segment {
            selector: self.get16(f.selector),
            attrib: SegmentAttributes(self.get16(f.attrib)),
            limit: self.get32(f.limit),
            base: self.get64(f.base),
        }
    }

    /// Writes a segment register of the state-save area.
    pub fn set_segment(&mut self, seg: save::SegmentRegister, value: Segment) {
        let f = seg.fields();
        self.set16(f.selector, value.selector);
        self.set16(f.attrib, value.attrib.0);
        self.set32(f.limit, value.limit);
        self.set64(f.base, value.base);
    }

    /// The instruction bytes the CPU fetched for the intercepted instruction (decode assists):
    /// at most 15, empty when the CPU did not provide them.
    pub fn guest_instruction_bytes(&self) -> &[u8] {
        let count = usize::from(self.get8(control::GUEST_INSTRUCTION_BYTE_COUNT)).min(15);
        let start = usize::from(control::GUEST_INSTRUCTION_BYTES_OFFSET);
        &self.bytes[start..start + count]
    }

    /// Sets the fetched guest instruction bytes (more than 15 are cut to 15); used by tests.
    pub fn set_guest_instruction_bytes(&mut self, bytes: &[u8]) {
        let count = bytes.len().min(15);
        let start = usize::from(control::GUEST_INSTRUCTION_BYTES_OFFSET);
        self.bytes[start..start + 15].fill(0);
        self.bytes[start..start + count].copy_from_slice(&bytes[..count]);
        self.set8(control::GUEST_INSTRUCTION_BYTE_COUNT, count as u8);
    }
}

/// Segment attributes in the SVM packed 12-bit format: bits 7:0 are descriptor bits 47:40
/// (type, S, DPL, P) and bits 11:8 are descriptor bits 55:52 (AVL, L, D/B, G).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentAttributes(pub u16);

impl SegmentAttributes {
    /// Type field (bits 3:0).
    pub fn segment_type(self) -> u8 {
        (self.0 & 0xF) as u8
    }
    /// S: code/data (1) or system (0) (bit 4).
    pub fn code_or_data(self) -> bool {
        self.0 & (1 << 4) != 0
    }
    /// DPL (bits 6:5).
    pub fn dpl(self) -> u8 {
        ((self.0 >> 5) & 3) as u8
    }
    /// P: present (bit 7).
    pub fn present(self) -> bool {
        self.0 & (1 << 7) != 0
    }
    /// L: 64-bit code segment (bit 9).
    pub fn long(self) -> bool {
        self.0 & (1 << 9) != 0
    }
    /// D/B: default operand size 32 (bit 10).
    pub fn default_big(self) -> bool {
        self.0 & (1 << 10) != 0
    }
    /// G: limit in 4-KiB units (bit 11).
    pub fn granularity(self) -> bool {
        self.0 & (1 << 11) != 0
    }

    /// Packs the attribute bits of an 8-byte GDT/LDT descriptor.
    pub fn from_descriptor(descriptor: u64) -> Self {
        let low = (descriptor >> 40) & 0xFF;
        let high = (descriptor >> 52) & 0xF;
        Self((low | high << 8) as u16)
    }
}

/// One segment register of the state-save area.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Selector.
    pub selector: u16,
    /// Packed attributes.
    pub attrib: SegmentAttributes,
    /// Limit in bytes (already scaled by G).
    pub limit: u32,
    /// Base address.
    pub base: u64,
}

#[cfg(test)]
mod tests;
