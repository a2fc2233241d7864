//! Page table entry encoding for the identity map (4-level paging, 1 GiB and 2 MiB leaves).

use crate::memory::Range;

pub const PRESENT: u64 = 1 << 0;
pub const WRITABLE: u64 = 1 << 1;
/// PS bit: the entry maps a 1 GiB (PDPTE) or 2 MiB (PDE) page instead of pointing to a table.
pub const HUGE_PAGE: u64 = 1 << 7;
pub const NO_EXECUTE: u64 = 1 << 63;
/// Physical address bits 12..52 of an entry.
pub const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;

pub const SIZE_2M: u64 = 2 << 20;
pub const SIZE_1G: u64 = 1 << 30;
/// Bytes mapped by one PML4 entry.
pub const SIZE_512G: u64 = 512 << 30;

/// Entry pointing to a lower-level table: present and writable; NX and rights are decided at the leaves.
pub fn table_entry(table_phys: u64) -> u64 {
    (table_phys & ADDRESS_MASK) | PRESENT | WRITABLE
}

/// Leaf entry identity-mapping the huge page `[phys, phys + size)`: present, writable, and no-execute
/// unless it overlaps one of `executable` (NX only when `nx_enabled`, i.e. EFER.NXE is set).
pub fn leaf_entry(phys: u64, size: u64, executable: &[Range], nx_enabled: bool) -> u64 {
    let page = Range::from_len(phys, size);
    let runs_code = executable.iter().any(|code| code.overlaps(&page));
    let nx = if nx_enabled && !runs_code {
        NO_EXECUTE
    } else {
        0
    };
    (phys & ADDRESS_MASK) | PRESENT | WRITABLE | HUGE_PAGE | nx
}

/// How one GiB of the identity map is mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GibMapping {
    /// One 1 GiB page (this PDPT entry).
    Huge(u64),
    /// A page directory of 512 2 MiB pages, so code pages alone stay executable.
    Split,
}

/// Uses a 1 GiB page when the CPU has them and the GiB holds no code; else 2 MiB pages.
pub fn map_gib(
    gib_start: u64,
    executable: &[Range],
    has_1g_pages: bool,
    nx_enabled: bool,
) -> GibMapping {
    let gib = Range::from_len(gib_start, SIZE_1G);
    let holds_code = executable.iter().any(|code| code.overlaps(&gib));
    if has_1g_pages && !(holds_code && nx_enabled) {
        GibMapping::Huge(leaf_entry(gib_start, SIZE_1G, executable, nx_enabled))
    } else {
        GibMapping::Split
    }
}

/// Indices `(pml4, pdpt)` of the entries that map the GiB at `address`.
pub fn gib_indices(address: u64) -> (usize, usize) {
    (
        ((address >> 39) & 0x1ff) as usize,
        ((address >> 30) & 0x1ff) as usize,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODE: [Range; 1] = [Range {
        start: 0x10_1000,
        end: 0x12_0000,
    }];

    #[test]
    fn table_entries_point_to_the_table() {
        assert_eq!(table_entry(0x20_3000), 0x20_3003);
        assert_eq!(table_entry(0x20_3fff) & ADDRESS_MASK, 0x20_3000);
    }

    #[test]
    fn code_pages_stay_executable_others_get_nx() {
        let code_page = leaf_entry(0, SIZE_2M, &CODE, true);
        assert_eq!(code_page, PRESENT | WRITABLE | HUGE_PAGE);
        let data_page = leaf_entry(SIZE_2M, SIZE_2M, &CODE, true);
        assert_eq!(
            data_page,
            SIZE_2M | PRESENT | WRITABLE | HUGE_PAGE | NO_EXECUTE
        );
        assert_eq!(leaf_entry(SIZE_2M, SIZE_2M, &CODE, false) & NO_EXECUTE, 0);
    }

    #[test]
    fn gib_holding_code_is_split_when_nx_is_on() {
        assert_eq!(map_gib(0, &CODE, true, true), GibMapping::Split);
        assert_eq!(map_gib(0, &CODE, false, true), GibMapping::Split);
        assert_eq!(
            map_gib(0, &CODE, true, false),
            GibMapping::Huge(PRESENT | WRITABLE | HUGE_PAGE)
        );
        assert_eq!(
            map_gib(3 * SIZE_1G, &CODE, true, true),
            GibMapping::Huge((3 * SIZE_1G) | PRESENT | WRITABLE | HUGE_PAGE | NO_EXECUTE)
        );
        assert_eq!(map_gib(3 * SIZE_1G, &CODE, false, true), GibMapping::Split);
    }

    #[test]
    fn indices_of_a_gib() {
        assert_eq!(gib_indices(0), (0, 0));
        assert_eq!(gib_indices(5 * SIZE_1G), (0, 5));
        assert_eq!(gib_indices(SIZE_512G + 2 * SIZE_1G), (1, 2));
    }
}
