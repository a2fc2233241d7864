//! Replaces the boot page tables (first 4 GiB, all executable) with an identity map of everything up to the
//! top of the memory map: 1 GiB pages where the CPU has them, 2 MiB pages in any GiB holding code, and NX on
//! every page without hypervisor code when EFER.NXE is on. Tables come from the heap and are never freed.

use crate::memory::Range;
use crate::page_table::{
    gib_indices, leaf_entry, map_gib, table_entry, GibMapping, SIZE_1G, SIZE_2M,
};
use alloc::alloc::{alloc_zeroed, Layout};
use core::fmt;
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::PhysFrame;
use x86_64::PhysAddr;

#[repr(C, align(4096))]
struct PageTable([u64; 512]);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagingError {
    /// The heap could not supply a page table.
    OutOfMemory,
    /// The top of the map lies beyond the canonical lower half that 4-level paging reaches (128 TiB).
    TopTooHigh(u64),
}

impl fmt::Display for PagingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfMemory => write!(f, "out of memory for page tables"),
            Self::TopTooHigh(top) => write!(
                f,
                "identity map top {top:#x} is beyond the 128 TiB lower half"
            ),
        }
    }
}

/// What `init` built.
#[derive(Debug, Clone, Copy)]
pub struct PagingSummary {
    pub pml4: u64,
    pub huge_1g: usize,
    pub pages_2m: usize,
    pub tables: usize,
}

fn new_table(tables: &mut usize) -> Result<&'static mut PageTable, PagingError> {
    // SAFETY: the layout has a non-zero size; the result is checked for null before use.
    let raw = unsafe { alloc_zeroed(Layout::new::<PageTable>()) } as *mut PageTable;
    if raw.is_null() {
        return Err(PagingError::OutOfMemory);
    }
    *tables += 1;
    // SAFETY: freshly allocated, zeroed, aligned and never freed: a unique 'static table.
    Ok(unsafe { &mut *raw })
}

/// Builds the identity map of `[0, top)` (`top` a multiple of 1 GiB) and loads it into CR3.
pub fn init(
    top: u64,
    executable: &[Range],
    has_1g_pages: bool,
    nx_enabled: bool,
) -> Result<PagingSummary, PagingError> {
    const MAX_TOP: u64 = 1 << 47;
    if top > MAX_TOP {
        return Err(PagingError::TopTooHigh(top));
    }
    let mut summary = PagingSummary {
        pml4: 0,
        huge_1g: 0,
        pages_2m: 0,
        tables: 0,
    };
    let pml4 = new_table(&mut summary.tables)?;
    let mut pdpt: Option<&'static mut PageTable> = None;
    for gib_start in (0..top).step_by(SIZE_1G as usize) {
        let (pml4_index, pdpt_index) = gib_indices(gib_start);
        if pdpt_index == 0 || pdpt.is_none() {
            let table = new_table(&mut summary.tables)?;
            pml4.0[pml4_index] = table_entry(table as *const PageTable as u64);
            pdpt = Some(table);
        }
        let Some(pdpt) = pdpt.as_deref_mut() else {
            return Err(PagingError::OutOfMemory);
        };
        match map_gib(gib_start, executable, has_1g_pages, nx_enabled) {
            GibMapping::Huge(entry) => {
                pdpt.0[pdpt_index] = entry;
                summary.huge_1g += 1;
            }
            GibMapping::Split => {
                let pd = new_table(&mut summary.tables)?;
                for (index, entry) in pd.0.iter_mut().enumerate() {
                    *entry = leaf_entry(
                        gib_start + index as u64 * SIZE_2M,
                        SIZE_2M,
                        executable,
                        nx_enabled,
                    );
                }
                summary.pages_2m += 512;
                pdpt.0[pdpt_index] = table_entry(pd as *const PageTable as u64);
            }
        }
    }
    summary.pml4 = pml4 as *const PageTable as u64;
    let frame = PhysFrame::from_start_address(PhysAddr::new(summary.pml4))
        .map_err(|_| PagingError::OutOfMemory)?;
    // SAFETY: the new tables identity-map every address the hypervisor uses (its image, stack, heap and
    // boot info all lie below `top`), with its code executable, so execution continues unchanged.
    unsafe { Cr3::write(frame, Cr3Flags::empty()) };
    Ok(summary)
}
