use super::*;

/// Builds boot info blocks the way a multiboot2 loader lays them out.
struct Builder {
    bytes: Vec<u8>,
}

impl Builder {
    fn new() -> Self {
        Self { bytes: vec![0; 8] }
    }

    fn tag(mut self, tag_type: u32, payload: &[u8]) -> Self {
        self.bytes.extend_from_slice(&tag_type.to_le_bytes());
        self.bytes
            .extend_from_slice(&((payload.len() + 8) as u32).to_le_bytes());
        self.bytes.extend_from_slice(payload);
        while !self.bytes.len().is_multiple_of(8) {
            self.bytes.push(0);
        }
        self
    }

    fn string_tag(self, tag_type: u32, text: &str) -> Self {
        let mut payload = text.as_bytes().to_vec();
        payload.push(0);
        self.tag(tag_type, &payload)
    }

    fn module(self, start: u32, end: u32, text: &str) -> Self {
        let mut payload = start.to_le_bytes().to_vec();
        payload.extend_from_slice(&end.to_le_bytes());
        payload.extend_from_slice(text.as_bytes());
        payload.push(0);
        self.tag(TAG_MODULE, &payload)
    }

    fn memory_map(self, entries: &[(u64, u64, u32)]) -> Self {
        let mut payload = 24u32.to_le_bytes().to_vec();
        payload.extend_from_slice(&0u32.to_le_bytes());
        for &(base, length, kind) in entries {
            payload.extend_from_slice(&base.to_le_bytes());
            payload.extend_from_slice(&length.to_le_bytes());
            payload.extend_from_slice(&kind.to_le_bytes());
            payload.extend_from_slice(&0u32.to_le_bytes());
        }
        self.tag(TAG_MEMORY_MAP, &payload)
    }

    fn finish(mut self) -> Vec<u8> {
        self = self.tag(TAG_END, &[]);
        let total = self.bytes.len() as u32;
        self.bytes[0..4].copy_from_slice(&total.to_le_bytes());
        self.bytes
    }
}

fn typical_info() -> Vec<u8> {
    Builder::new()
        .string_tag(TAG_COMMAND_LINE, "test=ud log=debug")
        .string_tag(TAG_BOOTLOADER_NAME, "GRUB 2.06")
        .module(0x20_0000, 0x20_1000, "policy.toml")
        .memory_map(&[
            (0, 0x9fc00, 1),
            (0x9fc00, 0x400, 2),
            (0x10_0000, 0x3fee_0000, 1),
            (0xfffc_0000, 0x4_0000, 2),
        ])
        .module(0x30_0000, 0x30_0000, "")
        .finish()
}

#[test]
fn parses_command_line_bootloader_and_modules() {
    let bytes = typical_info();
    let info = BootInfo::parse(&bytes).unwrap();
    assert_eq!(info.total_size(), bytes.len());
    assert_eq!(info.command_line(), Some(Ok("test=ud log=debug")));
    assert_eq!(info.bootloader_name(), Some(Ok("GRUB 2.06")));
    let modules: Vec<_> = info.modules().collect::<Result<_, _>>().unwrap();
    assert_eq!(
        modules,
        vec![
            Module {
                start: 0x20_0000,
                end: 0x20_1000,
                string: "policy.toml"
            },
            Module {
                start: 0x30_0000,
                end: 0x30_0000,
                string: ""
            },
        ]
    );
}

#[test]
fn parses_memory_map_entries_and_kinds() {
    let bytes = typical_info();
    let info = BootInfo::parse(&bytes).unwrap();
    let regions: Vec<_> = info.memory_map().unwrap().unwrap().collect();
    assert_eq!(regions.len(), 4);
    assert_eq!(
        regions[0],
        MemoryRegion {
            base: 0,
            length: 0x9fc00,
            kind: MemoryKind::Available
        }
    );
    assert_eq!(regions[1].kind, MemoryKind::Reserved);
    assert_eq!(regions[2].end(), 0x3ffe_0000);
    assert_eq!(MemoryKind::from_raw(9), MemoryKind::Other(9));
}

#[test]
fn missing_optional_tags_are_none() {
    let bytes = Builder::new().finish();
    let info = BootInfo::parse(&bytes).unwrap();
    assert_eq!(info.command_line(), None);
    assert!(info.memory_map().is_none());
    assert_eq!(info.modules().count(), 0);
}

#[test]
fn rejects_short_buffer_and_bad_total_size() {
    assert_eq!(
        BootInfo::parse(&[1, 2, 3]).unwrap_err(),
        Multiboot2Error::TooShort { len: 3 }
    );
    let mut bytes = typical_info();
    let too_big = bytes.len() as u32 + 8;
    bytes[0..4].copy_from_slice(&too_big.to_le_bytes());
    assert!(matches!(
        BootInfo::parse(&bytes).unwrap_err(),
        Multiboot2Error::BadTotalSize { .. }
    ));
    bytes[0..4].copy_from_slice(&4u32.to_le_bytes());
    assert!(matches!(
        BootInfo::parse(&bytes).unwrap_err(),
        Multiboot2Error::BadTotalSize { total_size: 4, .. }
    ));
}

#[test]
fn rejects_missing_end_tag() {
    let mut bytes = Builder::new().string_tag(TAG_COMMAND_LINE, "x").bytes;
    let total = bytes.len() as u32;
    bytes[0..4].copy_from_slice(&total.to_le_bytes());
    assert_eq!(
        BootInfo::parse(&bytes).unwrap_err(),
        Multiboot2Error::MissingEndTag
    );
}

#[test]
fn rejects_tag_running_past_total_size() {
    let mut bytes = Builder::new().string_tag(TAG_COMMAND_LINE, "abc").finish();
    bytes[12..16].copy_from_slice(&4096u32.to_le_bytes());
    assert_eq!(
        BootInfo::parse(&bytes).unwrap_err(),
        Multiboot2Error::TagOutOfBounds {
            offset: 8,
            size: 4096
        }
    );
}

#[test]
fn rejects_tag_smaller_than_header() {
    let mut bytes = Builder::new().string_tag(TAG_COMMAND_LINE, "abc").finish();
    bytes[12..16].copy_from_slice(&4u32.to_le_bytes());
    assert_eq!(
        BootInfo::parse(&bytes).unwrap_err(),
        Multiboot2Error::TagTooSmall { offset: 8, size: 4 }
    );
}

#[test]
fn rejects_unterminated_and_non_utf8_strings() {
    let bytes = Builder::new().tag(TAG_COMMAND_LINE, b"abc").finish();
    let info = BootInfo::parse(&bytes).unwrap();
    assert_eq!(
        info.command_line(),
        Some(Err(Multiboot2Error::StringNotTerminated { tag_type: 1 }))
    );
    let bytes = Builder::new()
        .tag(TAG_COMMAND_LINE, &[0xff, 0xfe, 0])
        .finish();
    let info = BootInfo::parse(&bytes).unwrap();
    assert_eq!(
        info.command_line(),
        Some(Err(Multiboot2Error::StringNotUtf8 { tag_type: 1 }))
    );
}

#[test]
fn rejects_bad_memory_map_entry_size_and_truncation() {
    let mut payload = 20u32.to_le_bytes().to_vec();
    payload.extend_from_slice(&[0; 4]);
    let bytes = Builder::new().tag(TAG_MEMORY_MAP, &payload).finish();
    let err = BootInfo::parse(&bytes)
        .unwrap()
        .memory_map()
        .unwrap()
        .unwrap_err();
    assert_eq!(
        err,
        Multiboot2Error::BadMemoryMapEntrySize { entry_size: 20 }
    );

    let mut payload = 24u32.to_le_bytes().to_vec();
    payload.extend_from_slice(&[0; 4 + 30]);
    let bytes = Builder::new().tag(TAG_MEMORY_MAP, &payload).finish();
    let err = BootInfo::parse(&bytes)
        .unwrap()
        .memory_map()
        .unwrap()
        .unwrap_err();
    assert_eq!(
        err,
        Multiboot2Error::MemoryMapTruncated {
            payload_len: 30,
            entry_size: 24
        }
    );
}

#[test]
fn larger_memory_map_entries_are_stepped_over() {
    let mut payload = 32u32.to_le_bytes().to_vec();
    payload.extend_from_slice(&0u32.to_le_bytes());
    for (base, kind) in [(0x1000u64, 1u32), (0x8000, 3)] {
        payload.extend_from_slice(&base.to_le_bytes());
        payload.extend_from_slice(&0x1000u64.to_le_bytes());
        payload.extend_from_slice(&kind.to_le_bytes());
        payload.extend_from_slice(&[0xaa; 12]);
    }
    let bytes = Builder::new().tag(TAG_MEMORY_MAP, &payload).finish();
    let regions: Vec<_> = BootInfo::parse(&bytes)
        .unwrap()
        .memory_map()
        .unwrap()
        .unwrap()
        .collect();
    assert_eq!(regions.len(), 2);
    assert_eq!(
        regions[1],
        MemoryRegion {
            base: 0x8000,
            length: 0x1000,
            kind: MemoryKind::AcpiReclaimable
        }
    );
}

#[test]
fn rejects_inverted_or_short_module() {
    let bytes = Builder::new().module(0x2000, 0x1000, "m").finish();
    let info = BootInfo::parse(&bytes).unwrap();
    let err = info.modules().next().unwrap().unwrap_err();
    assert_eq!(
        err,
        Multiboot2Error::ModuleRangeInverted {
            start: 0x2000,
            end: 0x1000
        }
    );

    let bytes = Builder::new().tag(TAG_MODULE, &[0; 4]).finish();
    let info = BootInfo::parse(&bytes).unwrap();
    assert!(matches!(
        info.modules().next().unwrap(),
        Err(Multiboot2Error::ModuleTagTooSmall { size: 12, .. })
    ));
}

#[test]
fn region_end_saturates() {
    let region = MemoryRegion {
        base: u64::MAX - 1,
        length: 10,
        kind: MemoryKind::Reserved,
    };
    assert_eq!(region.end(), u64::MAX);
}

#[test]
fn errors_display_a_reason() {
    let text = format!(
        "{}",
        Multiboot2Error::ModuleRangeInverted { start: 2, end: 1 }
    );
    assert!(text.contains("before its start"), "{text}");
}
