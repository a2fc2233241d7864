use super::control::{self, Intercept};
use super::save::{self, SegmentRegister};
use super::*;

#[test]
fn vmcb_is_one_aligned_page() {
    assert_eq!(core::mem::size_of::<Vmcb>(), 4096);
    assert_eq!(core::mem::align_of::<Vmcb>(), 4096);
}

#[test]
fn control_area_offsets_match_apm_table_b1() {
    let pinned: [(u16, u16); 18] = [
        (control::INTERCEPT_CR.offset, 0x000),
        (control::INTERCEPT_DR.offset, 0x004),
        (control::INTERCEPT_EXCEPTIONS.offset, 0x008),
        (control::INTERCEPT_MISC1.offset, 0x00C),
        (control::INTERCEPT_MISC2.offset, 0x010),
        (control::IOPM_BASE_PA.offset, 0x040),
        (control::MSRPM_BASE_PA.offset, 0x048),
        (control::TSC_OFFSET.offset, 0x050),
        (control::GUEST_ASID.offset, 0x058),
        (control::TLB_CONTROL.offset, 0x05C),
        (control::V_INTR.offset, 0x060),
        (control::EXITCODE.offset, 0x070),
        (control::EXITINFO1.offset, 0x078),
        (control::EXITINFO2.offset, 0x080),
        (control::EXITINTINFO.offset, 0x088),
        (control::NP_CONTROL.offset, 0x090),
        (control::EVENTINJ.offset, 0x0A8),
        (control::N_CR3.offset, 0x0B0),
    ];
    for (actual, expected) in pinned {
        assert_eq!(actual, expected);
    }
    assert_eq!(control::VMCB_CLEAN.offset, 0x0C0);
    assert_eq!(control::NRIP.offset, 0x0C8);
    assert_eq!(control::GUEST_INSTRUCTION_BYTE_COUNT.offset, 0x0D0);
    assert_eq!(control::GUEST_INSTRUCTION_BYTES_OFFSET, 0x0D1);
    assert_eq!(control::INTERRUPT_SHADOW.offset, 0x068);
}

#[test]
fn state_save_offsets_match_apm_table_b2() {
    let pinned: [(u16, u16); 14] = [
        (save::CPL.offset, 0x4CB),
        (save::EFER.offset, 0x4D0),
        (save::CR4.offset, 0x548),
        (save::CR3.offset, 0x550),
        (save::CR0.offset, 0x558),
        (save::DR7.offset, 0x560),
        (save::DR6.offset, 0x568),
        (save::RFLAGS.offset, 0x570),
        (save::RIP.offset, 0x578),
        (save::RSP.offset, 0x5D8),
        (save::RAX.offset, 0x5F8),
        (save::STAR.offset, 0x600),
        (save::CR2.offset, 0x640),
        (save::G_PAT.offset, 0x668),
    ];
    for (actual, expected) in pinned {
        assert_eq!(actual, expected);
    }
    assert_eq!(save::KERNEL_GS_BASE.offset, 0x620);
    assert_eq!(save::SYSENTER_EIP.offset, 0x638);
    let cs = SegmentRegister::Cs.fields();
    assert_eq!(
        (
            cs.selector.offset,
            cs.attrib.offset,
            cs.limit.offset,
            cs.base.offset
        ),
        (0x410, 0x412, 0x414, 0x418)
    );
    assert_eq!(SegmentRegister::Gdtr.fields().base.offset, 0x468);
    assert_eq!(SegmentRegister::Tr.fields().selector.offset, 0x490);
}

#[test]
fn fields_are_little_endian_at_their_offsets() {
    let mut vmcb = Vmcb::new();
    vmcb.set64(save::RIP, 0x1122_3344_5566_7788);
    assert_eq!(vmcb.as_bytes()[0x578], 0x88);
    assert_eq!(vmcb.as_bytes()[0x57F], 0x11);
    assert_eq!(vmcb.get64(save::RIP), 0x1122_3344_5566_7788);
    vmcb.set32(control::GUEST_ASID, 5);
    vmcb.set8(control::TLB_CONTROL, control::TlbControl::FlushGuest as u8);
    assert_eq!(vmcb.as_bytes()[0x058], 5);
    assert_eq!(vmcb.as_bytes()[0x05C], 3);
    assert_eq!(vmcb.get32(control::GUEST_ASID), 5);
}

#[test]
fn intercept_bits_land_in_the_right_vector() {
    let mut vmcb = Vmcb::new();
    vmcb.set_intercept(Intercept::VMRUN, true);
    vmcb.set_intercept(Intercept::CPUID, true);
    vmcb.set_intercept(Intercept::SHUTDOWN, true);
    vmcb.set_intercept(Intercept::XSETBV, true);
    assert_eq!(vmcb.get32(control::INTERCEPT_MISC2), 1 | 1 << 13);
    assert_eq!(vmcb.get32(control::INTERCEPT_MISC1), 1 << 18 | 1 << 31);
    vmcb.set_intercept(Intercept::cr_write(3).unwrap(), true);
    vmcb.set_intercept(Intercept::cr_read(0).unwrap(), true);
    assert_eq!(vmcb.get32(control::INTERCEPT_CR), 1 << 19 | 1);
    vmcb.set_intercept(Intercept::exception(14).unwrap(), true);
    assert_eq!(vmcb.get32(control::INTERCEPT_EXCEPTIONS), 1 << 14);
    vmcb.set_intercept(Intercept::dr_write(7).unwrap(), true);
    assert_eq!(vmcb.get32(control::INTERCEPT_DR), 1 << 23);
    assert!(vmcb.intercepts(Intercept::CPUID));
    vmcb.set_intercept(Intercept::CPUID, false);
    assert!(!vmcb.intercepts(Intercept::CPUID));
    assert!(vmcb.intercepts(Intercept::SHUTDOWN));
    assert_eq!(Intercept::exception(32), None);
    assert_eq!(Intercept::cr_read(16), None);
    assert_eq!(Intercept::HLT.bit, 24);
    assert_eq!(Intercept::IOIO_PROT.bit, 27);
    assert_eq!(Intercept::MSR_PROT.bit, 28);
    assert_eq!(Intercept::VMMCALL.bit, 1);
}

#[test]
fn segments_round_trip_and_attributes_pack_descriptor_bits() {
    // 64-bit code descriptor 0x00AF_9B00_0000_FFFF: P, DPL 0, S, type 0xB, L, G.
    let attrib = SegmentAttributes::from_descriptor(0x00AF_9B00_0000_FFFF);
    assert_eq!(attrib.0, 0xA9B);
    assert!(attrib.long() && attrib.present() && attrib.granularity());
    assert!(!attrib.default_big());
    assert_eq!((attrib.segment_type(), attrib.dpl()), (0xB, 0));
    assert!(attrib.code_or_data());
    let mut vmcb = Vmcb::new();
    let cs = Segment {
        selector: 0x08,
        attrib,
        limit: 0xFFFF_FFFF,
        base: 0,
    };
    vmcb.set_segment(SegmentRegister::Cs, cs);
    assert_eq!(vmcb.segment(SegmentRegister::Cs), cs);
    assert_eq!(vmcb.get16(SegmentRegister::Cs.fields().attrib), 0xA9B);
    assert_eq!(vmcb.segment(SegmentRegister::Ss), Segment::default());
}

#[test]
fn guest_instruction_bytes_are_bounded_by_the_count() {
    let mut vmcb = Vmcb::new();
    assert!(vmcb.guest_instruction_bytes().is_empty());
    vmcb.set_guest_instruction_bytes(&[0x0F, 0x01, 0xD9]);
    assert_eq!(vmcb.guest_instruction_bytes(), &[0x0F, 0x01, 0xD9]);
    assert_eq!(vmcb.as_bytes()[0xD0], 3);
    vmcb.set8(control::GUEST_INSTRUCTION_BYTE_COUNT, 200);
    assert_eq!(vmcb.guest_instruction_bytes().len(), 15);
}
