//! The global allocator: a buddy allocator fed with usable RAM from the boot memory map.

use crate::memory::Range;
use buddy_system_allocator::LockedHeap;

/// Orders up to 2^32 bytes per block: large RAM regions are split into blocks of at most 4 GiB.
const HEAP_ORDER: usize = 33;

#[global_allocator]
static HEAP: LockedHeap<HEAP_ORDER> = LockedHeap::empty();

/// Hands `range` (identity-mapped, page-aligned RAM nobody else uses) to the allocator.
///
/// # Safety
/// The range must be mapped, writable, and not used by anything else for the rest of the run.
pub unsafe fn add_region(range: Range) {
    if range.is_empty() {
        return;
    }
    // SAFETY: the caller guarantees the range is free, mapped RAM.
    unsafe {
        HEAP.lock()
            .add_to_heap(range.start as usize, range.end as usize)
    };
}

/// `(bytes handed to the allocator, bytes currently allocated)`.
pub fn usage() -> (usize, usize) {
    let heap = HEAP.lock();
    (heap.stats_total_bytes(), heap.stats_alloc_actual())
}
