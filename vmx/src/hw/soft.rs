//! A software VMCS implementing [`VmxHardware`] for host tests: fields per VMCS region in a
//! `BTreeMap`, VMX operation / current-VMCS / launch state, recorded calls and injectable failures.
//!
//! Failure rules follow the SDM's VMfail: with a current VMCS the error number is written to
//! field 0x4400 and ZF is set (VMfailValid); without one CF is set (VMfailInvalid). Instructions
//! executed outside VMX operation (a #UD on hardware) report VMfailInvalid here. Fields never
//! written read as 0; malformed encodings fail with error 12, writes to read-only (exit
//! information) fields with error 13.

use super::{
    check_rflags, ControlRegister, InveptKind, InvvpidKind, VmxHardware, VmxInstructionError,
    RFLAGS_CF, RFLAGS_ZF, VM_INSTRUCTION_ERROR_FIELD,
};
use crate::guest_regs::GuestRegisters;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

/// The VMX instructions whose failure can be injected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HwOp {
    /// VMXON.
    Vmxon,
    /// VMXOFF.
    Vmxoff,
    /// VMCLEAR.
    Vmclear,
    /// VMPTRLD.
    Vmptrld,
    /// VMLAUNCH.
    Vmlaunch,
    /// VMRESUME.
    Vmresume,
    /// VMREAD.
    Vmread,
    /// VMWRITE.
    Vmwrite,
    /// INVEPT.
    Invept,
    /// INVVPID.
    Invvpid,
}

/// One recorded call on the software VMCS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HwCall {
    /// VMXON(region).
    Vmxon(u64),
    /// VMXOFF.
    Vmxoff,
    /// VMCLEAR(vmcs).
    Vmclear(u64),
    /// VMPTRLD(vmcs).
    Vmptrld(u64),
    /// VMLAUNCH.
    Vmlaunch,
    /// VMRESUME.
    Vmresume,
    /// VMREAD(field).
    Vmread(u32),
    /// VMWRITE(field, value).
    Vmwrite(u32, u64),
    /// INVEPT(kind, eptp).
    Invept(InveptKind, u64),
    /// INVVPID(kind, vpid, address).
    Invvpid(InvvpidKind, u16, u64),
    /// RDMSR(msr).
    Rdmsr(u32),
    /// WRMSR(msr, value).
    Wrmsr(u32, u64),
    /// MOV from CR.
    ReadCr(ControlRegister),
    /// MOV to CR.
    WriteCr(ControlRegister, u64),
}

/// A VM exit that [`SoftVmcs::run_guest`] reports after a successful entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimulatedExit {
    /// Written to the exit-reason field (0x4402).
    pub reason: u32,
    /// Written to the exit-qualification field (0x6400).
    pub qualification: u64,
    /// Written to the guest-physical-address field (0x2400).
    pub guest_physical_address: u64,
    /// Written to the VM-exit instruction-length field (0x440C).
    pub instruction_length: u32,
    /// Replaces the guest registers, when given.
    pub registers: Option<GuestRegisters>,
}

#[derive(Clone, Debug, Default)]
struct SoftVmcsRegion {
    fields: BTreeMap<u32, u64>,
    launched: bool,
}

/// Software stand-in for the CPU's VMX instructions (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct SoftVmcs {
    /// MSR values returned by RDMSR and updated by WRMSR (unset MSRs read as 0).
    pub msrs: BTreeMap<u32, u64>,
    /// Control-register values (unset ones read as 0).
    pub crs: BTreeMap<ControlRegister, u64>,
    /// Every call, in order.
    pub calls: Vec<HwCall>,
    regions: BTreeMap<u64, SoftVmcsRegion>,
    current: Option<u64>,
    vmxon_region: Option<u64>,
    injected: Vec<(HwOp, u32)>,
    exits: VecDeque<SimulatedExit>,
}

/// Error number meaning "inject VMfailInvalid" in the injection queue.
const INJECT_INVALID: u32 = 0;

/// True when `field` is a well-formed VMCS component encoding (SDM Vol. 3, 25.11.2).
pub fn is_valid_encoding(field: u32) -> bool {
    let high_access = field & 1 != 0;
    let width = (field >> 13) & 3;
    field >> 15 == 0 && field & (1 << 12) == 0 && (!high_access || width == 1)
}

fn is_read_only(field: u32) -> bool {
    (field >> 10) & 3 == 1
}

impl SoftVmcs {
    /// An empty machine: not in VMX operation, no MSRs set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builder: presets an MSR value.
    pub fn with_msr(mut self, msr: u32, value: u64) -> Self {
        self.msrs.insert(msr, value);
        self
    }

    /// Makes the next `op` fail with VMfailValid(`error_number`) (VMfailInvalid when no VMCS is current).
    pub fn fail_next_valid(&mut self, op: HwOp, error_number: u32) {
        self.injected.push((op, error_number.max(1)));
    }

    /// Makes the next `op` fail with VMfailInvalid.
    pub fn fail_next_invalid(&mut self, op: HwOp) {
        self.injected.push((op, INJECT_INVALID));
    }

    /// Queues the exit the next successful [`VmxHardware::run_guest`] reports.
    pub fn queue_exit(&mut self, exit: SimulatedExit) {
        self.exits.push_back(exit);
    }

    /// The current VMCS region, if any.
    pub fn current_vmcs(&self) -> Option<u64> {
        self.current
    }

    /// True while in VMX operation.
    pub fn in_vmx_operation(&self) -> bool {
        self.vmxon_region.is_some()
    }

    /// Launch state of a VMCS region (false if never used).
    pub fn is_launched(&self, vmcs_phys: u64) -> bool {
        self.regions.get(&vmcs_phys).is_some_and(|r| r.launched)
    }

    /// A field of the current VMCS, without recording a call (None if unset or no current VMCS).
    pub fn field(&self, field: u32) -> Option<u64> {
        let region = self.regions.get(&self.current?)?;
        region.fields.get(&field).copied()
    }

    /// Sets a field of the current VMCS directly, read-only ones included (to simulate a VM exit).
    /// Returns false when no VMCS is current.
    pub fn set_field(&mut self, field: u32, value: u64) -> bool {
        match self.current {
            Some(phys) => {
                self.regions
                    .entry(phys)
                    .or_default()
                    .fields
                    .insert(field, value);
                true
            }
            None => false,
        }
    }

    fn take_injected(&mut self, op: HwOp) -> Option<u32> {
        let index = self.injected.iter().position(|(o, _)| *o == op)?;
        Some(self.injected.remove(index).1)
    }

    /// VMfail(n): VMfailValid with the number stored when a VMCS is current, else VMfailInvalid.
    fn vmfail(&mut self, error_number: u32) -> u64 {
        if error_number != INJECT_INVALID
            && self.set_field(VM_INSTRUCTION_ERROR_FIELD, u64::from(error_number))
        {
            RFLAGS_ZF
        } else {
            RFLAGS_CF
        }
    }

    /// Runs an instruction: injected failure first, then the VMX-operation check, then `body`,
    /// which returns RFLAGS. The result is decoded the same way as on hardware.
    fn execute(
        &mut self,
        op: HwOp,
        body: impl FnOnce(&mut Self) -> u64,
    ) -> Result<(), VmxInstructionError> {
        let rflags = if let Some(n) = self.take_injected(op) {
            self.vmfail(n)
        } else if op != HwOp::Vmxon && self.vmxon_region.is_none() {
            RFLAGS_CF
        } else {
            body(self)
        };
        check_rflags(rflags, || {
            self.field(VM_INSTRUCTION_ERROR_FIELD).unwrap_or(0) as u32
        })
    }

    fn vmcs_pointer_error(&self, phys: u64, invalid: u32, vmxon_pointer: u32) -> Option<u32> {
        if phys & 0xFFF != 0 || phys >> 52 != 0 {
            Some(invalid)
        } else if Some(phys) == self.vmxon_region {
            Some(vmxon_pointer)
        } else {
            None
        }
    }
}

impl VmxHardware for SoftVmcs {
    fn vmxon(&mut self, region_phys: u64) -> Result<(), VmxInstructionError> {
        self.calls.push(HwCall::Vmxon(region_phys));
        self.execute(HwOp::Vmxon, |s| {
            if s.vmxon_region.is_some() {
                s.vmfail(15)
            } else if region_phys & 0xFFF != 0 {
                RFLAGS_CF
            } else {
                s.vmxon_region = Some(region_phys);
                0
            }
        })
    }

    fn vmxoff(&mut self) -> Result<(), VmxInstructionError> {
        self.calls.push(HwCall::Vmxoff);
        self.execute(HwOp::Vmxoff, |s| {
            s.vmxon_region = None;
            s.current = None;
            0
        })
    }

    fn vmclear(&mut self, vmcs_phys: u64) -> Result<(), VmxInstructionError> {
        self.calls.push(HwCall::Vmclear(vmcs_phys));
        self.execute(HwOp::Vmclear, |s| {
            if let Some(n) = s.vmcs_pointer_error(vmcs_phys, 2, 3) {
                return s.vmfail(n);
            }
            s.regions.entry(vmcs_phys).or_default().launched = false;
            if s.current == Some(vmcs_phys) {
                s.current = None;
            }
            0
        })
    }

    fn vmptrld(&mut self, vmcs_phys: u64) -> Result<(), VmxInstructionError> {
        self.calls.push(HwCall::Vmptrld(vmcs_phys));
        self.execute(HwOp::Vmptrld, |s| {
            if let Some(n) = s.vmcs_pointer_error(vmcs_phys, 9, 10) {
                return s.vmfail(n);
            }
            s.regions.entry(vmcs_phys).or_default();
            s.current = Some(vmcs_phys);
            0
        })
    }

    fn vmlaunch(&mut self) -> Result<(), VmxInstructionError> {
        self.calls.push(HwCall::Vmlaunch);
        self.execute(HwOp::Vmlaunch, |s| match s.current {
            None => RFLAGS_CF,
            Some(phys) if s.is_launched(phys) => s.vmfail(4),
            Some(phys) => {
                s.regions.entry(phys).or_default().launched = true;
                0
            }
        })
    }

    fn vmresume(&mut self) -> Result<(), VmxInstructionError> {
        self.calls.push(HwCall::Vmresume);
        self.execute(HwOp::Vmresume, |s| match s.current {
            None => RFLAGS_CF,
            Some(phys) if !s.is_launched(phys) => s.vmfail(5),
            Some(_) => 0,
        })
    }

    fn vmread(&mut self, field: u32) -> Result<u64, VmxInstructionError> {
        self.calls.push(HwCall::Vmread(field));
        self.execute(HwOp::Vmread, |s| {
            if s.current.is_none() {
                RFLAGS_CF
            } else if !is_valid_encoding(field) {
                s.vmfail(12)
            } else {
                0
            }
        })?;
        Ok(self.field(field).unwrap_or(0))
    }

    fn vmwrite(&mut self, field: u32, value: u64) -> Result<(), VmxInstructionError> {
        self.calls.push(HwCall::Vmwrite(field, value));
        self.execute(HwOp::Vmwrite, |s| {
            if s.current.is_none() {
                RFLAGS_CF
            } else if !is_valid_encoding(field) {
                s.vmfail(12)
            } else if is_read_only(field) {
                s.vmfail(13)
            } else {
                s.set_field(field, value);
                0
            }
        })
    }

    fn invept(&mut self, kind: InveptKind, eptp: u64) -> Result<(), VmxInstructionError> {
        self.calls.push(HwCall::Invept(kind, eptp));
        self.execute(HwOp::Invept, |s| {
            if kind == InveptKind::SingleContext && eptp & 0x7 != 6 {
                s.vmfail(28)
            } else {
                0
            }
        })
    }

    fn invvpid(
        &mut self,
        kind: InvvpidKind,
        vpid: u16,
        linear_address: u64,
    ) -> Result<(), VmxInstructionError> {
        self.calls.push(HwCall::Invvpid(kind, vpid, linear_address));
        self.execute(HwOp::Invvpid, |s| {
            if vpid == 0 && kind != InvvpidKind::AllContext {
                s.vmfail(28)
            } else {
                0
            }
        })
    }

    /// VMLAUNCH/VMRESUME, then the next queued [`SimulatedExit`] (if any) is written to the
    /// exit-information fields and `regs`.
    fn run_guest(
        &mut self,
        regs: &mut GuestRegisters,
        launched: bool,
    ) -> Result<(), VmxInstructionError> {
        if launched {
            self.vmresume()?;
        } else {
            self.vmlaunch()?;
        }
        if let Some(exit) = self.exits.pop_front() {
            self.set_field(0x4402, u64::from(exit.reason));
            self.set_field(0x6400, exit.qualification);
            self.set_field(0x2400, exit.guest_physical_address);
            self.set_field(0x440C, u64::from(exit.instruction_length));
            if let Some(r) = exit.registers {
                *regs = r;
            }
        }
        Ok(())
    }

    fn rdmsr(&mut self, msr: u32) -> u64 {
        self.calls.push(HwCall::Rdmsr(msr));
        self.msrs.get(&msr).copied().unwrap_or(0)
    }

    fn wrmsr(&mut self, msr: u32, value: u64) {
        self.calls.push(HwCall::Wrmsr(msr, value));
        self.msrs.insert(msr, value);
    }

    fn read_cr(&mut self, cr: ControlRegister) -> u64 {
        self.calls.push(HwCall::ReadCr(cr));
        self.crs.get(&cr).copied().unwrap_or(0)
    }

    fn write_cr(&mut self, cr: ControlRegister, value: u64) {
        self.calls.push(HwCall::WriteCr(cr, value));
        self.crs.insert(cr, value);
    }
}

#[cfg(test)]
#[path = "soft_tests.rs"]
mod tests;
