//! What every guest needs whatever the backend: its RAM (with the boot structures and the loaded
//! image) and the frames of its second-level page tables (EPT for VT-x, NPT for SVM), both from the
//! heap. The heap is identity-mapped (physical = virtual), so an address is both. One frame allocator
//! serves both backends: it implements `slat::FrameAllocator`, the trait that `vmx::ept` and
//! `svm::npt` both re-export.

use crate::guest_memory;
use alloc::alloc::{alloc_zeroed, Layout};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// A guest set-up error: what failed and why.
pub fn setup_err(what: &str, err: impl core::fmt::Display) -> String {
    format!("{what}: {err}")
}

/// A guest's RAM, built and loaded.
pub struct GuestRam {
    pub ram: &'static mut [u8],
    /// Host-physical (= virtual) address of guest-physical 0.
    pub host_base: u64,
    /// The image's entry point.
    pub entry: u64,
}

/// Allocates `ram_size` bytes of guest RAM (2 MiB aligned, zeroed, never freed: guests live for the
/// rest of the run), writes the boot structures, and lets `load` write the image and return its entry.
pub fn allocate_guest_ram(
    ram_size: usize,
    load: impl FnOnce(&mut [u8]) -> Result<u64, String>,
) -> Result<GuestRam, String> {
    let layout =
        Layout::from_size_align(ram_size, 2 << 20).map_err(|e| setup_err("RAM layout", e))?;
    // SAFETY: non-zero size; checked for null; never freed.
    let base = unsafe { alloc_zeroed(layout) };
    if base.is_null() {
        return Err(format!("no memory for {ram_size:#x} bytes of guest RAM"));
    }
    // SAFETY: a fresh allocation of `ram_size` bytes owned by this guest for good.
    let ram = unsafe { core::slice::from_raw_parts_mut(base, ram_size) };
    guest_memory::build_boot_structures(ram).map_err(|e| setup_err("guest layout", e))?;
    let entry = load(ram)?;
    Ok(GuestRam {
        ram,
        host_base: base as u64,
        entry,
    })
}

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

impl slat::FrameAllocator for TableFrames {
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
