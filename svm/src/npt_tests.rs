extern crate std;
use super::*;
use std::string::ToString;

fn npt() -> Npt<HeapFrameAllocator> {
    Npt::new(HeapFrameAllocator::new(0x100_0000, 64)).unwrap()
}

fn raw_entry(n: &Npt<HeapFrameAllocator>, gpa: u64, level: usize) -> u64 {
    let mut table = n.ncr3();
    for l in (level + 1..=4).rev() {
        table = n.allocator().phys_to_virt(table).unwrap()[index_at(gpa, l)] & ADDRESS_MASK;
    }
    n.allocator().phys_to_virt(table).unwrap()[index_at(gpa, level)]
}

#[test]
fn map_4k_and_translate_with_user_bit_on_every_level() {
    let mut n = npt();
    n.map(
        0x1000,
        0x20_3000,
        PageSize::Size4K,
        NptPerms::RW,
        NptMemoryType::WriteBack,
    )
    .unwrap();
    let t = n.translate(0x1234).unwrap();
    assert_eq!(t.hpa, 0x20_3234);
    assert_eq!(t.perms, NptPerms::RW);
    assert_eq!(t.size, PageSize::Size4K);
    assert_eq!(t.memory_type, NptMemoryType::WriteBack);
    for level in 1..=4 {
        let e = raw_entry(&n, 0x1000, level);
        assert_eq!(e & (PRESENT | USER), PRESENT | USER, "level {level}");
    }
    let leaf = raw_entry(&n, 0x1000, 1);
    assert_eq!(leaf & ADDRESS_MASK, 0x20_3000);
    assert_ne!(leaf & NO_EXECUTE, 0);
    assert_eq!(n.allocator().allocated(), 4);
    assert_eq!(n.translate(0x2000), None);
    assert_eq!(n.translate(1 << 48), None);
}

#[test]
fn map_2m_and_range_uses_large_pages() {
    let mut n = npt();
    n.map_range(
        0,
        0x4000_0000,
        0x40_1000,
        NptPerms::RWX,
        NptMemoryType::WriteBack,
    )
    .unwrap();
    let t = n.translate(0x20_0123).unwrap();
    assert_eq!((t.hpa, t.size), (0x4020_0123, PageSize::Size2M));
    assert!(t.perms.execute);
    let tail = n.translate(0x40_0FFF).unwrap();
    assert_eq!((tail.hpa, tail.size), (0x4040_0FFF, PageSize::Size4K));
    assert_ne!(raw_entry(&n, 0, 2) & LARGE_PAGE, 0);
}

#[test]
fn mmio_is_uncacheable() {
    let mut n = npt();
    n.map(
        0xFEE0_0000,
        0xFEE0_0000,
        PageSize::Size4K,
        NptPerms::RW,
        NptMemoryType::Uncacheable,
    )
    .unwrap();
    assert_eq!(
        n.translate(0xFEE0_0010).unwrap().memory_type,
        NptMemoryType::Uncacheable
    );
    assert_eq!(raw_entry(&n, 0xFEE0_0000, 1) & (PCD | PWT), PCD | PWT);
}

#[test]
fn protect_reports_when_a_flush_is_needed() {
    let mut n = npt();
    n.map(
        0x5000,
        0x9000,
        PageSize::Size4K,
        NptPerms::RW,
        NptMemoryType::WriteBack,
    )
    .unwrap();
    assert_eq!(
        n.protect(0x5000, PageSize::Size4K, NptPerms::RWX),
        Ok(Flush::NotNeeded)
    );
    assert_eq!(
        n.protect(0x5000, PageSize::Size4K, NptPerms::RX),
        Ok(Flush::NeedsAsidFlush)
    );
    assert_eq!(n.translate(0x5000).unwrap().perms, NptPerms::RX);
    assert_eq!(
        n.protect(0x5000, PageSize::Size4K, NptPerms::NONE),
        Ok(Flush::NeedsAsidFlush)
    );
    // Still known (software bit) but not present for the CPU.
    assert_eq!(n.translate(0x5000).unwrap().perms, NptPerms::NONE);
    assert_eq!(raw_entry(&n, 0x5000, 1) & PRESENT, 0);
    assert_eq!(
        n.protect(0x5000, PageSize::Size4K, NptPerms::R),
        Ok(Flush::NotNeeded)
    );
}

#[test]
fn unmap_and_errors() {
    let mut n = npt();
    n.map(
        0x20_0000,
        0x40_0000,
        PageSize::Size2M,
        NptPerms::R,
        NptMemoryType::WriteBack,
    )
    .unwrap();
    assert_eq!(
        n.map(
            0x20_0000,
            0x40_0000,
            PageSize::Size2M,
            NptPerms::R,
            NptMemoryType::WriteBack
        ),
        Err(NptError::AlreadyMapped(0x20_0000))
    );
    assert_eq!(
        n.map(
            0x20_1000,
            0x1000,
            PageSize::Size4K,
            NptPerms::R,
            NptMemoryType::WriteBack
        ),
        Err(NptError::SizeMismatch(0x20_1000))
    );
    assert_eq!(
        n.unmap(0x20_1000, PageSize::Size4K),
        Err(NptError::SizeMismatch(0x20_1000))
    );
    assert_eq!(
        n.unmap(0x20_0000, PageSize::Size2M),
        Ok(Flush::NeedsAsidFlush)
    );
    assert_eq!(n.translate(0x20_0000), None);
    assert_eq!(
        n.unmap(0x20_0000, PageSize::Size2M),
        Err(NptError::NotMapped(0x20_0000))
    );
    assert_eq!(
        n.map(
            0x1001,
            0,
            PageSize::Size4K,
            NptPerms::R,
            NptMemoryType::WriteBack
        ),
        Err(NptError::Misaligned(0x1001))
    );
    assert_eq!(
        n.map(
            1 << 48,
            0,
            PageSize::Size4K,
            NptPerms::R,
            NptMemoryType::WriteBack
        ),
        Err(NptError::AddressTooLarge(1 << 48))
    );
    assert_eq!(
        NptPerms::new(false, true, false),
        Err(NptError::AccessWithoutRead)
    );
    assert_eq!(NptPerms::new(true, false, true), Ok(NptPerms::RX));
    assert_eq!(
        NptError::NotMapped(0x1000).to_string(),
        "NPT: guest-physical 0x1000 is not mapped with that page size"
    );
}

#[test]
fn running_out_of_frames_is_an_error() {
    let mut n = Npt::new(HeapFrameAllocator::new(0, 2)).unwrap();
    assert_eq!(
        n.map(
            0,
            0,
            PageSize::Size4K,
            NptPerms::R,
            NptMemoryType::WriteBack
        ),
        Err(NptError::OutOfFrames)
    );
}
