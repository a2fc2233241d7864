//! The layout of a guest's RAM and the structures the hypervisor builds in it before the first entry:
//! a GDT (code 0x08, data 0x10, TSS 0x18), a TSS, and 4-level page tables identity-mapping the first
//! 4 GiB with 2 MiB pages (so an access outside the guest's RAM reaches the EPT and exits, instead of
//! faulting inside the guest). Also a guest page walk to read the instruction at a guest RIP.

use core::fmt;

/// Guest RAM per agent: agents are linked at 4 MiB and must end below 8 MiB (docs/agents.md).
pub const GUEST_RAM_SIZE: u64 = 8 << 20;
/// The hypervisor's structures live below this; ELF segments must start at or above it.
pub const RESERVED_LOW: u64 = 1 << 20;
pub const GDT_GPA: u64 = 0x1000;
pub const GDT_LIMIT: u32 = 0x27;
pub const TSS_GPA: u64 = 0x2000;
pub const PML4_GPA: u64 = 0x3000;
const PDPT_GPA: u64 = 0x4000;
/// Four page directories, one per GiB.
const PD_GPA: u64 = 0x5000;
const IDENTITY_GIBS: u64 = 4;
/// Initial RSP (agents set their own; this is for a guest that does not).
pub const INITIAL_RSP: u64 = RESERVED_LOW - 16;

const PRESENT: u64 = 1;
const WRITABLE: u64 = 1 << 1;
const HUGE: u64 = 1 << 7;
const ADDRESS_MASK: u64 = 0x000F_FFFF_FFFF_F000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutError {
    /// The memory given is smaller than the reserved low area.
    TooSmall { size: u64 },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooSmall { size } => {
                write!(f, "guest RAM of {size:#x} bytes is below {RESERVED_LOW:#x}")
            }
        }
    }
}

fn put_u64(mem: &mut [u8], gpa: u64, value: u64) {
    let at = gpa as usize;
    mem[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

fn get_u64(mem: &[u8], gpa: u64) -> Option<u64> {
    let at = usize::try_from(gpa).ok()?;
    let bytes = mem.get(at..at.checked_add(8)?)?;
    let mut word = [0u8; 8];
    word.copy_from_slice(bytes);
    Some(u64::from_le_bytes(word))
}

/// Writes the GDT, TSS and page tables into `mem` (guest-physical 0 = `mem[0]`).
pub fn build_boot_structures(mem: &mut [u8]) -> Result<(), LayoutError> {
    if (mem.len() as u64) < RESERVED_LOW {
        return Err(LayoutError::TooSmall {
            size: mem.len() as u64,
        });
    }
    mem[..RESERVED_LOW as usize].fill(0);
    // Null, 64-bit code (0xA09B), data (0xC093), then a 16-byte busy 64-bit TSS descriptor.
    put_u64(mem, GDT_GPA + 8, 0x00AF_9B00_0000_FFFF);
    put_u64(mem, GDT_GPA + 16, 0x00CF_9300_0000_FFFF);
    let limit = 0x67u64;
    let base = TSS_GPA;
    let tss_low = limit | (base & 0xFF_FFFF) << 16 | 0x8B << 40 | ((base >> 24) & 0xFF) << 56;
    put_u64(mem, GDT_GPA + 24, tss_low);
    put_u64(mem, GDT_GPA + 32, base >> 32);
    put_u64(mem, PML4_GPA, PDPT_GPA | PRESENT | WRITABLE);
    for gib in 0..IDENTITY_GIBS {
        let pd = PD_GPA + gib * 0x1000;
        put_u64(mem, PDPT_GPA + gib * 8, pd | PRESENT | WRITABLE);
        for entry in 0..512 {
            let address = (gib << 30) | (entry << 21);
            put_u64(mem, pd + entry * 8, address | PRESENT | WRITABLE | HUGE);
        }
    }
    Ok(())
}

/// Translates a guest linear address through the guest's 4-level page tables at `cr3` (which must lie in
/// `mem`); None when a table is outside `mem` or an entry is not present.
pub fn translate(mem: &[u8], cr3: u64, linear: u64) -> Option<u64> {
    let mut table = cr3 & ADDRESS_MASK;
    for level in (1..=4u32).rev() {
        let shift = 12 + 9 * (level - 1);
        let index = (linear >> shift) & 0x1FF;
        let entry = get_u64(mem, table + index * 8)?;
        if entry & PRESENT == 0 {
            return None;
        }
        if level == 1 || ((level == 2 || level == 3) && entry & HUGE != 0) {
            let page_mask = (1u64 << shift) - 1;
            return Some((entry & ADDRESS_MASK & !page_mask) | (linear & page_mask));
        }
        table = entry & ADDRESS_MASK;
    }
    None
}

/// Up to 15 instruction bytes at guest linear `rip`, stopping at the end of guest RAM or of a mapped page.
pub fn fetch_instruction(mem: &[u8], cr3: u64, rip: u64) -> ([u8; 15], usize) {
    let mut bytes = [0u8; 15];
    let mut len = 0;
    while len < bytes.len() {
        let Some(gpa) = translate(mem, cr3, rip.wrapping_add(len as u64)) else {
            break;
        };
        let Some(byte) = usize::try_from(gpa).ok().and_then(|at| mem.get(at)) else {
            break;
        };
        bytes[len] = *byte;
        len += 1;
    }
    (bytes, len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn identity_map_translates_ram_and_beyond() {
        let mut mem = vec![0u8; GUEST_RAM_SIZE as usize];
        build_boot_structures(&mut mem).unwrap();
        assert_eq!(translate(&mem, PML4_GPA, 0x40_1234), Some(0x40_1234));
        assert_eq!(translate(&mem, PML4_GPA, 0xFEB0_0008), Some(0xFEB0_0008));
        assert_eq!(translate(&mem, PML4_GPA, 0x1_0000_0000), None);
        assert_eq!(translate(&mem, 0x7FF_F000, 0x1000), None, "CR3 outside RAM");
    }

    #[test]
    fn gdt_holds_flat_long_mode_segments_and_tss() {
        let mut mem = vec![0u8; RESERVED_LOW as usize];
        build_boot_structures(&mut mem).unwrap();
        assert_eq!(get_u64(&mem, GDT_GPA + 8), Some(0x00AF_9B00_0000_FFFF));
        let tss = get_u64(&mem, GDT_GPA + 24).unwrap();
        assert_eq!((tss >> 40) & 0xFF, 0x8B);
        assert_eq!((tss >> 16) & 0xFF_FFFF, TSS_GPA);
        assert_eq!(
            build_boot_structures(&mut [0u8; 4096]),
            Err(LayoutError::TooSmall { size: 4096 })
        );
    }

    #[test]
    fn fetch_stops_at_end_of_ram() {
        let mut mem = vec![0u8; RESERVED_LOW as usize];
        build_boot_structures(&mut mem).unwrap();
        mem[RESERVED_LOW as usize - 2] = 0x0F;
        mem[RESERVED_LOW as usize - 1] = 0x01;
        let (bytes, len) = fetch_instruction(&mem, PML4_GPA, RESERVED_LOW - 2);
        assert_eq!((len, &bytes[..2]), (2, &[0x0F, 0x01][..]));
        let (_, len) = fetch_instruction(&mem, PML4_GPA, 0x100);
        assert_eq!(len, 15);
    }
}
