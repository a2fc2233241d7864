//! The real VMX instructions (inline asm), compiled only for the bare-metal target.

use super::{
    check_rflags, ControlRegister, InveptKind, InvvpidKind, VmxHardware, VmxInstructionError,
    VM_INSTRUCTION_ERROR_FIELD,
};
use crate::guest_regs::GuestRegisters;
use core::arch::{asm, naked_asm};

/// The CPU's own VMX instructions.
///
/// Only one value should exist per logical processor; the addresses passed to it must be
/// host-physical addresses of memory owned by the hypervisor.
#[derive(Debug)]
pub struct RealVmx {
    _private: (),
}

impl RealVmx {
    /// Creates the handle.
    ///
    /// # Safety
    /// The caller runs at CPL 0 on a CPU with VMX, and guarantees that every region address,
    /// VMCS field value (host state, EPT pointer, bitmaps) and control-register / MSR value it
    /// passes through this handle keeps the hypervisor's own memory valid.
    pub unsafe fn new() -> Self {
        Self { _private: () }
    }

    /// VMREAD of the VM-instruction error field, without checking flags (used after VMfailValid).
    fn read_error_number(&self) -> u32 {
        let value: u64;
        // SAFETY: VMREAD only reads the current VMCS; we are in VMX root operation at CPL 0
        // (guaranteed by `RealVmx::new`), and this is only called after VMfailValid, which
        // implies a current VMCS exists.
        unsafe {
            asm!("vmread {v}, {f}", v = out(reg) value, f = in(reg) u64::from(VM_INSTRUCTION_ERROR_FIELD), options(nostack));
        }
        value as u32
    }

    fn check(&self, rflags: u64) -> Result<(), VmxInstructionError> {
        check_rflags(rflags, || self.read_error_number())
    }
}

/// Loads the guest GPRs from `regs`, sets HOST_RSP/HOST_RIP to this frame, and executes
/// VMLAUNCH (`launched == 0`) or VMRESUME. Returns 0 after a VM exit, with the guest GPRs saved
/// back into `regs`, or the RFLAGS left by a failed entry (never 0: bit 1 is always set).
/// Slot `n` of `regs` is at offset `8 * n`; slot 4 (RSP) is neither loaded nor stored.
#[unsafe(naked)]
unsafe extern "sysv64" fn enter_guest(regs: *mut GuestRegisters, launched: u64) -> u64 {
    naked_asm!(
        "push rbx",
        "push rbp",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "push rdi",
        "mov rax, {host_rsp}",
        "vmwrite rax, rsp",
        "mov rax, {host_rip}",
        "lea rdx, [rip + 2f]",
        "vmwrite rax, rdx",
        "mov rax, [rdi]",
        "mov rcx, [rdi + 8]",
        "mov rdx, [rdi + 16]",
        "mov rbx, [rdi + 24]",
        "mov rbp, [rdi + 40]",
        "mov r8, [rdi + 64]",
        "mov r9, [rdi + 72]",
        "mov r10, [rdi + 80]",
        "mov r11, [rdi + 88]",
        "mov r12, [rdi + 96]",
        "mov r13, [rdi + 104]",
        "mov r14, [rdi + 112]",
        "mov r15, [rdi + 120]",
        "test rsi, rsi",
        "mov rsi, [rdi + 48]",
        "mov rdi, [rdi + 56]",
        "jnz 3f",
        "vmlaunch",
        "jmp 4f",
        "3:",
        "vmresume",
        // Only reached when the entry failed: return its RFLAGS.
        "4:",
        "pushfq",
        "pop rax",
        "pop rdi",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbp",
        "pop rbx",
        "ret",
        // VM exit: RSP is HOST_RSP, so [rsp] is the saved `regs` pointer.
        "2:",
        "push rax",
        "mov rax, [rsp + 8]",
        "mov [rax + 8], rcx",
        "mov [rax + 16], rdx",
        "mov [rax + 24], rbx",
        "mov [rax + 40], rbp",
        "mov [rax + 48], rsi",
        "mov [rax + 56], rdi",
        "mov [rax + 64], r8",
        "mov [rax + 72], r9",
        "mov [rax + 80], r10",
        "mov [rax + 88], r11",
        "mov [rax + 96], r12",
        "mov [rax + 104], r13",
        "mov [rax + 112], r14",
        "mov [rax + 120], r15",
        "pop rcx",
        "mov [rax], rcx",
        "pop rdi",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbp",
        "pop rbx",
        "xor eax, eax",
        "ret",
        host_rsp = const 0x6C14,
        host_rip = const 0x6C16,
    )
}

impl VmxHardware for RealVmx {
    fn run_guest(
        &mut self,
        regs: &mut GuestRegisters,
        launched: bool,
    ) -> Result<(), VmxInstructionError> {
        // SAFETY: `regs` is a valid, exclusive GuestRegisters for the whole call; `enter_guest`
        // preserves the callee-saved registers and returns on this stack both after a VM exit
        // (HOST_RSP/HOST_RIP point into its own frame) and after a failed entry. XMM registers
        // are caller-saved in the SysV ABI; the guest's x87/SSE/AVX state (MXCSR and the x87
        // control word included) is not switched here, so the caller saves/restores it with
        // XSAVE/XRSTOR when host code uses SIMD.
        let rflags = unsafe { enter_guest(regs, u64::from(launched)) };
        if rflags == 0 {
            Ok(())
        } else {
            self.check(rflags)
                .and(Err(VmxInstructionError::FailInvalid))
        }
    }

    fn vmxon(&mut self, region_phys: u64) -> Result<(), VmxInstructionError> {
        let rflags: u64;
        // SAFETY: the operand is a pointer to a u64 on our stack holding the region address; the
        // region's ownership and CPL 0 are guaranteed by the contract of `RealVmx::new`.
        unsafe {
            asm!("vmxon [{a}]", "pushfq", "pop {r}", a = in(reg) &region_phys, r = lateout(reg) rflags);
        }
        self.check(rflags)
    }

    fn vmxoff(&mut self) -> Result<(), VmxInstructionError> {
        let rflags: u64;
        // SAFETY: VMXOFF leaves VMX operation and touches no memory of ours.
        unsafe {
            asm!("vmxoff", "pushfq", "pop {r}", r = lateout(reg) rflags);
        }
        self.check(rflags)
    }

    fn vmclear(&mut self, vmcs_phys: u64) -> Result<(), VmxInstructionError> {
        let rflags: u64;
        // SAFETY: the operand points to a u64 on our stack; the CPU writes the VMCS region,
        // which the caller owns (contract of `RealVmx::new`).
        unsafe {
            asm!("vmclear [{a}]", "pushfq", "pop {r}", a = in(reg) &vmcs_phys, r = lateout(reg) rflags);
        }
        self.check(rflags)
    }

    fn vmptrld(&mut self, vmcs_phys: u64) -> Result<(), VmxInstructionError> {
        let rflags: u64;
        // SAFETY: the operand points to a u64 on our stack; the VMCS region is owned by the caller.
        unsafe {
            asm!("vmptrld [{a}]", "pushfq", "pop {r}", a = in(reg) &vmcs_phys, r = lateout(reg) rflags);
        }
        self.check(rflags)
    }

    fn vmlaunch(&mut self) -> Result<(), VmxInstructionError> {
        let rflags: u64;
        // SAFETY: on success control goes to the guest and comes back at HOST_RIP with HOST_RSP,
        // which the caller set up; execution only continues here when the entry failed.
        unsafe {
            asm!("vmlaunch", "pushfq", "pop {r}", r = lateout(reg) rflags);
        }
        self.check(rflags)
    }

    fn vmresume(&mut self) -> Result<(), VmxInstructionError> {
        let rflags: u64;
        // SAFETY: as for VMLAUNCH.
        unsafe {
            asm!("vmresume", "pushfq", "pop {r}", r = lateout(reg) rflags);
        }
        self.check(rflags)
    }

    fn vmread(&mut self, field: u32) -> Result<u64, VmxInstructionError> {
        let value: u64;
        let rflags: u64;
        // SAFETY: VMREAD reads the current VMCS into a register; no memory of ours is written.
        unsafe {
            asm!("vmread {v}, {f}", "pushfq", "pop {r}", v = out(reg) value, f = in(reg) u64::from(field), r = lateout(reg) rflags);
        }
        self.check(rflags).map(|()| value)
    }

    fn vmwrite(&mut self, field: u32, value: u64) -> Result<(), VmxInstructionError> {
        let rflags: u64;
        // SAFETY: VMWRITE writes the current VMCS only; field values that point at memory are
        // the caller's responsibility (contract of `RealVmx::new`).
        unsafe {
            asm!("vmwrite {f}, {v}", "pushfq", "pop {r}", f = in(reg) u64::from(field), v = in(reg) value, r = lateout(reg) rflags);
        }
        self.check(rflags)
    }

    fn invept(&mut self, kind: InveptKind, eptp: u64) -> Result<(), VmxInstructionError> {
        let descriptor: [u64; 2] = [eptp, 0];
        let rflags: u64;
        // SAFETY: the descriptor is a 16-byte array on our stack that INVEPT only reads.
        unsafe {
            asm!("invept {k}, [{d}]", "pushfq", "pop {r}", k = in(reg) kind as u64, d = in(reg) &descriptor, r = lateout(reg) rflags);
        }
        self.check(rflags)
    }

    fn invvpid(
        &mut self,
        kind: InvvpidKind,
        vpid: u16,
        linear_address: u64,
    ) -> Result<(), VmxInstructionError> {
        let descriptor: [u64; 2] = [u64::from(vpid), linear_address];
        let rflags: u64;
        // SAFETY: the descriptor is a 16-byte array on our stack that INVVPID only reads.
        unsafe {
            asm!("invvpid {k}, [{d}]", "pushfq", "pop {r}", k = in(reg) kind as u64, d = in(reg) &descriptor, r = lateout(reg) rflags);
        }
        self.check(rflags)
    }

    fn rdmsr(&mut self, msr: u32) -> u64 {
        let (low, high): (u32, u32);
        // SAFETY: RDMSR reads a register; the caller passes an MSR that exists (contract of `new`).
        unsafe {
            asm!("rdmsr", in("ecx") msr, out("eax") low, out("edx") high, options(nomem, nostack, preserves_flags));
        }
        (u64::from(high) << 32) | u64::from(low)
    }

    fn wrmsr(&mut self, msr: u32, value: u64) {
        // SAFETY: WRMSR changes processor state; the caller guarantees the value keeps the
        // hypervisor valid (contract of `new`).
        unsafe {
            asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack, preserves_flags));
        }
    }

    fn read_cr(&mut self, cr: ControlRegister) -> u64 {
        let value: u64;
        // SAFETY: reading a control register has no side effects at CPL 0.
        unsafe {
            match cr {
                ControlRegister::Cr0 => {
                    asm!("mov {}, cr0", out(reg) value, options(nomem, nostack, preserves_flags))
                }
                ControlRegister::Cr2 => {
                    asm!("mov {}, cr2", out(reg) value, options(nomem, nostack, preserves_flags))
                }
                ControlRegister::Cr3 => {
                    asm!("mov {}, cr3", out(reg) value, options(nomem, nostack, preserves_flags))
                }
                ControlRegister::Cr4 => {
                    asm!("mov {}, cr4", out(reg) value, options(nomem, nostack, preserves_flags))
                }
            }
        }
        value
    }

    fn write_cr(&mut self, cr: ControlRegister, value: u64) {
        // SAFETY: the caller guarantees the new value keeps paging and the hypervisor valid
        // (contract of `new`).
        unsafe {
            match cr {
                ControlRegister::Cr0 => {
                    asm!("mov cr0, {}", in(reg) value, options(nostack, preserves_flags))
                }
                ControlRegister::Cr2 => {
                    asm!("mov cr2, {}", in(reg) value, options(nostack, preserves_flags))
                }
                ControlRegister::Cr3 => {
                    asm!("mov cr3, {}", in(reg) value, options(nostack, preserves_flags))
                }
                ControlRegister::Cr4 => {
                    asm!("mov cr4, {}", in(reg) value, options(nostack, preserves_flags))
                }
            }
        }
    }
}
