//! The real SVM instructions (inline asm), compiled only for the bare-metal target.

use super::{check_page_aligned, SvmError, SvmHardware};
use crate::guest_regs::GuestRegisters;
use core::arch::{asm, naked_asm};

/// The CPU's own SVM instructions.
///
/// Only one value should exist per logical processor. Every physical address passed through it
/// (VMCBs, host-save area, nested page tables and permission maps inside the VMCB) must name
/// memory owned by the hypervisor.
#[derive(Debug)]
pub struct RealSvm {
    host_vmcb_pa: u64,
}

impl RealSvm {
    /// Creates the handle. `host_vmcb_pa` is a 4-KiB page (not the VM_HSAVE_PA area) where
    /// [`SvmHardware::vmrun`] keeps the host's VMSAVE state (FS/GS/TR/LDTR hidden state,
    /// KernelGsBase, STAR family, SYSENTER MSRs) while the guest's is loaded.
    ///
    /// # Safety
    /// The caller runs at CPL 0 on a CPU with SVM enabled (EFER.SVME, VM_HSAVE_PA set, see
    /// [`super::enable_svm`]) and guarantees that every address and MSR value it passes
    /// through this handle keeps the hypervisor's own memory valid.
    pub unsafe fn new(host_vmcb_pa: u64) -> Result<Self, SvmError> {
        check_page_aligned(host_vmcb_pa)?;
        Ok(Self { host_vmcb_pa })
    }
}

/// CLGI; VMSAVE the host's extra state to `host_vmcb_pa`; VMLOAD the guest's from
/// `guest_vmcb_pa`; load the guest GPRs from `regs` (slot `n` at offset `8 * n`; slots 0 (RAX)
/// and 4 (RSP) come from the VMCB); VMRUN. After #VMEXIT (host RSP and RAX = `guest_vmcb_pa`
/// restored by the CPU, GIF = 0): store the guest GPRs, VMSAVE the guest's extra state,
/// VMLOAD the host's, STGI, and return. Callee-saved registers are preserved.
#[unsafe(naked)]
unsafe extern "sysv64" fn enter_guest(
    regs: *mut GuestRegisters,
    guest_vmcb_pa: u64,
    host_vmcb_pa: u64,
) {
    naked_asm!(
        "push rbx",
        "push rbp",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "push rdi",
        "push rsi",
        "push rdx",
        "clgi",
        "mov rax, rdx",
        "vmsave rax",
        "mov rax, rsi",
        "vmload rax",
        "mov rcx, [rdi + 8]",
        "mov rdx, [rdi + 16]",
        "mov rbx, [rdi + 24]",
        "mov rbp, [rdi + 40]",
        "mov rsi, [rdi + 48]",
        "mov r8, [rdi + 64]",
        "mov r9, [rdi + 72]",
        "mov r10, [rdi + 80]",
        "mov r11, [rdi + 88]",
        "mov r12, [rdi + 96]",
        "mov r13, [rdi + 104]",
        "mov r14, [rdi + 112]",
        "mov r15, [rdi + 120]",
        "mov rdi, [rdi + 56]",
        "vmrun rax",
        // #VMEXIT: stack is [host vmcb, guest vmcb, regs, ...]; RAX holds the guest VMCB.
        "vmsave rax",
        "push rdi",
        "mov rdi, [rsp + 24]",
        "mov [rdi + 8], rcx",
        "mov [rdi + 16], rdx",
        "mov [rdi + 24], rbx",
        "mov [rdi + 40], rbp",
        "mov [rdi + 48], rsi",
        "mov [rdi + 64], r8",
        "mov [rdi + 72], r9",
        "mov [rdi + 80], r10",
        "mov [rdi + 88], r11",
        "mov [rdi + 96], r12",
        "mov [rdi + 104], r13",
        "mov [rdi + 112], r14",
        "mov [rdi + 120], r15",
        "pop rax",
        "mov [rdi + 56], rax",
        "mov rax, [rsp]",
        "vmload rax",
        "stgi",
        "add rsp, 24",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbp",
        "pop rbx",
        "ret",
    )
}

impl SvmHardware for RealSvm {
    fn rdmsr(&mut self, msr: u32) -> u64 {
        let (low, high): (u32, u32);
        // SAFETY: RDMSR reads a register into EDX:EAX; CPL 0 and a valid MSR number are the
        // caller's contract (`RealSvm::new`).
        unsafe {
            asm!("rdmsr", in("ecx") msr, out("eax") low, out("edx") high, options(nomem, nostack, preserves_flags));
        }
        u64::from(high) << 32 | u64::from(low)
    }

    fn wrmsr(&mut self, msr: u32, value: u64) {
        // SAFETY: WRMSR writes a model-specific register; that the value keeps the hypervisor's
        // memory valid is the caller's contract (`RealSvm::new`).
        unsafe {
            asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack, preserves_flags));
        }
    }

    fn vmrun(&mut self, vmcb_pa: u64, regs: &mut GuestRegisters) -> Result<(), SvmError> {
        check_page_aligned(vmcb_pa)?;
        // SAFETY: `regs` is a valid, exclusive GuestRegisters for the whole call; both VMCB
        // addresses are page aligned and owned by the caller (contract of `RealSvm::new`);
        // `enter_guest` preserves the callee-saved registers, and the CPU restores the host RSP,
        // RIP and RAX at #VMEXIT, so it returns normally on this stack. GIF is set again before
        // it returns. XMM/x87 state is not switched: the caller saves it when host code uses SIMD.
        unsafe { enter_guest(regs, vmcb_pa, self.host_vmcb_pa) };
        Ok(())
    }

    fn vmload(&mut self, vmcb_pa: u64) -> Result<(), SvmError> {
        check_page_aligned(vmcb_pa)?;
        // SAFETY: VMLOAD reads the caller-owned VMCB and loads segment/MSR state the caller
        // chose (contract of `RealSvm::new`).
        unsafe {
            asm!("vmload rax", in("rax") vmcb_pa, options(nostack, preserves_flags));
        }
        Ok(())
    }

    fn vmsave(&mut self, vmcb_pa: u64) -> Result<(), SvmError> {
        check_page_aligned(vmcb_pa)?;
        // SAFETY: VMSAVE writes into the caller-owned VMCB page only.
        unsafe {
            asm!("vmsave rax", in("rax") vmcb_pa, options(nostack, preserves_flags));
        }
        Ok(())
    }

    fn stgi(&mut self) {
        // SAFETY: STGI only sets the global interrupt flag.
        unsafe {
            asm!("stgi", options(nomem, nostack, preserves_flags));
        }
    }

    fn clgi(&mut self) {
        // SAFETY: CLGI only clears the global interrupt flag.
        unsafe {
            asm!("clgi", options(nomem, nostack, preserves_flags));
        }
    }

    fn invlpga(&mut self, guest_va: u64, asid: u32) {
        // SAFETY: INVLPGA only drops a TLB entry of the given guest ASID.
        unsafe {
            asm!("invlpga rax, ecx", in("rax") guest_va, in("ecx") asid, options(nomem, nostack, preserves_flags));
        }
    }
}
