use super::*;

fn r(start: u64, end: u64) -> Range {
    Range::new(start, end)
}

fn entry(start: u64, end: u64, available: bool) -> MapEntry {
    MapEntry {
        range: r(start, end),
        available,
    }
}

#[test]
fn insert_keeps_ranges_sorted_and_merges_touching_ones() {
    let mut set = RangeSet::<8>::new();
    set.insert(r(0x5000, 0x6000)).unwrap();
    set.insert(r(0x1000, 0x2000)).unwrap();
    set.insert(r(0x2000, 0x3000)).unwrap();
    assert_eq!(set.as_slice(), &[r(0x1000, 0x3000), r(0x5000, 0x6000)]);
    set.insert(r(0x2800, 0x5800)).unwrap();
    assert_eq!(set.as_slice(), &[r(0x1000, 0x6000)]);
    set.insert(r(7, 7)).unwrap();
    assert_eq!(set.as_slice().len(), 1);
}

#[test]
fn remove_splits_and_trims() {
    let mut set = RangeSet::<8>::new();
    set.insert(r(0, 0x10000)).unwrap();
    set.remove(r(0x4000, 0x5000)).unwrap();
    assert_eq!(set.as_slice(), &[r(0, 0x4000), r(0x5000, 0x10000)]);
    set.remove(r(0, 0x1000)).unwrap();
    set.remove(r(0xf000, 0x20000)).unwrap();
    assert_eq!(set.as_slice(), &[r(0x1000, 0x4000), r(0x5000, 0xf000)]);
    set.remove(r(0x3000, 0x6000)).unwrap();
    assert_eq!(set.as_slice(), &[r(0x1000, 0x3000), r(0x6000, 0xf000)]);
    assert_eq!(set.total_bytes(), 0x2000 + 0x9000);
}

#[test]
fn capacity_overflow_is_an_error() {
    let mut set = RangeSet::<2>::new();
    set.insert(r(0, 10)).unwrap();
    set.insert(r(20, 30)).unwrap();
    assert_eq!(
        set.insert(r(40, 50)),
        Err(MemoryError::TooManyRanges { capacity: 2 })
    );
    assert_eq!(
        set.remove(r(2, 3)),
        Err(MemoryError::TooManyRanges { capacity: 2 })
    );
    // Merging into an existing range needs no new slot.
    set.insert(r(10, 20)).unwrap();
    assert_eq!(set.as_slice(), &[r(0, 30)]);
}

#[test]
fn align_inward_shrinks_and_drops() {
    assert_eq!(r(0x1001, 0x3fff).align_inward(0x1000), r(0x2000, 0x3000));
    assert!(r(0x1001, 0x1fff).align_inward(0x1000).is_empty());
    assert!(r(u64::MAX - 5, u64::MAX).align_inward(0x1000).is_empty());
    let mut set = RangeSet::<4>::new();
    set.insert(r(0x800, 0x1800)).unwrap();
    set.insert(r(0x3010, 0x6000)).unwrap();
    set.align_inward(0x1000);
    assert_eq!(set.as_slice(), &[r(0x4000, 0x6000)]);
}

#[test]
fn clipped_to_window() {
    let mut set = RangeSet::<4>::new();
    set.insert(r(0, 0x100)).unwrap();
    set.insert(r(0x200, 0x400)).unwrap();
    assert_eq!(
        set.clipped_to(r(0x80, 0x300)).as_slice(),
        &[r(0x80, 0x100), r(0x200, 0x300)]
    );
}

#[test]
fn usable_ram_from_a_qemu_like_map() {
    let map = [
        entry(0, 0x9fc00, true),
        entry(0x9fc00, 0xa0000, false),
        entry(0xf0000, 0x10_0000, false),
        entry(0x10_0000, 0x3ffe_0000, true),
        entry(0x3ffe_0000, 0x4000_0000, false),
        entry(0xfffc_0000, 0x1_0000_0000, false),
    ];
    let reserved = [
        r(0, 0x10_0000),
        r(0x10_0000, 0x25_3000),
        r(0x8000_0500, 0x8000_0600),
        r(0x30_0000, 0x30_0123),
    ];
    let set: RangeSet<16> = usable_ram(map.iter().copied(), &reserved).unwrap();
    assert_eq!(
        set.as_slice(),
        &[r(0x25_3000, 0x30_0000), r(0x30_1000, 0x3ffe_0000)]
    );
}

#[test]
fn reserved_entry_wins_over_overlapping_available_entry() {
    let map = [
        entry(0, 0x10000, true),
        entry(0x4000, 0x6000, false),
        entry(0x5000, 0x20000, true),
    ];
    let set: RangeSet<4> = usable_ram(map.iter().copied(), &[]).unwrap();
    assert_eq!(set.as_slice(), &[r(0, 0x4000), r(0x6000, 0x20000)]);
}

#[test]
fn identity_map_top_is_at_least_4_gib_and_gib_aligned() {
    assert_eq!(
        identity_map_top([entry(0, 0x4000_0000, true)].into_iter(), 40),
        4 << 30
    );
    assert_eq!(
        identity_map_top([entry(0, (5 << 30) + 1, true)].into_iter(), 40),
        6 << 30
    );
    assert_eq!(identity_map_top(core::iter::empty(), 40), 4 << 30);
}

#[test]
fn identity_map_top_stops_at_the_physical_address_width() {
    let qemu_hole = [
        entry(0, 1 << 30, true),
        entry(0xfd_0000_0000, 0x100_0000_0000, false),
    ];
    assert_eq!(identity_map_top(qemu_hole.iter().copied(), 40), 1 << 40);
    assert_eq!(identity_map_top(qemu_hole.iter().copied(), 39), 1 << 39);
    assert_eq!(identity_map_top(qemu_hole.iter().copied(), 46), 1 << 40);
}

#[test]
fn range_helpers() {
    assert!(Range::new(5, 3).is_empty());
    assert_eq!(Range::from_len(u64::MAX - 1, 10).end, u64::MAX);
    assert!(r(0, 10).overlaps(&r(9, 20)));
    assert!(!r(0, 10).overlaps(&r(10, 20)));
    assert_eq!(
        format!("{}", r(0x1000, 0x2000)),
        "[0x0000001000, 0x0000002000)"
    );
}
