//! Where table frames come from.

use alloc::boxed::Box;
use alloc::vec::Vec;

/// A source of zeroed 4-KiB frames for second-level page tables.
pub trait FrameAllocator {
    /// Allocates a zeroed, 4-KiB aligned frame and returns its host-physical address.
    fn alloc_zeroed_frame(&mut self) -> Option<u64>;
    /// The table stored in the frame at `phys` (the phys-to-virt mapping), or None if unknown.
    fn phys_to_virt(&self, phys: u64) -> Option<&[u64; 512]>;
    /// Mutable access to the table stored in the frame at `phys`.
    fn phys_to_virt_mut(&mut self, phys: u64) -> Option<&mut [u64; 512]>;
}

/// Heap-backed frames with made-up physical addresses (`base + index * 4096`), for host tests.
#[derive(Debug)]
pub struct HeapFrameAllocator {
    base: u64,
    limit: usize,
    frames: Vec<Box<[u64; 512]>>,
}

impl HeapFrameAllocator {
    /// At most `limit` frames, the first at the 4-KiB aligned physical address `base`.
    pub fn new(base: u64, limit: usize) -> Self {
        Self {
            base: base & !0xFFF,
            limit,
            frames: Vec::new(),
        }
    }

    /// Frames handed out so far.
    pub fn allocated(&self) -> usize {
        self.frames.len()
    }

    fn index(&self, phys: u64) -> Option<usize> {
        let offset = phys.checked_sub(self.base)?;
        if offset & 0xFFF != 0 {
            return None;
        }
        let index = usize::try_from(offset >> 12).ok()?;
        (index < self.frames.len()).then_some(index)
    }
}

impl FrameAllocator for HeapFrameAllocator {
    fn alloc_zeroed_frame(&mut self) -> Option<u64> {
        if self.frames.len() >= self.limit {
            return None;
        }
        self.frames.push(Box::new([0; 512]));
        Some(self.base + ((self.frames.len() as u64 - 1) << 12))
    }

    fn phys_to_virt(&self, phys: u64) -> Option<&[u64; 512]> {
        self.index(phys).map(|i| &*self.frames[i])
    }

    fn phys_to_virt_mut(&mut self, phys: u64) -> Option<&mut [u64; 512]> {
        self.index(phys).map(|i| &mut *self.frames[i])
    }
}
