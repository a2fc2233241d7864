extern crate std;
use super::*;
use crate::fields;
use crate::hw::{HwOp, SoftVmcs, VmxHardware};
use std::string::ToString;

#[test]
fn basic_exit_reasons_decode_and_round_trip() {
    assert_eq!(BasicExitReason::from_number(10), BasicExitReason::Cpuid);
    assert_eq!(
        BasicExitReason::from_number(48),
        BasicExitReason::EptViolation
    );
    assert_eq!(
        BasicExitReason::from_number(30),
        BasicExitReason::IoInstruction
    );
    assert_eq!(
        BasicExitReason::from_number(52),
        BasicExitReason::PreemptionTimerExpired
    );
    assert_eq!(
        BasicExitReason::from_number(35),
        BasicExitReason::Unknown(35)
    );
    for n in 0..100u16 {
        assert_eq!(BasicExitReason::from_number(n).number(), n);
    }
}

#[test]
fn entry_failure_bit_is_decoded() {
    let r = ExitReason::from_raw(0x8000_0021);
    assert!(r.entry_failure);
    assert_eq!(r.basic, BasicExitReason::EntryFailureGuestState);
    assert_eq!(
        r.to_string(),
        "exit reason 33 (VM-entry failure due to invalid guest state) [VM-entry failure]"
    );
    let plain = ExitReason::from_raw(12);
    assert!(!plain.entry_failure);
    assert_eq!(plain.to_string(), "exit reason 12 (HLT)");
}

#[test]
fn ept_violation_qualification() {
    // Write to a read-only page, linear address valid, final translation.
    let v = EptViolation::from_qualification(0x182 | (1 << 3));
    assert!(v.write && !v.read && !v.fetch);
    assert!(v.readable && !v.writable && !v.executable);
    assert!(v.linear_address_valid && v.final_translation);
    let fetch = EptViolation::from_qualification(0x4);
    assert!(fetch.fetch && !fetch.linear_address_valid && !fetch.final_translation);
}

#[test]
fn io_qualification() {
    // OUT dx, al to 0x3F8.
    let out = IoQualification::from_qualification(0x03F8_0000).unwrap();
    assert_eq!(out.size, 1);
    assert_eq!(out.direction, IoDirection::Out);
    assert_eq!(out.port, 0x3F8);
    assert!(!out.string && !out.rep && !out.immediate_port);
    // REP INSD from port 0x1F0.
    let ins = IoQualification::from_qualification(0x01F0_0000 | 3 | 8 | 16 | 32).unwrap();
    assert_eq!(
        (ins.size, ins.direction, ins.string, ins.rep),
        (4, IoDirection::In, true, true)
    );
    // IN al, 0x60 (immediate).
    let imm = IoQualification::from_qualification(0x0060_0000 | 8 | 64).unwrap();
    assert!(imm.immediate_port);
    assert_eq!(
        IoQualification::from_qualification(2),
        Err(BadQualification(2))
    );
}

#[test]
fn cr_access_qualification() {
    // mov cr3, rbx -> cr 3, type 0, gpr 3.
    let a = CrAccess::from_qualification(0x303);
    assert_eq!(a.cr, 3);
    assert_eq!(a.access, CrAccessType::MovToCr { gpr: 3 });
    // mov r12, cr4.
    let b = CrAccess::from_qualification(0xC14);
    assert_eq!((b.cr, b.access), (4, CrAccessType::MovFromCr { gpr: 12 }));
    assert_eq!(
        CrAccess::from_qualification(0x20).access,
        CrAccessType::Clts
    );
    let l = CrAccess::from_qualification(0x0001_0070);
    assert_eq!(
        l.access,
        CrAccessType::Lmsw {
            memory_operand: true,
            source: 1
        }
    );
}

#[test]
fn interruption_info() {
    // #PF, hardware exception with error code, valid.
    let i = InterruptionInfo::from_raw(0x8000_0B0E);
    assert_eq!(i.vector, 14);
    assert_eq!(i.kind, InterruptionType::HardwareException);
    assert!(i.error_code_valid && i.valid);
    assert_eq!(
        InterruptionInfo::from_raw(0x8000_0202).kind,
        InterruptionType::Nmi
    );
}

#[test]
fn vmcs_dump_reads_fields_through_the_trait() {
    let mut hw = SoftVmcs::new();
    hw.vmxon(0x1000).unwrap();
    hw.vmptrld(0x2000).unwrap();
    hw.set_field(fields::VM_EXIT_REASON.encoding(), 48);
    fields::GUEST_RIP.write(&mut hw, 0x40_1000).unwrap();
    hw.fail_next_valid(HwOp::Vmread, 12);
    hw.vmread(0).unwrap_err();
    let dump = VmcsDump::capture(&mut hw, DEFAULT_DUMP_FIELDS);
    assert_eq!(dump.entries.len(), DEFAULT_DUMP_FIELDS.len());
    assert_eq!(dump.get(fields::VM_EXIT_REASON.encoding()), Some(48));
    assert_eq!(dump.get(fields::GUEST_RIP.encoding()), Some(0x40_1000));
    let text = dump.to_string();
    assert!(text.contains("VM_EXIT_REASON (0x4402) = 0x30\n"));
    assert!(text.contains("GUEST_RIP (0x681e) = 0x401000\n"));
    assert!(text.contains("VM_INSTRUCTION_ERROR (0x4400) = 0xc\n"));
}

#[test]
fn vmcs_dump_keeps_failed_reads() {
    let mut hw = SoftVmcs::new();
    let dump = VmcsDump::capture(&mut hw, &[("GUEST_RIP", 0x681E)]);
    assert_eq!(dump.get(0x681E), None);
    assert_eq!(
        dump.to_string(),
        "GUEST_RIP (0x681e) = <VMfailInvalid (no current VMCS)>\n"
    );
}
