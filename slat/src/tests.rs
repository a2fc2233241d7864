//! The generic walk, checked with a made-up format.

extern crate std;

use super::*;
use std::string::ToString;

/// Rights in bits 1:0 (read, write), memory type in bits 4:3, bit 9 in every leaf.
#[derive(Debug)]
struct Fake;

const READ: u64 = 1;
const WRITE: u64 = 2;
const MEMORY_TYPE: u64 = 2 << 3;
const LEAF_MARK: u64 = 1 << 9;

impl EntryFormat for Fake {
    const TABLE_FLAGS: u64 = READ | WRITE;
    const LEAF_FLAGS: u64 = LEAF_MARK;
    const RIGHTS_MASK: u64 = READ | WRITE;

    fn removes_rights(old: u64, new: u64) -> bool {
        old & !new != 0
    }
}

const BASE: u64 = 0x10_0000;

fn tables(limit: usize) -> PageTables<Fake, HeapFrameAllocator> {
    PageTables::new(HeapFrameAllocator::new(BASE, limit)).unwrap()
}

fn raw_entry(t: &PageTables<Fake, HeapFrameAllocator>, gpa: u64, level: usize) -> u64 {
    let mut table = t.pml4_phys();
    for l in (level + 1..=4).rev() {
        table = t.allocator().phys_to_virt(table).unwrap()[index_at(gpa, l)] & ADDRESS_MASK;
    }
    t.allocator().phys_to_virt(table).unwrap()[index_at(gpa, level)]
}

#[test]
fn map_4k_writes_table_and_leaf_entries() {
    let mut t = tables(8);
    assert_eq!(t.pml4_phys(), BASE);
    t.map(0x7000, 0x4_2000, PageSize::Size4K, READ, MEMORY_TYPE)
        .unwrap();
    for level in 2..=4 {
        let frame = BASE + ((4 - level as u64 + 1) << 12);
        assert_eq!(raw_entry(&t, 0x7000, level), frame | READ | WRITE | MAPPED);
    }
    assert_eq!(
        raw_entry(&t, 0x7000, 1),
        0x4_2000 | READ | MEMORY_TYPE | LEAF_MARK | MAPPED
    );
    assert_eq!(t.allocator().allocated(), 4);
    let leaf = t.translate(0x7123).unwrap();
    assert_eq!((leaf.hpa, leaf.size), (0x4_2123, PageSize::Size4K));
    assert_eq!(leaf.entry, raw_entry(&t, 0x7000, 1));
    assert_eq!(t.translate(0x8000), None);
    assert_eq!(t.translate(1 << 48), None);
}

#[test]
fn map_2m_sets_the_large_bit() {
    let mut t = tables(8);
    t.map(0x20_0000, 0x60_0000, PageSize::Size2M, READ | WRITE, 0)
        .unwrap();
    assert_eq!(
        raw_entry(&t, 0x20_0000, 2),
        0x60_0000 | READ | WRITE | LEAF_MARK | LARGE_PAGE | MAPPED
    );
    assert_eq!(t.allocator().allocated(), 3);
    let leaf = t.translate(0x21_2345).unwrap();
    assert_eq!((leaf.hpa, leaf.size), (0x61_2345, PageSize::Size2M));
}

#[test]
fn map_range_splits_into_2m_where_aligned_and_4k_elsewhere() {
    let mut t = tables(16);
    t.map_range(0x1F_F000, 0x1F_F000, 0x20_2000, READ, 0)
        .unwrap();
    let size = |gpa| t.translate(gpa).map(|l| l.size);
    assert_eq!(size(0x1F_F000), Some(PageSize::Size4K));
    assert_eq!(size(0x20_0000), Some(PageSize::Size2M));
    assert_eq!(size(0x3F_F000), Some(PageSize::Size2M));
    assert_eq!(size(0x40_0000), Some(PageSize::Size4K));
    assert_eq!(size(0x40_1000), None);
    assert_eq!(t.translate(0x3F_FFFF).unwrap().hpa, 0x3F_FFFF);
    // Misaligned host address: 4-KiB pages only.
    let mut t = tables(16);
    t.map_range(0x20_0000, 0x1000, 0x20_0000, READ, 0).unwrap();
    assert_eq!(t.translate(0x20_0000).unwrap().size, PageSize::Size4K);
    assert_eq!(t.translate(0x3F_F000).unwrap().hpa, 0x20_0000);
    assert_eq!(
        t.map_range(!0xFFF, 0, 0x2000, READ, 0),
        Err(SlatError::AddressTooLarge(!0xFFF))
    );
}

#[test]
fn unmap_clears_the_leaf_and_needs_a_flush() {
    let mut t = tables(8);
    t.map(0x3000, 0x9000, PageSize::Size4K, READ, 0).unwrap();
    assert_eq!(t.unmap(0x3000, PageSize::Size4K), Ok(Flush::Needed));
    assert_eq!(raw_entry(&t, 0x3000, 1), 0);
    assert_eq!(t.translate(0x3000), None);
    assert_eq!(
        t.unmap(0x3000, PageSize::Size4K),
        Err(SlatError::NotMapped(0x3000))
    );
    assert_eq!(
        t.unmap(0x40_0000, PageSize::Size4K),
        Err(SlatError::NotMapped(0x40_0000))
    );
    t.map(0x3000, 0xA000, PageSize::Size4K, READ, 0).unwrap();
    assert_eq!(t.translate(0x3000).unwrap().hpa, 0xA000);
}

#[test]
fn protect_replaces_rights_and_reports_flushes() {
    let mut t = tables(8);
    t.map(0x3000, 0x3000, PageSize::Size4K, READ, MEMORY_TYPE)
        .unwrap();
    assert_eq!(
        t.protect(0x3000, PageSize::Size4K, READ | WRITE),
        Ok(Flush::NotNeeded)
    );
    assert_eq!(
        raw_entry(&t, 0x3000, 1),
        0x3000 | READ | WRITE | MEMORY_TYPE | LEAF_MARK | MAPPED
    );
    assert_eq!(
        t.protect(0x3000, PageSize::Size4K, WRITE),
        Ok(Flush::Needed)
    );
    assert_eq!(t.protect(0x3000, PageSize::Size4K, 0), Ok(Flush::Needed));
    // No rights, still mapped.
    let leaf = t.translate(0x3000).unwrap();
    assert_eq!(leaf.entry & Fake::RIGHTS_MASK, 0);
    assert_eq!(t.protect(0x3000, PageSize::Size4K, 0), Ok(Flush::NotNeeded));
    assert_eq!(
        t.protect(0, PageSize::Size2M, READ),
        Err(SlatError::SizeMismatch(0))
    );
    assert_eq!(
        t.protect(0x5000, PageSize::Size4K, READ),
        Err(SlatError::NotMapped(0x5000))
    );
}

#[test]
fn split_2m_keeps_every_translation() {
    let mut t = tables(8);
    t.map(0x20_0000, 0x60_0000, PageSize::Size2M, READ, MEMORY_TYPE)
        .unwrap();
    assert_eq!(t.split_2m(0x20_0000), Ok(Flush::Needed));
    assert_eq!(
        raw_entry(&t, 0x20_0000, 2),
        (BASE + 0x3000) | READ | WRITE | MAPPED
    );
    assert_eq!(
        raw_entry(&t, 0x21_2000, 1),
        0x61_2000 | READ | MEMORY_TYPE | LEAF_MARK | MAPPED
    );
    let leaf = t.translate(0x21_2345).unwrap();
    assert_eq!((leaf.hpa, leaf.size), (0x61_2345, PageSize::Size4K));
    assert_eq!(
        t.split_2m(0x20_0000),
        Err(SlatError::SizeMismatch(0x20_0000))
    );
    assert_eq!(t.split_2m(0x40_0000), Err(SlatError::NotMapped(0x40_0000)));
}

#[test]
fn overlaps_are_errors() {
    let mut t = tables(8);
    t.map(0x20_0000, 0, PageSize::Size2M, READ, 0).unwrap();
    assert_eq!(
        t.map(0x20_0000, 0, PageSize::Size2M, READ, 0),
        Err(SlatError::AlreadyMapped(0x20_0000))
    );
    assert_eq!(
        t.map(0x20_1000, 0, PageSize::Size4K, READ, 0),
        Err(SlatError::SizeMismatch(0x20_1000))
    );
    t.map(0x40_1000, 0, PageSize::Size4K, READ, 0).unwrap();
    assert_eq!(
        t.map(0x40_0000, 0, PageSize::Size2M, READ, 0),
        Err(SlatError::AlreadyMapped(0x40_0000))
    );
    assert_eq!(
        t.unmap(0x40_0000, PageSize::Size2M),
        Err(SlatError::SizeMismatch(0x40_0000))
    );
}

#[test]
fn bad_addresses_are_errors() {
    let mut t = tables(8);
    let map = |t: &mut PageTables<Fake, HeapFrameAllocator>, gpa, hpa, size| {
        t.map(gpa, hpa, size, READ, 0)
    };
    assert_eq!(
        map(&mut t, 0x1001, 0, PageSize::Size4K),
        Err(SlatError::Misaligned(0x1001))
    );
    assert_eq!(
        map(&mut t, 0x1000, 0x1800, PageSize::Size4K),
        Err(SlatError::Misaligned(0x1800))
    );
    assert_eq!(
        map(&mut t, 0x1000, 0x1000, PageSize::Size2M),
        Err(SlatError::Misaligned(0x1000))
    );
    assert_eq!(
        map(&mut t, 1 << 48, 0, PageSize::Size4K),
        Err(SlatError::AddressTooLarge(1 << 48))
    );
    assert_eq!(
        map(&mut t, 0, 1 << 52, PageSize::Size4K),
        Err(SlatError::AddressTooLarge(1 << 52))
    );
    assert_eq!(
        t.unmap(1 << 48, PageSize::Size4K),
        Err(SlatError::AddressTooLarge(1 << 48))
    );
    // Nothing was allocated by the refused calls.
    assert_eq!(t.allocator().allocated(), 1);
}

#[test]
fn running_out_of_frames_is_an_error() {
    assert!(matches!(
        PageTables::<Fake, _>::new(HeapFrameAllocator::new(0, 0)),
        Err(SlatError::OutOfFrames)
    ));
    let mut t = tables(2);
    assert_eq!(
        t.map(0, 0, PageSize::Size4K, READ, 0),
        Err(SlatError::OutOfFrames)
    );
    let mut t = tables(3);
    t.map(0, 0, PageSize::Size2M, READ, 0).unwrap();
    assert_eq!(t.split_2m(0), Err(SlatError::OutOfFrames));
    assert_eq!(t.translate(0x1000).unwrap().size, PageSize::Size2M);
}

/// Hands out frames it cannot find again.
struct Forgetful(HeapFrameAllocator, usize);

impl FrameAllocator for Forgetful {
    fn alloc_zeroed_frame(&mut self) -> Option<u64> {
        self.1 += 1;
        if self.1 > 1 {
            return Some(0xDEAD_0000);
        }
        self.0.alloc_zeroed_frame()
    }
    fn phys_to_virt(&self, phys: u64) -> Option<&[u64; 512]> {
        self.0.phys_to_virt(phys)
    }
    fn phys_to_virt_mut(&mut self, phys: u64) -> Option<&mut [u64; 512]> {
        self.0.phys_to_virt_mut(phys)
    }
}

#[test]
fn unknown_frames_are_errors() {
    let mut t: PageTables<Fake, _> =
        PageTables::new(Forgetful(HeapFrameAllocator::new(BASE, 8), 0)).unwrap();
    assert_eq!(
        t.map(0, 0, PageSize::Size4K, READ, 0),
        Err(SlatError::UnknownFrame(0xDEAD_0000))
    );
    assert_eq!(t.translate(0), None);
}

#[test]
fn errors_display() {
    assert_eq!(
        SlatError::NotMapped(0x1000).to_string(),
        "guest-physical 0x1000 is not mapped with that page size"
    );
    assert_eq!(
        SlatError::OutOfFrames.to_string(),
        "out of frames for page tables"
    );
}

format_error!(
    /// A format's own error type, declared by [`format_error!`].
    enum OwnError, "FAKE",
    /// The format's own failure.
    BadRights => "bad rights"
);

#[test]
fn format_error_converts_and_prefixes_messages() {
    let all = [
        (SlatError::OutOfFrames, OwnError::OutOfFrames),
        (SlatError::Misaligned(1), OwnError::Misaligned(1)),
        (SlatError::AddressTooLarge(2), OwnError::AddressTooLarge(2)),
        (SlatError::AlreadyMapped(3), OwnError::AlreadyMapped(3)),
        (SlatError::NotMapped(4), OwnError::NotMapped(4)),
        (SlatError::SizeMismatch(5), OwnError::SizeMismatch(5)),
        (SlatError::UnknownFrame(6), OwnError::UnknownFrame(6)),
    ];
    for (shared, own) in all {
        assert_eq!(OwnError::from(shared), own);
        assert_eq!(own.to_string(), std::format!("FAKE: {shared}"));
    }
    assert_eq!(OwnError::BadRights.to_string(), "FAKE: bad rights");
    assert_eq!(
        OwnError::Misaligned(0x1001).to_string(),
        "FAKE: address 0x1001 is not aligned to the page size"
    );
}
