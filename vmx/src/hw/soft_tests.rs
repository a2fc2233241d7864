use super::*;

const VMXON: u64 = 0x1000;
const VMCS: u64 = 0x2000;

fn ready() -> SoftVmcs {
    let mut hw = SoftVmcs::new();
    hw.vmxon(VMXON).unwrap();
    hw.vmclear(VMCS).unwrap();
    hw.vmptrld(VMCS).unwrap();
    hw
}

#[test]
fn instructions_outside_vmx_operation_fail_invalid() {
    let mut hw = SoftVmcs::new();
    assert_eq!(hw.vmptrld(VMCS), Err(VmxInstructionError::FailInvalid));
    assert_eq!(hw.vmread(0x681E), Err(VmxInstructionError::FailInvalid));
}

#[test]
fn vmwrite_then_vmread_round_trips() {
    let mut hw = ready();
    hw.vmwrite(0x681E, 0xdead_beef).unwrap();
    assert_eq!(hw.vmread(0x681E), Ok(0xdead_beef));
    assert_eq!(hw.calls.last(), Some(&HwCall::Vmread(0x681E)));
}

#[test]
fn vmwrite_to_read_only_field_is_error_13() {
    let mut hw = ready();
    assert_eq!(
        hw.vmwrite(0x4402, 1),
        Err(VmxInstructionError::FailValid(13))
    );
    assert_eq!(
        hw.vmwrite(0x1_0000, 1),
        Err(VmxInstructionError::FailValid(12))
    );
}

#[test]
fn launch_state_is_tracked() {
    let mut hw = ready();
    assert_eq!(hw.vmresume(), Err(VmxInstructionError::FailValid(5)));
    hw.vmlaunch().unwrap();
    assert!(hw.is_launched(VMCS));
    assert_eq!(hw.vmlaunch(), Err(VmxInstructionError::FailValid(4)));
    hw.vmresume().unwrap();
    hw.vmclear(VMCS).unwrap();
    assert!(!hw.is_launched(VMCS));
    assert_eq!(hw.current_vmcs(), None);
}

#[test]
fn vmptrld_of_vmxon_region_and_misaligned_address() {
    let mut hw = ready();
    assert_eq!(hw.vmptrld(VMXON), Err(VmxInstructionError::FailValid(10)));
    assert_eq!(hw.vmptrld(0x2004), Err(VmxInstructionError::FailValid(9)));
    assert_eq!(hw.vmxon(VMXON), Err(VmxInstructionError::FailValid(15)));
}

#[test]
fn injected_failures_are_one_shot_and_decoded() {
    let mut hw = ready();
    hw.fail_next_valid(HwOp::Vmlaunch, 7);
    let err = hw.vmlaunch().unwrap_err();
    assert_eq!(err, VmxInstructionError::FailValid(7));
    assert_eq!(err.description(), "VM entry with invalid control field(s)");
    assert_eq!(hw.field(VM_INSTRUCTION_ERROR_FIELD), Some(7));
    hw.vmlaunch().unwrap();
    hw.fail_next_invalid(HwOp::Vmread);
    assert_eq!(hw.vmread(0x681E), Err(VmxInstructionError::FailInvalid));
}

#[test]
fn run_guest_reports_queued_exits() {
    let mut hw = ready();
    let mut regs = GuestRegisters::default();
    let mut after = GuestRegisters::default();
    after.gpr[0] = 0x1234;
    hw.queue_exit(SimulatedExit {
        reason: 10,
        instruction_length: 2,
        registers: Some(after),
        ..Default::default()
    });
    hw.run_guest(&mut regs, false).unwrap();
    assert_eq!(hw.field(0x4402), Some(10));
    assert_eq!(hw.field(0x440C), Some(2));
    assert_eq!(regs.gpr[0], 0x1234);
    assert_eq!(
        hw.run_guest(&mut regs, false),
        Err(VmxInstructionError::FailValid(4))
    );
    hw.run_guest(&mut regs, true).unwrap();
    assert_eq!(
        hw.calls[hw.calls.len() - 3..],
        [HwCall::Vmlaunch, HwCall::Vmlaunch, HwCall::Vmresume]
    );
}

#[test]
fn msrs_and_crs_are_recorded() {
    let mut hw = SoftVmcs::new().with_msr(0x480, 42);
    assert_eq!(hw.rdmsr(0x480), 42);
    hw.write_cr(ControlRegister::Cr4, 0x2000);
    assert_eq!(hw.read_cr(ControlRegister::Cr4), 0x2000);
    assert_eq!(
        hw.calls,
        [
            HwCall::Rdmsr(0x480),
            HwCall::WriteCr(ControlRegister::Cr4, 0x2000),
            HwCall::ReadCr(ControlRegister::Cr4)
        ]
    );
}
