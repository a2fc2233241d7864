//! The I/O permission map (12 KiB, one bit per port) and the MSR permission map (8 KiB, two
//! bits per MSR) of APM Vol. 2, 15.10.1 and 15.11. A set bit intercepts the access.

use alloc::boxed::Box;

/// IOPM size: 3 pages (65536 port bits plus a page for accesses crossing port 0xFFFF).
pub const IOPM_SIZE: usize = 3 * 4096;
/// MSRPM size: 2 pages.
pub const MSRPM_SIZE: usize = 2 * 4096;

/// Page-aligned storage: the CPU ignores bits 11:0 of IOPM_BASE_PA and MSRPM_BASE_PA.
#[repr(C, align(4096))]
#[derive(Clone, Debug, PartialEq, Eq)]
struct Aligned<const N: usize>([u8; N]);

/// The I/O permission map, 4-KiB aligned; its host-physical address goes to IOPM_BASE_PA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoPermissionMap {
    bits: Box<Aligned<IOPM_SIZE>>,
}

impl Default for IoPermissionMap {
    fn default() -> Self {
        Self::allow_all()
    }
}

impl IoPermissionMap {
    /// Intercepts nothing.
    pub fn allow_all() -> Self {
        Self {
            bits: Box::new(Aligned([0; IOPM_SIZE])),
        }
    }

    /// Intercepts every port.
    pub fn trap_all() -> Self {
        Self {
            bits: Box::new(Aligned([0xFF; IOPM_SIZE])),
        }
    }

    /// Intercepts (`trap = true`) or allows accesses touching `port`.
    pub fn set(&mut self, port: u16, trap: bool) {
        let (byte, bit) = (usize::from(port) / 8, port % 8);
        if trap {
            self.bits.0[byte] |= 1 << bit;
        } else {
            self.bits.0[byte] &= !(1 << bit);
        }
    }

    /// True when an access of `size` bytes (1, 2 or 4) at `port` is intercepted: the CPU checks
    /// the bit of every port the access covers (the third page covers the wrap past 0xFFFF).
    pub fn traps(&self, port: u16, size: u8) -> bool {
        (0..u32::from(size.clamp(1, 4))).any(|i| {
            let p = u32::from(port) + i;
            self.bits.0[(p / 8) as usize] & (1 << (p % 8)) != 0
        })
    }

    /// The raw map.
    pub fn as_bytes(&self) -> &[u8; IOPM_SIZE] {
        &self.bits.0
    }
}

/// An MSR read or write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsrAccess {
    /// RDMSR (the even bit of the pair).
    Read,
    /// WRMSR (the odd bit).
    Write,
}

/// Bit position of an MSR's read bit in the map, or None for an MSR outside the three ranges
/// (those always intercept).
pub fn msrpm_bit(msr: u32) -> Option<usize> {
    let (range_offset, base) = match msr {
        0..=0x1FFF => (0usize, 0),
        0xC000_0000..=0xC000_1FFF => (0x800, 0xC000_0000),
        0xC001_0000..=0xC001_1FFF => (0x1000, 0xC001_0000),
        _ => return None,
    };
    Some(range_offset * 8 + 2 * (msr - base) as usize)
}

/// The MSR permission map, 4-KiB aligned; its host-physical address goes to MSRPM_BASE_PA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsrPermissionMap {
    bits: Box<Aligned<MSRPM_SIZE>>,
}

impl Default for MsrPermissionMap {
    fn default() -> Self {
        Self::allow_all()
    }
}

impl MsrPermissionMap {
    /// Intercepts no MSR in the three ranges.
    pub fn allow_all() -> Self {
        Self {
            bits: Box::new(Aligned([0; MSRPM_SIZE])),
        }
    }

    /// Intercepts everything.
    pub fn trap_all() -> Self {
        Self {
            bits: Box::new(Aligned([0xFF; MSRPM_SIZE])),
        }
    }

    /// Intercepts or allows `access` to `msr`; false for an MSR outside the map's ranges
    /// (which always intercepts and cannot be allowed).
    pub fn set(&mut self, msr: u32, access: MsrAccess, trap: bool) -> bool {
        let Some(bit) = msrpm_bit(msr) else {
            return false;
        };
        let bit = bit + usize::from(access == MsrAccess::Write);
        let mask = 1u8 << (bit % 8);
        if trap {
            self.bits.0[bit / 8] |= mask;
        } else {
            self.bits.0[bit / 8] &= !mask;
        }
        true
    }

    /// True when `access` to `msr` is intercepted.
    pub fn traps(&self, msr: u32, access: MsrAccess) -> bool {
        match msrpm_bit(msr) {
            Some(bit) => {
                let bit = bit + usize::from(access == MsrAccess::Write);
                self.bits.0[bit / 8] & (1 << (bit % 8)) != 0
            }
            None => true,
        }
    }

    /// The raw map.
    pub fn as_bytes(&self) -> &[u8; MSRPM_SIZE] {
        &self.bits.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iopm_bits_trap_single_and_wide_accesses() {
        let mut map = IoPermissionMap::allow_all();
        assert!(!map.traps(0x3F8, 1));
        map.set(0x3F9, true);
        assert_eq!(map.as_bytes()[0x3F9 / 8], 1 << 1);
        assert!(map.traps(0x3F9, 1));
        assert!(!map.traps(0x3F8, 1));
        assert!(map.traps(0x3F8, 2), "a word access at 0x3F8 touches 0x3F9");
        assert!(map.traps(0x3F6, 4));
        assert!(!map.traps(0x3F4, 4));
        map.set(0xFFFF, true);
        assert!(map.traps(0xFFFE, 2));
        map.set(0x3F9, false);
        assert!(!map.traps(0x3F8, 4));
        assert!(IoPermissionMap::trap_all().traps(0x80, 1));
        // Wrap past 0xFFFF lands in the third page.
        let mut wrap = IoPermissionMap::allow_all();
        wrap.bits.0[0x2000] = 1;
        assert!(wrap.traps(0xFFFF, 2));
        assert!(!wrap.traps(0xFFFF, 1));
    }

    #[test]
    fn msrpm_ranges_and_bit_pairs() {
        assert_eq!(msrpm_bit(0), Some(0));
        assert_eq!(msrpm_bit(0x1FFF), Some(0x3FFE));
        assert_eq!(msrpm_bit(0xC000_0080), Some(0x800 * 8 + 0x100));
        assert_eq!(msrpm_bit(0xC001_0114), Some(0x1000 * 8 + 0x228));
        assert_eq!(msrpm_bit(0x2000), None);
        assert_eq!(msrpm_bit(0xC002_0000), None);

        let mut map = MsrPermissionMap::allow_all();
        assert!(map.set(0xC000_0080, MsrAccess::Write, true));
        // EFER is MSR 0x80 of the second range: byte 0x800 + 0x80 * 2 / 8 = 0x820, bit 1.
        assert_eq!(map.as_bytes()[0x820], 1 << 1);
        assert!(map.traps(0xC000_0080, MsrAccess::Write));
        assert!(!map.traps(0xC000_0080, MsrAccess::Read));
        assert!(map.set(0x10, MsrAccess::Read, true));
        assert_eq!(map.as_bytes()[4], 1);
        assert!(map.traps(0x10, MsrAccess::Read));
        assert!(map.set(0x10, MsrAccess::Read, false));
        assert!(!map.traps(0x10, MsrAccess::Read));
        assert!(!map.set(0x4000_0000, MsrAccess::Read, false));
        assert!(map.traps(0x4000_0000, MsrAccess::Read));
        assert!(MsrPermissionMap::trap_all().traps(0xC001_0117, MsrAccess::Read));
        assert_eq!(map.as_bytes().as_ptr() as usize % 4096, 0);
        assert_eq!(
            IoPermissionMap::allow_all().as_bytes().as_ptr() as usize % 4096,
            0
        );
    }
}
