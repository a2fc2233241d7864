//! The privileged VMX instructions behind a trait, so all VT-x logic is testable on the host.
//!
//! [`VmxHardware`] is implemented by `real::RealVmx` (inline asm, only for `target_os = "none"`)
//! and by [`soft::SoftVmcs`], a software VMCS used by host tests.

use crate::guest_regs::GuestRegisters;
use core::fmt;

#[cfg(target_os = "none")]
pub mod real;
pub mod soft;

pub use soft::{HwCall, HwOp, SimulatedExit, SoftVmcs};

/// VMCS field encoding of the VM-instruction error field (32-bit, read-only).
pub const VM_INSTRUCTION_ERROR_FIELD: u32 = 0x4400;

/// RFLAGS.CF: set by VMfailInvalid.
pub const RFLAGS_CF: u64 = 1 << 0;
/// RFLAGS.ZF: set by VMfailValid.
pub const RFLAGS_ZF: u64 = 1 << 6;

/// How a VMX instruction failed (SDM Vol. 3, 31.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmxInstructionError {
    /// CF=1: no current VMCS (or VMXON region) to hold an error number.
    FailInvalid,
    /// ZF=1: the error number was read from the VM-instruction error field (0x4400).
    FailValid(u32),
}

impl VmxInstructionError {
    /// The SDM name of the error (Table 31-1), or a generic text for `FailInvalid`/unknown numbers.
    pub fn description(&self) -> &'static str {
        match self {
            Self::FailInvalid => "VMfailInvalid (no current VMCS)",
            Self::FailValid(n) => vm_instruction_error_name(*n),
        }
    }
}

impl fmt::Display for VmxInstructionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FailInvalid => f.write_str(self.description()),
            Self::FailValid(n) => write!(f, "VMfailValid error {}: {}", n, self.description()),
        }
    }
}

/// SDM Vol. 3, Table 31-1 (VM-instruction error numbers).
pub fn vm_instruction_error_name(number: u32) -> &'static str {
    match number {
        1 => "VMCALL executed in VMX root operation",
        2 => "VMCLEAR with invalid physical address",
        3 => "VMCLEAR with VMXON pointer",
        4 => "VMLAUNCH with non-clear VMCS",
        5 => "VMRESUME with non-launched VMCS",
        6 => "VMRESUME after VMXOFF",
        7 => "VM entry with invalid control field(s)",
        8 => "VM entry with invalid host-state field(s)",
        9 => "VMPTRLD with invalid physical address",
        10 => "VMPTRLD with VMXON pointer",
        11 => "VMPTRLD with incorrect VMCS revision identifier",
        12 => "VMREAD/VMWRITE from/to unsupported VMCS component",
        13 => "VMWRITE to read-only VMCS component",
        15 => "VMXON executed in VMX root operation",
        16 => "VM entry with invalid executive-VMCS pointer",
        17 => "VM entry with non-launched executive VMCS",
        18 => "VM entry with executive-VMCS pointer not VMXON pointer",
        19 => "VMCALL with non-clear VMCS",
        20 => "VMCALL with invalid VM-exit control fields",
        22 => "VMCALL with incorrect MSEG revision identifier",
        23 => "VMXOFF under dual-monitor treatment of SMIs and SMM",
        24 => "VMCALL with invalid SMM-monitor features",
        25 => "VM entry with invalid VM-execution control fields in executive VMCS",
        26 => "VM entry with events blocked by MOV SS",
        28 => "Invalid operand to INVEPT/INVVPID",
        _ => "unknown VM-instruction error number",
    }
}

/// Turns the RFLAGS left by a VMX instruction into a result. `read_error_number` is only
/// called for VMfailValid and must return the VM-instruction error field (0x4400).
pub fn check_rflags(
    rflags: u64,
    read_error_number: impl FnOnce() -> u32,
) -> Result<(), VmxInstructionError> {
    if rflags & RFLAGS_CF != 0 {
        Err(VmxInstructionError::FailInvalid)
    } else if rflags & RFLAGS_ZF != 0 {
        Err(VmxInstructionError::FailValid(read_error_number()))
    } else {
        Ok(())
    }
}

/// INVEPT types (SDM Vol. 3, 31.3 "INVEPT").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InveptKind {
    /// Type 1: mappings tagged with one EPTP.
    SingleContext = 1,
    /// Type 2: all EPT-derived mappings.
    AllContext = 2,
}

/// INVVPID types (SDM Vol. 3, 31.3 "INVVPID").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvvpidKind {
    /// Type 0: one linear address for one VPID.
    IndividualAddress = 0,
    /// Type 1: all mappings of one VPID.
    SingleContext = 1,
    /// Type 2: all VPIDs except 0.
    AllContext = 2,
    /// Type 3: one VPID, keeping global translations.
    SingleContextRetainingGlobals = 3,
}

/// Control registers reachable through [`VmxHardware::read_cr`]/[`VmxHardware::write_cr`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ControlRegister {
    /// CR0.
    Cr0,
    /// CR2 (page-fault linear address).
    Cr2,
    /// CR3.
    Cr3,
    /// CR4.
    Cr4,
}

/// The privileged instructions VT-x setup needs. Physical addresses are host-physical.
///
/// VMX instructions report failure through [`VmxInstructionError`], built from the RFLAGS
/// they leave (see [`check_rflags`]). MSR and control-register accesses fault on bad input
/// rather than return an error, so they are infallible here.
pub trait VmxHardware {
    /// VMXON with the 4-KiB aligned VMXON region (revision id already written).
    fn vmxon(&mut self, region_phys: u64) -> Result<(), VmxInstructionError>;
    /// VMXOFF.
    fn vmxoff(&mut self) -> Result<(), VmxInstructionError>;
    /// VMCLEAR: flushes and marks the VMCS clear (not current, not launched).
    fn vmclear(&mut self, vmcs_phys: u64) -> Result<(), VmxInstructionError>;
    /// VMPTRLD: makes the VMCS current.
    fn vmptrld(&mut self, vmcs_phys: u64) -> Result<(), VmxInstructionError>;
    /// VMLAUNCH. Only returns on failure on real hardware; success continues at HOST_RIP
    /// after the next VM exit.
    fn vmlaunch(&mut self) -> Result<(), VmxInstructionError>;
    /// VMRESUME, with the same return convention as [`VmxHardware::vmlaunch`].
    fn vmresume(&mut self) -> Result<(), VmxInstructionError>;
    /// VMREAD of any field; the value is zero-extended to 64 bits.
    fn vmread(&mut self, field: u32) -> Result<u64, VmxInstructionError>;
    /// VMWRITE of any field (upper bits beyond the field width are ignored by the CPU).
    fn vmwrite(&mut self, field: u32, value: u64) -> Result<(), VmxInstructionError>;
    /// INVEPT of the given type; `eptp` is ignored by all-context invalidation.
    fn invept(&mut self, kind: InveptKind, eptp: u64) -> Result<(), VmxInstructionError>;
    /// INVVPID of the given type; `linear_address` is only used by individual-address.
    fn invvpid(
        &mut self,
        kind: InvvpidKind,
        vpid: u16,
        linear_address: u64,
    ) -> Result<(), VmxInstructionError>;
    /// RDMSR.
    fn rdmsr(&mut self, msr: u32) -> u64;
    /// WRMSR.
    fn wrmsr(&mut self, msr: u32, value: u64);
    /// MOV from a control register.
    fn read_cr(&mut self, cr: ControlRegister) -> u64;
    /// MOV to a control register.
    fn write_cr(&mut self, cr: ControlRegister, value: u64);

    /// Enters the guest (VMLAUNCH when `launched` is false, else VMRESUME) with `regs` loaded,
    /// and returns after the next VM exit with `regs` holding the guest's registers. Guest RSP
    /// and RIP live in the VMCS. Errors are VM-entry failures reported by the instruction.
    ///
    /// The default runs the bare instruction and leaves `regs` alone, which suits test doubles;
    /// the real implementation saves and restores registers around the entry.
    fn run_guest(
        &mut self,
        regs: &mut GuestRegisters,
        launched: bool,
    ) -> Result<(), VmxInstructionError> {
        let _ = regs;
        if launched {
            self.vmresume()
        } else {
            self.vmlaunch()
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    #[test]
    fn rflags_clear_is_success() {
        assert_eq!(check_rflags(0x2, || unreachable!()), Ok(()));
    }

    #[test]
    fn carry_flag_is_fail_invalid() {
        let r = check_rflags(0x2 | RFLAGS_CF, || 99);
        assert_eq!(r, Err(VmxInstructionError::FailInvalid));
    }

    #[test]
    fn zero_flag_reads_error_number_and_decodes_it() {
        let r = check_rflags(0x2 | RFLAGS_ZF, || 7);
        let err = r.unwrap_err();
        assert_eq!(err, VmxInstructionError::FailValid(7));
        assert_eq!(
            err.to_string(),
            "VMfailValid error 7: VM entry with invalid control field(s)"
        );
        assert_eq!(
            VmxInstructionError::FailValid(8).description(),
            "VM entry with invalid host-state field(s)"
        );
        assert_eq!(
            VmxInstructionError::FailValid(14).description(),
            "unknown VM-instruction error number"
        );
    }
}
