use super::*;
use crate::capabilities::VmxBasic;
use crate::hw::SoftVmcs;
use crate::vmcs_setup::{
    guest_control_registers, write_controls, write_execution_pointers, write_host_state,
    write_long_mode_guest, ControlRequest, ExecutionPointers, HostState, LongModeGuest,
};

const FIXED: FixedCrs = FixedCrs {
    cr0: (0x8000_0021, 0xFFFF_FFFF),
    cr4: (0x2000, 0x3727FF),
};

/// A VMCS written by `vmcs_setup` for a CPU that allows everything requested.
fn configured() -> SoftVmcs {
    let all_allowed = 0xFFFF_FFFF_0000_0000;
    let mut hw = SoftVmcs::new()
        .with_msr(msr::IA32_VMX_TRUE_PINBASED_CTLS, all_allowed)
        .with_msr(msr::IA32_VMX_TRUE_PROCBASED_CTLS, all_allowed)
        .with_msr(msr::IA32_VMX_PROCBASED_CTLS2, all_allowed)
        .with_msr(msr::IA32_VMX_TRUE_EXIT_CTLS, all_allowed)
        .with_msr(msr::IA32_VMX_TRUE_ENTRY_CTLS, all_allowed);
    hw.vmxon(0x1000).unwrap();
    hw.vmptrld(0x2000).unwrap();
    let basic = VmxBasic::from_msr(1 << 55);
    let written =
        write_controls(&mut hw, &basic, ControlRequest::long_mode_guest_with_ept()).unwrap();
    let pointers = ExecutionPointers {
        eptp: 0x3000 | 0x1E,
        vpid: 1,
        io_bitmap_a: 0x4000,
        io_bitmap_b: 0x5000,
        msr_bitmap: 0x6000,
    };
    write_execution_pointers(&mut hw, &written, &pointers).unwrap();
    let host = HostState {
        cr0: 0x8000_0031,
        cr4: 0x2020,
        cs: 0x08,
        ss: 0x10,
        tr: 0x18,
        rip: 0xFFFF_8000_0000_1000,
        ..Default::default()
    };
    write_host_state(&mut hw, &host).unwrap();
    let crs = guest_control_registers(FIXED.cr0, FIXED.cr4);
    let guest = LongModeGuest {
        rip: 0x40_0000,
        rsp: 0x80_0000,
        cr3: 0x10_0000,
        ..Default::default()
    };
    write_long_mode_guest(&mut hw, &guest, &crs, FIXED.cr0.0).unwrap();
    hw
}

fn messages(hw: &mut SoftVmcs) -> Vec<&'static str> {
    check_current_vmcs(hw, &FIXED)
        .unwrap()
        .iter()
        .map(|p| p.message)
        .collect()
}

#[test]
fn vmcs_from_setup_passes_the_checks() {
    let mut hw = configured();
    assert_eq!(check_current_vmcs(&mut hw, &FIXED).unwrap(), []);
}

#[test]
fn bad_eptp_and_vpid_are_control_problems() {
    let mut hw = configured();
    hw.vmwrite(f::EPT_POINTER.encoding(), 0x3000 | 6).unwrap();
    hw.vmwrite(f::VPID.encoding(), 0).unwrap();
    let problems = check_current_vmcs(&mut hw, &FIXED).unwrap();
    assert_eq!(problems.len(), 2);
    assert!(problems.iter().all(|p| p.area == CheckArea::Controls));
    assert_eq!(
        problems[0].message,
        "EPTP page-walk length must be 4 (bits 5:3 = 3)"
    );
    assert_eq!(problems[1].field, f::VPID.encoding());
}

#[test]
fn host_problems_are_found() {
    let mut hw = configured();
    hw.vmwrite(f::HOST_TR_SELECTOR.encoding(), 0).unwrap();
    hw.vmwrite(f::HOST_SS_SELECTOR.encoding(), 0x13).unwrap();
    hw.vmwrite(f::HOST_RIP.encoding(), 0x0000_8000_0000_0000)
        .unwrap();
    assert_eq!(
        messages(&mut hw),
        [
            "host selector RPL and TI must be 0",
            "host CS and TR selectors must not be 0",
            "host address must be canonical"
        ]
    );
}

#[test]
fn guest_problems_are_found() {
    let mut hw = configured();
    hw.vmwrite(f::GUEST_IA32_EFER.encoding(), msr::EFER_LME)
        .unwrap();
    hw.vmwrite(f::GUEST_CS_ACCESS_RIGHTS.encoding(), 0xE09B)
        .unwrap();
    hw.vmwrite(f::GUEST_RFLAGS.encoding(), 0).unwrap();
    hw.vmwrite(f::VMCS_LINK_POINTER.encoding(), 0).unwrap();
    hw.vmwrite(f::GUEST_CR4.encoding(), 0x20).unwrap();
    let problems = check_current_vmcs(&mut hw, &FIXED).unwrap();
    assert!(problems.iter().all(|p| p.area == CheckArea::GuestState));
    assert_eq!(
        problems.iter().map(|p| p.message).collect::<Vec<_>>(),
        [
            "guest CR4 breaks the CR4 fixed bits",
            "guest EFER.LMA must equal the IA-32e mode guest entry control",
            "guest EFER.LME must equal EFER.LMA when paging is on",
            "64-bit CS (L=1) must have D/B=0",
            "guest RFLAGS bit 1 must be 1 and bits 63:22, 15, 5, 3 must be 0",
            "VMCS link pointer must be all ones without VMCS shadowing",
        ]
    );
    assert_eq!(
        problems[0].to_string(),
        "GuestState: field 0x6804 = 0x20: guest CR4 breaks the CR4 fixed bits"
    );
}

#[test]
fn checks_without_current_vmcs_fail() {
    let mut hw = SoftVmcs::new();
    assert_eq!(
        check_current_vmcs(&mut hw, &FIXED),
        Err(VmxInstructionError::FailInvalid)
    );
}
