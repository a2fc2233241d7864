use super::*;

const BASE: u64 = 0x10_0000;

fn ept(limit: usize) -> Ept<HeapFrameAllocator> {
    Ept::new(HeapFrameAllocator::new(BASE, limit)).unwrap()
}

#[test]
fn eptp_has_wb_walk_length_and_ad_bit() {
    let e = ept(4);
    assert_eq!(e.pml4_phys(), BASE);
    assert_eq!(e.eptp(false), BASE | 0x1E);
    assert_eq!(e.eptp(true), BASE | 0x5E);
}

#[test]
fn map_4k_and_translate() {
    let mut e = ept(8);
    e.map(
        0x7000,
        0x4_2000,
        PageSize::Size4K,
        EptPerms::RW,
        EptMemoryType::WriteBack,
    )
    .unwrap();
    let t = e.translate(0x7123).unwrap();
    assert_eq!(t.hpa, 0x4_2123);
    assert_eq!(t.perms, EptPerms::RW);
    assert_eq!(t.memory_type, Some(EptMemoryType::WriteBack));
    assert_eq!(t.size, PageSize::Size4K);
    assert_eq!(e.translate(0x8000), None);
    // PML4 + PDPT + PD + PT.
    assert_eq!(e.allocator().allocated(), 4);
}

#[test]
fn map_2m_uncacheable_and_translate() {
    let mut e = ept(8);
    e.map(
        0xFEE0_0000 & !0x1F_FFFF,
        0xFEE0_0000 & !0x1F_FFFF,
        PageSize::Size2M,
        EptPerms::RW,
        EptMemoryType::Uncacheable,
    )
    .unwrap();
    let t = e.translate(0xFEE0_0030).unwrap();
    assert_eq!(t.hpa, 0xFEE0_0030);
    assert_eq!(t.size, PageSize::Size2M);
    assert_eq!(t.memory_type, Some(EptMemoryType::Uncacheable));
    assert_eq!(e.allocator().allocated(), 3);
}

#[test]
fn table_entries_point_to_next_level_with_full_rights() {
    let mut e = ept(8);
    e.map(
        0,
        0x20_0000,
        PageSize::Size2M,
        EptPerms::RX,
        EptMemoryType::WriteBack,
    )
    .unwrap();
    let pml4 = e.allocator().phys_to_virt(BASE).unwrap();
    assert_eq!(pml4[0] & ADDRESS_MASK, BASE + 0x1000);
    assert_eq!(pml4[0] & 7, 7);
    let pd = e.allocator().phys_to_virt(BASE + 0x2000).unwrap();
    assert_eq!(pd[0] & ADDRESS_MASK, 0x20_0000);
    assert_eq!(pd[0] & 0xFF, 0x80 | (6 << 3) | 5);
}

#[test]
fn double_map_and_size_conflicts_are_errors() {
    let mut e = ept(8);
    e.map(
        0x20_0000,
        0,
        PageSize::Size2M,
        EptPerms::RWX,
        EptMemoryType::WriteBack,
    )
    .unwrap();
    assert_eq!(
        e.map(
            0x20_0000,
            0,
            PageSize::Size2M,
            EptPerms::R,
            EptMemoryType::WriteBack
        ),
        Err(EptError::AlreadyMapped(0x20_0000))
    );
    assert_eq!(
        e.map(
            0x20_1000,
            0,
            PageSize::Size4K,
            EptPerms::R,
            EptMemoryType::WriteBack
        ),
        Err(EptError::SizeMismatch(0x20_1000))
    );
    e.map(
        0x40_1000,
        0,
        PageSize::Size4K,
        EptPerms::R,
        EptMemoryType::WriteBack,
    )
    .unwrap();
    assert_eq!(
        e.map(
            0x40_0000,
            0,
            PageSize::Size2M,
            EptPerms::R,
            EptMemoryType::WriteBack
        ),
        Err(EptError::AlreadyMapped(0x40_0000))
    );
}

#[test]
fn bad_addresses_are_errors() {
    let mut e = ept(8);
    assert_eq!(
        e.map(
            0x1001,
            0,
            PageSize::Size4K,
            EptPerms::R,
            EptMemoryType::WriteBack
        ),
        Err(EptError::Misaligned(0x1001))
    );
    assert_eq!(
        e.map(
            0x1000,
            0x1000,
            PageSize::Size2M,
            EptPerms::R,
            EptMemoryType::WriteBack
        ),
        Err(EptError::Misaligned(0x1000))
    );
    assert_eq!(
        e.map(
            1 << 48,
            0,
            PageSize::Size4K,
            EptPerms::R,
            EptMemoryType::WriteBack
        ),
        Err(EptError::AddressTooLarge(1 << 48))
    );
    assert_eq!(
        EptPerms::new(false, true, false),
        Err(EptError::WriteWithoutRead)
    );
}

#[test]
fn allocator_exhaustion_is_an_error() {
    let mut e = ept(2);
    assert_eq!(
        e.map(
            0,
            0,
            PageSize::Size4K,
            EptPerms::R,
            EptMemoryType::WriteBack
        ),
        Err(EptError::OutOfFrames)
    );
}

#[test]
fn protect_reports_when_invept_is_needed() {
    let mut e = ept(8);
    e.map(
        0x3000,
        0x3000,
        PageSize::Size4K,
        EptPerms::RWX,
        EptMemoryType::WriteBack,
    )
    .unwrap();
    assert_eq!(
        e.protect(0x3000, PageSize::Size4K, EptPerms::R),
        Ok(Flush::NeedsInvept)
    );
    assert_eq!(e.translate(0x3000).unwrap().perms, EptPerms::R);
    assert_eq!(
        e.protect(0x3000, PageSize::Size4K, EptPerms::RW),
        Ok(Flush::NotNeeded)
    );
    assert_eq!(
        e.protect(0x3000, PageSize::Size4K, EptPerms::NONE),
        Ok(Flush::NeedsInvept)
    );
    let t = e.translate(0x3000).unwrap();
    assert_eq!((t.perms, t.hpa), (EptPerms::NONE, 0x3000));
    assert_eq!(
        e.protect(0x3000, PageSize::Size4K, EptPerms::RX),
        Ok(Flush::NotNeeded)
    );
    assert_eq!(
        e.protect(0x5000, PageSize::Size4K, EptPerms::R),
        Err(EptError::NotMapped(0x5000))
    );
    assert_eq!(
        e.protect(0, PageSize::Size2M, EptPerms::R),
        Err(EptError::SizeMismatch(0))
    );
}

#[test]
fn unmap_removes_translation_and_needs_invept() {
    let mut e = ept(8);
    e.map(
        0x3000,
        0x9000,
        PageSize::Size4K,
        EptPerms::RW,
        EptMemoryType::WriteBack,
    )
    .unwrap();
    assert_eq!(e.unmap(0x3000, PageSize::Size4K), Ok(Flush::NeedsInvept));
    assert_eq!(e.translate(0x3000), None);
    assert_eq!(
        e.unmap(0x3000, PageSize::Size4K),
        Err(EptError::NotMapped(0x3000))
    );
    e.map(
        0x3000,
        0xA000,
        PageSize::Size4K,
        EptPerms::R,
        EptMemoryType::WriteBack,
    )
    .unwrap();
    assert_eq!(e.translate(0x3000).unwrap().hpa, 0xA000);
}

#[test]
fn map_range_uses_large_pages_where_aligned() {
    let mut e = ept(16);
    e.map_range(
        0x1F_F000,
        0x1F_F000,
        0x20_2000,
        EptPerms::RWX,
        EptMemoryType::WriteBack,
    )
    .unwrap();
    assert_eq!(e.translate(0x1F_F000).unwrap().size, PageSize::Size4K);
    assert_eq!(e.translate(0x20_0000).unwrap().size, PageSize::Size2M);
    assert_eq!(e.translate(0x3F_FFFF).unwrap().hpa, 0x3F_FFFF);
    assert_eq!(e.translate(0x40_0000).unwrap().size, PageSize::Size4K);
    assert_eq!(e.translate(0x40_1000), None);
}

#[test]
fn split_2m_keeps_translation_and_allows_4k_protection() {
    let mut e = ept(8);
    e.map(
        0x20_0000,
        0x60_0000,
        PageSize::Size2M,
        EptPerms::RWX,
        EptMemoryType::WriteBack,
    )
    .unwrap();
    assert_eq!(e.split_2m(0x20_0000), Ok(Flush::NeedsInvept));
    let t = e.translate(0x21_2345).unwrap();
    assert_eq!(
        (t.hpa, t.size, t.perms),
        (0x61_2345, PageSize::Size4K, EptPerms::RWX)
    );
    assert_eq!(t.memory_type, Some(EptMemoryType::WriteBack));
    assert_eq!(
        e.protect(0x21_2000, PageSize::Size4K, EptPerms::R),
        Ok(Flush::NeedsInvept)
    );
    assert_eq!(e.translate(0x21_2000).unwrap().perms, EptPerms::R);
    assert_eq!(e.translate(0x21_3000).unwrap().perms, EptPerms::RWX);
    assert_eq!(
        e.split_2m(0x20_0000),
        Err(EptError::SizeMismatch(0x20_0000))
    );
}
