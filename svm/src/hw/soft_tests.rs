use super::*;
use crate::hw::enable_svm;
use crate::msr::{VM_CR, VM_CR_LOCK, VM_CR_SVMDIS, VM_HSAVE_PA};
use crate::setup::{write_long_mode_guest, InterceptChoice, LongModeGuest};
use crate::vmcb::control::TlbControl;

const VMCB_PA: u64 = 0x10_0000;

fn guest_vmcb() -> Vmcb {
    let mut vmcb = Vmcb::new();
    let guest = LongModeGuest {
        entry: 0x1000,
        stack: 0x8000,
        cr3: 0x2000,
        gdtr: (0, 0),
        idtr: (0, 0),
        asid: 1,
        tlb_control: TlbControl::FlushGuest,
        ncr3: 0x30_0000,
        iopm_pa: 0x40_0000,
        msrpm_pa: 0x50_0000,
        intercepts: InterceptChoice::default(),
    };
    write_long_mode_guest(&mut vmcb, &guest);
    vmcb
}

fn enabled() -> SoftSvm {
    let mut hw = SoftSvm::new();
    enable_svm(&mut hw, 0x20_0000).unwrap();
    hw.attach_vmcb(VMCB_PA, guest_vmcb());
    hw
}

#[test]
fn enable_sets_svme_and_hsave() {
    let mut hw = SoftSvm::new().with_msr(EFER, 0x500);
    enable_svm(&mut hw, 0x20_0000).unwrap();
    assert_eq!(hw.msrs[&EFER], 0x500 | EFER_SVME);
    assert_eq!(hw.msrs[&VM_HSAVE_PA], 0x20_0000);
    assert!(!hw
        .calls
        .iter()
        .any(|c| matches!(c, SvmCall::Wrmsr(VM_CR, _))));
    assert_eq!(
        enable_svm(&mut hw, 0x20_0010),
        Err(SvmError::Misaligned(0x20_0010))
    );
}

#[test]
fn enable_clears_unlocked_svmdis_and_refuses_locked() {
    let mut hw = SoftSvm::new().with_msr(VM_CR, VM_CR_SVMDIS);
    enable_svm(&mut hw, 0x1000).unwrap();
    assert_eq!(hw.msrs[&VM_CR], 0);
    let mut locked = SoftSvm::new().with_msr(VM_CR, VM_CR_SVMDIS | VM_CR_LOCK);
    assert_eq!(
        enable_svm(&mut locked, 0x1000),
        Err(SvmError::DisabledByFirmware)
    );
    assert_eq!(locked.msrs.get(&EFER), None);
}

#[test]
fn vmrun_needs_svme_and_an_aligned_vmcb() {
    let mut regs = GuestRegisters::default();
    let mut hw = SoftSvm::new();
    hw.attach_vmcb(VMCB_PA, guest_vmcb());
    assert_eq!(hw.vmrun(VMCB_PA, &mut regs), Err(SvmError::SvmNotEnabled));
    let mut hw = enabled();
    assert_eq!(
        hw.vmrun(VMCB_PA + 8, &mut regs),
        Err(SvmError::Misaligned(VMCB_PA + 8))
    );
    assert_eq!(
        hw.vmrun(0x9000, &mut regs),
        Err(SvmError::UnknownVmcb(0x9000))
    );
    assert_eq!(hw.vmrun(VMCB_PA, &mut regs), Err(SvmError::NoSimulatedExit));
    assert_eq!(hw.vmload(0x9000), Err(SvmError::UnknownVmcb(0x9000)));
}

#[test]
fn vmrun_reports_the_queued_exit_with_gif_handling() {
    let mut hw = enabled();
    let mut regs = GuestRegisters::default();
    let mut after = GuestRegisters::default();
    after.gpr[1] = 0xC000_0080;
    hw.queue_exit(SimulatedExit {
        code: ExitCode::Msr.raw(),
        info1: 1,
        nrip: 0x1002,
        registers: Some(after),
        rax: Some(0x55),
        ..SimulatedExit::default()
    });
    hw.vmrun(VMCB_PA, &mut regs).unwrap();
    assert_eq!(regs.gpr[1], 0xC000_0080);
    let vmcb = hw.vmcb(VMCB_PA).unwrap();
    let exit = crate::exit::VmExit::read(vmcb);
    assert_eq!(exit.code, ExitCode::Msr);
    assert_eq!(
        crate::exit::MsrExit::decode(exit.info1),
        Ok(crate::exit::MsrExit::Write)
    );
    assert_eq!(crate::exit::next_rip(vmcb, true), Ok(0x1002));
    assert_eq!(vmcb.get64(save::RAX), 0x55);
    let tail = &hw.calls[hw.calls.len() - 3..];
    assert_eq!(
        tail,
        [SvmCall::Clgi, SvmCall::Vmrun(VMCB_PA), SvmCall::Stgi]
    );
    assert!(hw.gif);
}

#[test]
fn inconsistent_state_exits_with_vmexit_invalid_and_keeps_the_queue() {
    let mut hw = enabled();
    hw.vmcb_mut(VMCB_PA).unwrap().set32(control::GUEST_ASID, 0);
    hw.queue_exit(SimulatedExit::code(ExitCode::Hlt));
    let mut regs = GuestRegisters::default();
    hw.vmrun(VMCB_PA, &mut regs).unwrap();
    assert_eq!(
        crate::exit::VmExit::read(hw.vmcb(VMCB_PA).unwrap()).code,
        ExitCode::Invalid
    );
    hw.vmcb_mut(VMCB_PA).unwrap().set32(control::GUEST_ASID, 1);
    hw.vmrun(VMCB_PA, &mut regs).unwrap();
    assert_eq!(
        crate::exit::VmExit::read(hw.vmcb(VMCB_PA).unwrap()).code,
        ExitCode::Hlt
    );
}

#[test]
fn gif_and_invlpga_are_recorded() {
    let mut hw = SoftSvm::new();
    assert!(hw.gif);
    hw.clgi();
    assert!(!hw.gif);
    hw.stgi();
    hw.invlpga(0x4000, 3);
    assert_eq!(
        hw.calls,
        [SvmCall::Clgi, SvmCall::Stgi, SvmCall::Invlpga(0x4000, 3)]
    );
}
