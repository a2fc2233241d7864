//! Frames for second-level page tables (EPT for VT-x, NPT for SVM), from the heap. The heap is
//! identity-mapped (physical = virtual), so a frame's address is both. One allocator serves both
//! backends: it implements `vmx::ept::FrameAllocator` and `svm::npt::FrameAllocator`, which ask the
//! same three things.

use alloc::alloc::{alloc_zeroed, Layout};
use alloc::vec::Vec;

const PAGE: Layout = match Layout::from_size_align(4096, 4096) {
    Ok(l) => l,
    Err(_) => panic!("4096/4096 is a valid layout"),
};

/// Table frames of one guest, at most `limit` of them (8 MiB of guest RAM needs 4).
pub struct TableFrames {
    frames: Vec<u64>,
    limit: usize,
}

impl TableFrames {
    pub fn new(limit: usize) -> Self {
        TableFrames {
            frames: Vec::new(),
            limit,
        }
    }

    fn alloc(&mut self) -> Option<u64> {
        if self.frames.len() >= self.limit {
            return None;
        }
        // SAFETY: non-zero size; checked for null.
        let frame = unsafe { alloc_zeroed(PAGE) };
        (!frame.is_null()).then(|| {
            self.frames.push(frame as u64);
            frame as u64
        })
    }

    fn table(&self, phys: u64) -> Option<&[u64; 512]> {
        // SAFETY: `phys` is one of our own live, aligned 4 KiB frames (identity-mapped), borrowed
        // with `self`.
        self.frames
            .contains(&phys)
            .then(|| unsafe { &*(phys as *const [u64; 512]) })
    }

    fn table_mut(&mut self, phys: u64) -> Option<&mut [u64; 512]> {
        // SAFETY: as above, exclusively borrowed with `self`.
        self.frames
            .contains(&phys)
            .then(|| unsafe { &mut *(phys as *mut [u64; 512]) })
    }
}

impl vmx::ept::FrameAllocator for TableFrames {
    fn alloc_zeroed_frame(&mut self) -> Option<u64> {
        self.alloc()
    }
    fn phys_to_virt(&self, phys: u64) -> Option<&[u64; 512]> {
        self.table(phys)
    }
    fn phys_to_virt_mut(&mut self, phys: u64) -> Option<&mut [u64; 512]> {
        self.table_mut(phys)
    }
}

impl svm::npt::FrameAllocator for TableFrames {
    fn alloc_zeroed_frame(&mut self) -> Option<u64> {
        self.alloc()
    }
    fn phys_to_virt(&self, phys: u64) -> Option<&[u64; 512]> {
        self.table(phys)
    }
    fn phys_to_virt_mut(&mut self, phys: u64) -> Option<&mut [u64; 512]> {
        self.table_mut(phys)
    }
}
