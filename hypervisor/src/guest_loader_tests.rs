use super::*;
use alloc::vec;
use alloc::vec::Vec;

const LOW: u64 = 0x10_0000;
const RAM: u64 = 0x80_0000;

/// (p_type, flags, offset, vaddr, filesz, memsz)
type Phdr = (u32, u32, u64, u64, u64, u64);

fn elf(entry: u64, phdrs: &[Phdr], payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[..4].copy_from_slice(b"\x7fELF");
    (f[4], f[5], f[6]) = (2, 1, 1);
    f[16..18].copy_from_slice(&2u16.to_le_bytes());
    f[18..20].copy_from_slice(&62u16.to_le_bytes());
    f[24..32].copy_from_slice(&entry.to_le_bytes());
    f[32..40].copy_from_slice(&64u64.to_le_bytes());
    f[54..56].copy_from_slice(&56u16.to_le_bytes());
    f[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
    for &(ty, flags, offset, vaddr, filesz, memsz) in phdrs {
        let mut ph = [0u8; 56];
        ph[0..4].copy_from_slice(&ty.to_le_bytes());
        ph[4..8].copy_from_slice(&flags.to_le_bytes());
        ph[8..16].copy_from_slice(&offset.to_le_bytes());
        ph[16..24].copy_from_slice(&vaddr.to_le_bytes());
        ph[24..32].copy_from_slice(&vaddr.to_le_bytes());
        ph[32..40].copy_from_slice(&filesz.to_le_bytes());
        ph[40..48].copy_from_slice(&memsz.to_le_bytes());
        f.extend_from_slice(&ph);
    }
    f.extend_from_slice(payload);
    f
}

fn payload_offset(n: usize) -> u64 {
    64 + 56 * n as u64
}

#[test]
fn loads_segments_and_zeroes_bss() {
    let off = payload_offset(2);
    let file = elf(
        0x40_0000,
        &[
            (1, 5, off, 0x40_0000, 4, 4),
            (1, 6, off + 4, 0x40_1000, 2, 0x10),
        ],
        &[0xF4, 0x90, 0x90, 0x90, 0xAA, 0xBB],
    );
    let image = parse(&file, LOW, RAM).unwrap();
    assert_eq!(image.entry, 0x40_0000);
    assert_eq!(image.segments.len(), 2);
    let mut mem = vec![0x55u8; RAM as usize];
    image.load(&file, &mut mem).unwrap();
    assert_eq!(&mem[0x40_0000..0x40_0004], &[0xF4, 0x90, 0x90, 0x90]);
    assert_eq!(&mem[0x40_1000..0x40_1003], &[0xAA, 0xBB, 0]);
    assert!(mem[0x40_1002..0x40_1010].iter().all(|b| *b == 0));
    assert_eq!(mem[0x40_1010], 0x55, "nothing written past p_memsz");
}

#[test]
fn header_errors() {
    assert_eq!(
        parse(&[0u8; 10], LOW, RAM),
        Err(ElfError::TooShort { len: 10 })
    );
    assert_eq!(parse(&[0u8; 64], LOW, RAM), Err(ElfError::BadMagic));
    let mut file = elf(
        0x40_0000,
        &[(1, 5, payload_offset(1), 0x40_0000, 1, 1)],
        &[0xF4],
    );
    file[4] = 1;
    assert_eq!(parse(&file, LOW, RAM), Err(ElfError::NotElf64LittleEndian));
    file[4] = 2;
    file[16] = 3;
    assert_eq!(
        parse(&file, LOW, RAM),
        Err(ElfError::NotExecutable { e_type: 3 })
    );
    file[16] = 2;
    file[18] = 3;
    assert_eq!(
        parse(&file, LOW, RAM),
        Err(ElfError::NotX86_64 { machine: 3 })
    );
}

#[test]
fn program_header_table_beyond_file_is_refused() {
    let mut file = elf(
        0x40_0000,
        &[(1, 5, payload_offset(1), 0x40_0000, 1, 1)],
        &[0xF4],
    );
    file[56..58].copy_from_slice(&40u16.to_le_bytes());
    assert!(matches!(
        parse(&file, LOW, RAM),
        Err(ElfError::BadProgramHeaderTable { count: 40, .. })
    ));
    file[56..58].copy_from_slice(&1u16.to_le_bytes());
    file[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        parse(&file, LOW, RAM),
        Err(ElfError::BadProgramHeaderTable { .. })
    ));
}

#[test]
fn segment_errors() {
    let off = payload_offset(1);
    let cases: [(Phdr, ElfError); 5] = [
        (
            (1, 5, off, 0x40_0000, 100, 100),
            ElfError::SegmentOutsideFile { index: 0 },
        ),
        (
            (1, 5, off, 0x40_0000, 2, 1),
            ElfError::FileSizeAboveMemSize { index: 0 },
        ),
        (
            (1, 5, off, 0x1000, 1, 1),
            ElfError::SegmentOutsideRam {
                index: 0,
                start: 0x1000,
                end: 0x1001,
            },
        ),
        (
            (1, 5, off, RAM - 1, 1, 2),
            ElfError::SegmentOutsideRam {
                index: 0,
                start: RAM - 1,
                end: RAM + 1,
            },
        ),
        (
            (1, 5, off, u64::MAX - 1, 1, 4),
            ElfError::SegmentOutsideRam {
                index: 0,
                start: u64::MAX - 1,
                end: u64::MAX,
            },
        ),
    ];
    for (phdr, expected) in cases {
        let file = elf(phdr.3, &[phdr], &[0xF4]);
        assert_eq!(parse(&file, LOW, RAM), Err(expected), "{phdr:?}");
    }
}

#[test]
fn entry_and_overlap_errors() {
    let data_only = elf(
        0x40_0000,
        &[(1, 6, payload_offset(1), 0x40_0000, 1, 1)],
        &[0xF4],
    );
    assert_eq!(
        parse(&data_only, LOW, RAM),
        Err(ElfError::EntryNotInCode { entry: 0x40_0000 })
    );
    let off = payload_offset(2);
    let no_load = elf(
        0x40_0000,
        &[(4, 5, payload_offset(1), 0x40_0000, 1, 1)],
        &[0xF4],
    );
    assert_eq!(parse(&no_load, LOW, RAM), Err(ElfError::NoLoadableSegment));
    let overlap = elf(
        0x40_0000,
        &[
            (1, 5, off, 0x40_0000, 1, 0x2000),
            (1, 6, off, 0x40_1000, 1, 1),
        ],
        &[0xF4],
    );
    assert_eq!(
        parse(&overlap, LOW, RAM),
        Err(ElfError::SegmentsOverlap { index: 1 })
    );
}

#[test]
fn a_hand_built_image_with_impossible_fields_is_an_error_not_a_panic() {
    let segment = |gpa: u64, mem_size: u64, file_offset: usize, file_size: usize| ElfImage {
        entry: gpa,
        segments: vec![Segment {
            gpa,
            mem_size,
            file_offset,
            file_size,
            executable: true,
        }],
    };
    let file = [0xF4u8; 16];
    let mut mem = vec![0u8; 0x1000];
    for (image, expected_outside_file) in [
        (segment(u64::MAX - 1, 4, 0, 1), false),
        (segment(0x100, usize::MAX as u64, 0, 1), false),
        (segment(0x100, 8, usize::MAX - 1, 4), true),
        (segment(0x100, 2, 0, 8), true),
        (segment(0x100, 8, 8, 16), true),
    ] {
        let err = image.load(&file, &mut mem).unwrap_err();
        assert_eq!(
            matches!(err, ElfError::SegmentOutsideFile { .. }),
            expected_outside_file,
            "{image:?}: {err}"
        );
    }
    segment(0x100, 8, 0, 4).load(&file, &mut mem).unwrap();
    assert_eq!(&mem[0x100..0x108], &[0xF4, 0xF4, 0xF4, 0xF4, 0, 0, 0, 0]);
}
