extern crate std;
use super::*;
use crate::setup::{CODE64_ATTRIB, DATA_ATTRIB};
use crate::vmcb::save::{self, SegmentRegister};
use crate::vmcb::{control, Segment, SegmentAttributes, Vmcb};
use std::string::ToString;

#[test]
fn exit_codes_decode_per_appendix_c() {
    let pinned = [
        (0x00, ExitCode::CrRead(0)),
        (0x13, ExitCode::CrWrite(3)),
        (0x27, ExitCode::DrRead(7)),
        (0x3F, ExitCode::DrWrite(15)),
        (0x4E, ExitCode::Exception(14)),
        (0x5F, ExitCode::Exception(31)),
        (0x60, ExitCode::Intr),
        (0x61, ExitCode::Nmi),
        (0x64, ExitCode::Vintr),
        (0x72, ExitCode::Cpuid),
        (0x78, ExitCode::Hlt),
        (0x7B, ExitCode::Ioio),
        (0x7C, ExitCode::Msr),
        (0x7F, ExitCode::Shutdown),
        (0x80, ExitCode::Vmrun),
        (0x81, ExitCode::Vmmcall),
        (0x8D, ExitCode::Xsetbv),
        (0x93, ExitCode::CrWriteTrap(3)),
        (0x400, ExitCode::Npf),
        (u64::MAX, ExitCode::Invalid),
        (0xFFFF_FFFF_FFFF_FFFE, ExitCode::Busy),
        (0x1234, ExitCode::Unknown(0x1234)),
    ];
    for (raw, code) in pinned {
        assert_eq!(ExitCode::from_raw(raw), code, "{raw:#x}");
        assert_eq!(code.raw(), raw);
    }
    assert_eq!(ExitCode::from_raw(0xFFFF_FFFF), ExitCode::Invalid);
    assert_eq!(ExitCode::from_raw(0xFFFF_FFFE), ExitCode::Busy);
    for raw in 0..0x410u64 {
        assert_eq!(ExitCode::from_raw(raw).raw(), raw);
    }
    assert_eq!(ExitCode::Npf.to_string(), "VMEXIT_NPF (0x400)");
    assert_eq!(
        ExitCode::Invalid.to_string(),
        "VMEXIT_INVALID (0xffffffffffffffff)"
    );
    assert_eq!(
        ExitCode::Exception(6).to_string(),
        "VMEXIT_EXCPx (vector 6, 0x46)"
    );
}

#[test]
fn ioio_exitinfo_decodes() {
    // IN AL, 0x60: port 0x60, TYPE=1, SZ8, A64.
    let info1 = 0x60 << 16 | 1 << 7 << 2 | 1 << 4 | 1;
    let io = IoioInfo::decode(info1, 0x1002).unwrap();
    assert_eq!(io.port, 0x60);
    assert_eq!(io.size, 1);
    assert_eq!(io.direction, IoDirection::In);
    assert!(!io.string && !io.rep);
    assert_eq!(io.address_size, 64);
    assert_eq!(io.next_rip, 0x1002);
    // REP OUTSW to 0x3F8 with 32-bit addresses, DS segment (3).
    let info1 = 0x3F8 << 16 | 3 << 10 | 1 << 8 | 1 << 5 | 1 << 3 | 1 << 2;
    let io = IoioInfo::decode(info1, 0).unwrap();
    assert_eq!(
        (io.port, io.size, io.address_size, io.segment),
        (0x3F8, 2, 32, 3)
    );
    assert!(io.string && io.rep);
    assert_eq!(io.direction, IoDirection::Out);
    assert_eq!(
        IoioInfo::decode(0x60 << 16, 0),
        Err(ExitInfoError::IoSize(0x60 << 16))
    );
    assert_eq!(
        IoioInfo::decode(3 << 4, 0),
        Err(ExitInfoError::IoSize(3 << 4))
    );
}

#[test]
fn msr_and_cr_exitinfo_decode() {
    assert_eq!(MsrExit::decode(0), Ok(MsrExit::Read));
    assert_eq!(MsrExit::decode(1), Ok(MsrExit::Write));
    assert_eq!(MsrExit::decode(2), Err(ExitInfoError::MsrAccess(2)));
    assert_eq!(
        CrAccess::decode(1 << 63 | 11),
        CrAccess { mov: true, gpr: 11 }
    );
    assert!(!CrAccess::decode(0).mov);
}

#[test]
fn npf_exitinfo_decodes() {
    let npf = NpfInfo::decode(1 << 32 | 0b10111, 0xFEE0_0030);
    assert!(npf.present && npf.write && npf.user && npf.fetch && npf.final_translation);
    assert!(!npf.reserved && !npf.page_table_walk);
    assert_eq!(npf.gpa, 0xFEE0_0030);
    let walk = NpfInfo::decode(1 << 33 | 0b1100, 0x1000);
    assert!(walk.page_table_walk && walk.reserved && !walk.present && !walk.final_translation);
}

#[test]
fn events_round_trip() {
    let pf = EventInfo {
        vector: 14,
        event_type: EventType::Exception,
        error_code: Some(2),
    };
    assert_eq!(pf.encode(), 2 << 32 | 1 << 31 | 1 << 11 | 3 << 8 | 14);
    assert_eq!(EventInfo::decode(pf.encode()), Some(pf));
    assert_eq!(EventInfo::decode(0x30E), None);
    let nmi = EventInfo::decode(1 << 31 | 2 << 8 | 2).unwrap();
    assert_eq!((nmi.event_type, nmi.error_code), (EventType::Nmi, None));
    assert_eq!(
        EventInfo::decode(1 << 31 | 6 << 8).unwrap().event_type,
        EventType::Reserved(6)
    );
}

fn vmcb_at(rip: u64, cs: SegmentAttributes) -> Vmcb {
    let mut vmcb = Vmcb::new();
    vmcb.set64(save::RIP, rip);
    vmcb.set_segment(
        SegmentRegister::Cs,
        Segment {
            selector: 8,
            attrib: cs,
            limit: u32::MAX,
            base: 0,
        },
    );
    vmcb
}

#[test]
fn next_rip_prefers_nrip_then_decodes_instruction_bytes() {
    let mut vmcb = vmcb_at(0x1000, CODE64_ATTRIB);
    vmcb.set64(control::NRIP, 0x1003);
    vmcb.set_guest_instruction_bytes(&[0x0F, 0x01, 0xD9, 0x90]);
    assert_eq!(next_rip(&vmcb, true), Ok(0x1003));
    // Without NRIPS: VMMCALL (0F 01 D9) is 3 bytes.
    assert_eq!(next_rip(&vmcb, false), Ok(0x1003));
    // CPUID (0F A2), 2 bytes, with an NRIP of 0 (not saved for this exit).
    vmcb.set64(control::NRIP, 0);
    vmcb.set_guest_instruction_bytes(&[0x0F, 0xA2]);
    assert_eq!(next_rip(&vmcb, true), Ok(0x1002));
    // MOV EAX, imm32 is 5 bytes in 32-bit code but 3 (66 prefix absent: imm16) in 16-bit.
    let mut legacy = vmcb_at(0x100, DATA_ATTRIB);
    legacy.set_guest_instruction_bytes(&[0xB8, 1, 2, 3, 4]);
    assert_eq!(next_rip(&legacy, false), Ok(0x105));
    let mut real = vmcb_at(0x100, SegmentAttributes(0x9B));
    real.set_guest_instruction_bytes(&[0xB8, 1, 2, 3, 4]);
    assert_eq!(next_rip(&real, false), Ok(0x103));
}

#[test]
fn next_rip_errors_are_explicit() {
    let mut vmcb = vmcb_at(0x1000, CODE64_ATTRIB);
    assert_eq!(
        next_rip(&vmcb, false),
        Err(InstructionLengthError::NoInstructionBytes)
    );
    vmcb.set_guest_instruction_bytes(&[0x0F, 0x01]);
    assert_eq!(
        next_rip(&vmcb, false),
        Err(InstructionLengthError::Undecodable)
    );
    vmcb.set_guest_instruction_bytes(&[0x06]);
    assert_eq!(
        next_rip(&vmcb, false),
        Err(InstructionLengthError::Undecodable)
    );
}

#[test]
fn vm_exit_reads_the_vmcb() {
    let mut vmcb = Vmcb::new();
    vmcb.set64(control::EXITCODE, 0x400);
    vmcb.set64(control::EXITINFO1, 1 << 32 | 7);
    vmcb.set64(control::EXITINFO2, 0x2000);
    vmcb.set64(control::EXITINTINFO, 1 << 31 | 0x20);
    let exit = VmExit::read(&vmcb);
    assert_eq!(exit.code, ExitCode::Npf);
    assert_eq!(NpfInfo::decode(exit.info1, exit.info2).gpa, 0x2000);
    assert_eq!(exit.interrupted_event.unwrap().vector, 0x20);
}
