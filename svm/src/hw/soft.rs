//! A software stand-in for the SVM instructions, for host tests: MSRs in a map, VMCBs attached
//! by physical address, recorded calls, GIF, and queued simulated #VMEXITs.
//!
//! VMRUN follows the hardware's order: #UD without EFER.SVME, #GP on a misaligned VMCB, then
//! the consistency checks of [`crate::consistency`] (a failure writes EXITCODE = -1, like
//! VMEXIT_INVALID), then the next queued exit is written into the VMCB.

use super::{check_page_aligned, SvmError, SvmHardware};
use crate::consistency::{check_vmrun_consistency, CpuLimits};
use crate::exit::ExitCode;
use crate::guest_regs::GuestRegisters;
use crate::msr::{EFER, EFER_SVME};
use crate::vmcb::{control, save, Vmcb};
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

/// One recorded call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SvmCall {
    /// RDMSR(msr).
    Rdmsr(u32),
    /// WRMSR(msr, value).
    Wrmsr(u32, u64),
    /// VMRUN(vmcb).
    Vmrun(u64),
    /// VMLOAD(vmcb).
    Vmload(u64),
    /// VMSAVE(vmcb).
    Vmsave(u64),
    /// STGI.
    Stgi,
    /// CLGI.
    Clgi,
    /// INVLPGA(address, asid).
    Invlpga(u64, u32),
}

/// A #VMEXIT that [`SoftSvm::vmrun`] reports after a successful VMRUN.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimulatedExit {
    /// EXITCODE.
    pub code: u64,
    /// EXITINFO1.
    pub info1: u64,
    /// EXITINFO2.
    pub info2: u64,
    /// NRIP (0: not saved).
    pub nrip: u64,
    /// Guest instruction bytes (decode assists).
    pub instruction_bytes: Vec<u8>,
    /// Replaces the guest GPRs, when given.
    pub registers: Option<GuestRegisters>,
    /// Replaces the guest RAX in the VMCB, when given.
    pub rax: Option<u64>,
}

impl SimulatedExit {
    /// An exit with just a code.
    pub fn code(code: ExitCode) -> Self {
        Self {
            code: code.raw(),
            ..Self::default()
        }
    }
}

/// Software stand-in for the SVM instructions (see the module docs).
#[derive(Debug, Default)]
pub struct SoftSvm {
    /// MSR values (unset ones read as 0).
    pub msrs: BTreeMap<u32, u64>,
    /// Every call, in order.
    pub calls: Vec<SvmCall>,
    /// The global interrupt flag (true at reset).
    pub gif: bool,
    /// CPU limits the consistency checks use.
    pub cpu: CpuLimits,
    vmcbs: BTreeMap<u64, Box<Vmcb>>,
    exits: VecDeque<SimulatedExit>,
}

impl SoftSvm {
    /// A CPU with SVM not yet enabled and GIF set.
    pub fn new() -> Self {
        Self {
            gif: true,
            ..Self::default()
        }
    }

    /// Builder: presets an MSR value.
    pub fn with_msr(mut self, msr: u32, value: u64) -> Self {
        self.msrs.insert(msr, value);
        self
    }

    /// Places `vmcb` at physical address `pa` (replacing what was there).
    pub fn attach_vmcb(&mut self, pa: u64, vmcb: Vmcb) {
        self.vmcbs.insert(pa, Box::new(vmcb));
    }

    /// The VMCB at `pa`.
    pub fn vmcb(&self, pa: u64) -> Option<&Vmcb> {
        self.vmcbs.get(&pa).map(|b| &**b)
    }

    /// The VMCB at `pa`, mutable.
    pub fn vmcb_mut(&mut self, pa: u64) -> Option<&mut Vmcb> {
        self.vmcbs.get_mut(&pa).map(|b| &mut **b)
    }

    /// Queues the exit the next successful VMRUN reports.
    pub fn queue_exit(&mut self, exit: SimulatedExit) {
        self.exits.push_back(exit);
    }

    fn svm_enabled(&self) -> bool {
        self.msrs.get(&EFER).is_some_and(|e| e & EFER_SVME != 0)
    }

    fn check_instruction(&self, pa: u64) -> Result<(), SvmError> {
        if !self.svm_enabled() {
            return Err(SvmError::SvmNotEnabled);
        }
        check_page_aligned(pa)?;
        if !self.vmcbs.contains_key(&pa) {
            return Err(SvmError::UnknownVmcb(pa));
        }
        Ok(())
    }
}

impl SvmHardware for SoftSvm {
    fn rdmsr(&mut self, msr: u32) -> u64 {
        self.calls.push(SvmCall::Rdmsr(msr));
        self.msrs.get(&msr).copied().unwrap_or(0)
    }

    fn wrmsr(&mut self, msr: u32, value: u64) {
        self.calls.push(SvmCall::Wrmsr(msr, value));
        self.msrs.insert(msr, value);
    }

    fn vmrun(&mut self, vmcb_pa: u64, regs: &mut GuestRegisters) -> Result<(), SvmError> {
        self.calls.push(SvmCall::Clgi);
        self.calls.push(SvmCall::Vmrun(vmcb_pa));
        self.check_instruction(vmcb_pa)?;
        let cpu = self.cpu;
        let next = self.exits.pop_front();
        let vmcb = self
            .vmcbs
            .get_mut(&vmcb_pa)
            .ok_or(SvmError::UnknownVmcb(vmcb_pa))?;
        let violations = check_vmrun_consistency(vmcb, cpu);
        if let Some(first) = violations.first() {
            log::debug!("soft VMRUN: VMEXIT_INVALID: {first}");
            vmcb.set64(control::EXITCODE, ExitCode::Invalid.raw());
            vmcb.set64(control::EXITINFO1, 0);
            vmcb.set64(control::EXITINFO2, 0);
            if let Some(exit) = next {
                self.exits.push_front(exit);
            }
        } else {
            let exit = next.ok_or(SvmError::NoSimulatedExit)?;
            vmcb.set64(control::EXITCODE, exit.code);
            vmcb.set64(control::EXITINFO1, exit.info1);
            vmcb.set64(control::EXITINFO2, exit.info2);
            vmcb.set64(control::NRIP, exit.nrip);
            vmcb.set_guest_instruction_bytes(&exit.instruction_bytes);
            if let Some(rax) = exit.rax {
                vmcb.set64(save::RAX, rax);
            }
            if let Some(r) = exit.registers {
                *regs = r;
            }
        }
        self.calls.push(SvmCall::Stgi);
        self.gif = true;
        Ok(())
    }

    fn vmload(&mut self, vmcb_pa: u64) -> Result<(), SvmError> {
        self.calls.push(SvmCall::Vmload(vmcb_pa));
        self.check_instruction(vmcb_pa)
    }

    fn vmsave(&mut self, vmcb_pa: u64) -> Result<(), SvmError> {
        self.calls.push(SvmCall::Vmsave(vmcb_pa));
        self.check_instruction(vmcb_pa)
    }

    fn stgi(&mut self) {
        self.calls.push(SvmCall::Stgi);
        self.gif = true;
    }

    fn clgi(&mut self) {
        self.calls.push(SvmCall::Clgi);
        self.gif = false;
    }

    fn invlpga(&mut self, guest_va: u64, asid: u32) {
        self.calls.push(SvmCall::Invlpga(guest_va, asid));
    }
}

#[cfg(test)]
#[path = "soft_tests.rs"]
mod tests;
