//! The privileged SVM instructions behind a trait, so all SVM logic is testable on the host.
//!
//! [`SvmHardware`] is implemented by `real::RealSvm` (inline asm, only for `target_os = "none"`)
//! and by [`soft::SoftSvm`], a software double used by host tests.

use crate::capabilities::{decide_vm_cr, VmCrAction};
use crate::guest_regs::GuestRegisters;
use crate::msr::{EFER, EFER_SVME, VM_CR, VM_HSAVE_PA};
use core::fmt;

#[cfg(target_os = "none")]
pub mod real;
pub mod soft;

pub use soft::{SimulatedExit, SoftSvm, SvmCall};

/// Failures of the SVM instructions that can be detected before or instead of a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SvmError {
    /// EFER.SVME is clear: the instruction would raise #UD.
    SvmNotEnabled,
    /// A VMCB or host-save address that is not 4-KiB aligned (#GP on hardware).
    Misaligned(u64),
    /// VM_CR.SVMDIS and LOCK are set: EFER.SVME cannot be set.
    DisabledByFirmware,
    /// Test double only: VMRUN on an address with no VMCB attached.
    UnknownVmcb(u64),
    /// Test double only: VMRUN with no simulated exit queued.
    NoSimulatedExit,
}

impl fmt::Display for SvmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SvmNotEnabled => f.write_str("EFER.SVME is clear (SVM instructions #UD)"),
            Self::Misaligned(a) => write!(f, "address {a:#x} is not 4-KiB aligned"),
            Self::DisabledByFirmware => f.write_str("SVM disabled by firmware (VM_CR locked)"),
            Self::UnknownVmcb(a) => write!(f, "no VMCB at {a:#x}"),
            Self::NoSimulatedExit => f.write_str("no simulated #VMEXIT queued"),
        }
    }
}

/// Checks a VMCB / host-save area address.
pub fn check_page_aligned(pa: u64) -> Result<(), SvmError> {
    if pa & 0xFFF != 0 {
        Err(SvmError::Misaligned(pa))
    } else {
        Ok(())
    }
}

/// The privileged instructions SVM needs. Physical addresses are host-physical.
pub trait SvmHardware {
    /// RDMSR.
    fn rdmsr(&mut self, msr: u32) -> u64;
    /// WRMSR.
    fn wrmsr(&mut self, msr: u32, value: u64);
    /// Runs the guest of the VMCB at `vmcb_pa` with `regs` loaded (RAX and RSP come from the
    /// VMCB) and returns after the next #VMEXIT with `regs` holding the guest's registers and
    /// the exit recorded in the VMCB (EXITCODE -1 when VMRUN refused the state). GIF is cleared
    /// around the run and set again after it.
    fn vmrun(&mut self, vmcb_pa: u64, regs: &mut GuestRegisters) -> Result<(), SvmError>;
    /// VMLOAD: loads FS/GS/TR/LDTR hidden state, KernelGsBase, STAR/LSTAR/CSTAR/SFMASK and
    /// SYSENTER MSRs from the VMCB.
    fn vmload(&mut self, vmcb_pa: u64) -> Result<(), SvmError>;
    /// VMSAVE: the reverse of VMLOAD.
    fn vmsave(&mut self, vmcb_pa: u64) -> Result<(), SvmError>;
    /// STGI: sets the global interrupt flag.
    fn stgi(&mut self);
    /// CLGI: clears the global interrupt flag.
    fn clgi(&mut self);
    /// INVLPGA: invalidates the TLB entry of `guest_va` in `asid`.
    fn invlpga(&mut self, guest_va: u64, asid: u32);
}

/// Enables SVM on this CPU (APM 15.4): clears VM_CR.SVMDIS when unlocked, sets EFER.SVME, and
/// writes VM_HSAVE_PA. Call only after CPUID reported SVM (the MSRs #GP otherwise).
pub fn enable_svm(hw: &mut impl SvmHardware, host_save_pa: u64) -> Result<(), SvmError> {
    check_page_aligned(host_save_pa)?;
    match decide_vm_cr(hw.rdmsr(VM_CR)) {
        VmCrAction::Enabled => {}
        VmCrAction::ClearSvmdis(value) => hw.wrmsr(VM_CR, value),
        VmCrAction::DisabledByFirmware => return Err(SvmError::DisabledByFirmware),
    }
    let efer = hw.rdmsr(EFER);
    if efer & EFER_SVME == 0 {
        hw.wrmsr(EFER, efer | EFER_SVME);
    }
    hw.wrmsr(VM_HSAVE_PA, host_save_pa);
    log::debug!("svm: EFER.SVME set, VM_HSAVE_PA={host_save_pa:#x}");
    Ok(())
}
