//! MSR bitmap and I/O bitmaps A/B (SDM Vol. 3, 25.6.4 and 25.6.9). A set bit makes the
//! access cause a VM exit. Each bitmap is one 4-KiB aligned page the VMCS points to.

use core::fmt;

/// Kind of MSR access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsrAccess {
    /// RDMSR.
    Read,
    /// WRMSR.
    Write,
}

/// Bitmap errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitmapError {
    /// The MSR is outside 0..=0x1FFF and 0xC0000000..=0xC0001FFF: accesses to it always exit.
    MsrAlwaysTraps(u32),
}

impl fmt::Display for BitmapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MsrAlwaysTraps(msr) => write!(
                f,
                "MSR {msr:#x} is outside the MSR bitmap ranges; its accesses always cause VM exits"
            ),
        }
    }
}

/// The 4-KiB MSR bitmap: read-low, read-high, write-low, write-high quarters of 1 KiB.
#[repr(C, align(4096))]
#[derive(Clone)]
pub struct MsrBitmap {
    bytes: [u8; 4096],
}

impl Default for MsrBitmap {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MsrBitmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set: u32 = self.bytes.iter().map(|b| b.count_ones()).sum();
        write!(f, "MsrBitmap({set} trapping bits)")
    }
}

/// Byte offset of the first bit for `msr` and `access`, plus the bit number within the range.
fn msr_position(msr: u32, access: MsrAccess) -> Option<(usize, u32)> {
    let (quarter, bit) = match msr {
        0..=0x1FFF => (0, msr),
        0xC000_0000..=0xC000_1FFF => (1, msr - 0xC000_0000),
        _ => return None,
    };
    let quarter = quarter + if access == MsrAccess::Write { 2 } else { 0 };
    Some((quarter * 1024, bit))
}

impl MsrBitmap {
    /// A bitmap that lets every in-range MSR access through.
    pub fn new() -> Self {
        Self { bytes: [0; 4096] }
    }

    /// A bitmap that traps every MSR access.
    pub fn trap_all() -> Self {
        Self {
            bytes: [0xFF; 4096],
        }
    }

    /// Makes `access` to `msr` exit. Out-of-range MSRs always exit, so that is a no-op.
    pub fn set_trap(&mut self, msr: u32, access: MsrAccess) {
        if let Some((base, bit)) = msr_position(msr, access) {
            self.bytes[base + (bit / 8) as usize] |= 1 << (bit % 8);
        }
    }

    /// Makes `access` to `msr` run without an exit; fails for MSRs that always exit.
    pub fn clear_trap(&mut self, msr: u32, access: MsrAccess) -> Result<(), BitmapError> {
        let (base, bit) = msr_position(msr, access).ok_or(BitmapError::MsrAlwaysTraps(msr))?;
        self.bytes[base + (bit / 8) as usize] &= !(1 << (bit % 8));
        Ok(())
    }

    /// True when `access` to `msr` causes a VM exit.
    pub fn traps(&self, msr: u32, access: MsrAccess) -> bool {
        match msr_position(msr, access) {
            Some((base, bit)) => self.bytes[base + (bit / 8) as usize] & (1 << (bit % 8)) != 0,
            None => true,
        }
    }

    /// The page contents.
    pub fn as_bytes(&self) -> &[u8; 4096] {
        &self.bytes
    }
}

/// One 4-KiB I/O bitmap (A covers ports 0..=0x7FFF, B covers 0x8000..=0xFFFF).
#[repr(C, align(4096))]
#[derive(Clone)]
pub struct IoBitmap {
    bytes: [u8; 4096],
}

impl fmt::Debug for IoBitmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set: u32 = self.bytes.iter().map(|b| b.count_ones()).sum();
        write!(f, "IoBitmap({set} trapping ports)")
    }
}

impl IoBitmap {
    /// The page contents.
    pub fn as_bytes(&self) -> &[u8; 4096] {
        &self.bytes
    }
}

/// I/O bitmaps A and B together.
#[derive(Clone, Debug)]
pub struct IoBitmaps {
    /// Ports 0..=0x7FFF.
    pub a: IoBitmap,
    /// Ports 0x8000..=0xFFFF.
    pub b: IoBitmap,
}

impl Default for IoBitmaps {
    fn default() -> Self {
        Self::new()
    }
}

impl IoBitmaps {
    /// Bitmaps that let every port through.
    pub fn new() -> Self {
        let page = IoBitmap { bytes: [0; 4096] };
        Self {
            a: page.clone(),
            b: page,
        }
    }

    /// Bitmaps that trap every port.
    pub fn trap_all() -> Self {
        let page = IoBitmap {
            bytes: [0xFF; 4096],
        };
        Self {
            a: page.clone(),
            b: page,
        }
    }

    fn slot(&mut self, port: u16) -> (&mut u8, u8) {
        let page = if port < 0x8000 {
            &mut self.a
        } else {
            &mut self.b
        };
        let bit = port & 0x7FFF;
        (&mut page.bytes[usize::from(bit / 8)], 1 << (bit % 8))
    }

    /// Makes accesses to `port` exit.
    pub fn set_trap(&mut self, port: u16) {
        let (byte, mask) = self.slot(port);
        *byte |= mask;
    }

    /// Lets accesses to `port` through.
    pub fn clear_trap(&mut self, port: u16) {
        let (byte, mask) = self.slot(port);
        *byte &= !mask;
    }

    /// Traps every port in `first..=last`.
    pub fn set_trap_range(&mut self, first: u16, last: u16) {
        for port in first..=last {
            self.set_trap(port);
        }
    }

    /// True when a one-byte access to `port` exits.
    pub fn traps(&self, port: u16) -> bool {
        let page = if port < 0x8000 { &self.a } else { &self.b };
        let bit = port & 0x7FFF;
        page.bytes[usize::from(bit / 8)] & (1 << (bit % 8)) != 0
    }

    /// True when an access of `size` bytes at `port` exits: any covered port traps, and an
    /// access that wraps past 0xFFFF always exits (SDM 26.1.3).
    pub fn traps_access(&self, port: u16, size: u8) -> bool {
        (0..u16::from(size.max(1))).any(|i| match port.checked_add(i) {
            Some(p) => self.traps(p),
            None => true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msr_bitmap_set_bit_traps_and_unset_does_not() {
        let mut bm = MsrBitmap::new();
        assert!(!bm.traps(0x277, MsrAccess::Read));
        bm.set_trap(0x277, MsrAccess::Write);
        assert!(bm.traps(0x277, MsrAccess::Write));
        assert!(!bm.traps(0x277, MsrAccess::Read));
        assert!(!bm.traps(0x276, MsrAccess::Write));
        bm.clear_trap(0x277, MsrAccess::Write).unwrap();
        assert!(!bm.traps(0x277, MsrAccess::Write));
    }

    #[test]
    fn msr_bitmap_layout_matches_sdm_quarters() {
        let mut bm = MsrBitmap::new();
        bm.set_trap(0x0000_0009, MsrAccess::Read);
        bm.set_trap(0xC000_0080, MsrAccess::Read);
        bm.set_trap(0x0000_1FFF, MsrAccess::Write);
        bm.set_trap(0xC000_0082, MsrAccess::Write);
        let b = bm.as_bytes();
        assert_eq!(b[1], 1 << 1);
        assert_eq!(b[0x400 + 0x10], 1);
        assert_eq!(b[0x800 + 0x3FF], 1 << 7);
        assert_eq!(b[0xC00 + 0x10], 1 << 2);
        assert_eq!(b.iter().map(|x| x.count_ones()).sum::<u32>(), 4);
    }

    #[test]
    fn msrs_outside_ranges_always_trap() {
        let mut bm = MsrBitmap::new();
        assert!(bm.traps(0x2000, MsrAccess::Read));
        assert!(bm.traps(0xC001_0000, MsrAccess::Write));
        assert_eq!(
            bm.clear_trap(0x4000_0000, MsrAccess::Read),
            Err(BitmapError::MsrAlwaysTraps(0x4000_0000))
        );
        let all = MsrBitmap::trap_all();
        assert!(all.traps(0xC000_0100, MsrAccess::Read));
    }

    #[test]
    fn io_bitmaps_split_ports_between_a_and_b() {
        let mut io = IoBitmaps::new();
        assert!(!io.traps(0x3F8));
        io.set_trap(0x3F8);
        io.set_trap(0x8001);
        assert!(io.traps(0x3F8));
        assert!(!io.traps(0x3F9));
        assert!(io.traps(0x8001));
        assert_eq!(io.a.as_bytes()[0x3F8 / 8], 1 << 0);
        assert_eq!(io.b.as_bytes()[0], 1 << 1);
        io.clear_trap(0x3F8);
        assert!(!io.traps(0x3F8));
        io.set_trap_range(0xCF8, 0xCFF);
        assert!(io.traps(0xCFC) && !io.traps(0xD00));
        assert!(IoBitmaps::trap_all().traps(0xFFFF));
    }

    #[test]
    fn multi_byte_io_access_traps_if_any_port_does() {
        let mut io = IoBitmaps::new();
        io.set_trap(0x71);
        assert!(io.traps_access(0x70, 2));
        assert!(!io.traps_access(0x70, 1));
        assert!(io.traps_access(0xFFFE, 4));
        assert!(!io.traps_access(0xFFFC, 4));
    }
}
