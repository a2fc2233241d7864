//! The backend-neutral virtual CPU: what an exit handler sees of a guest, whatever the hardware.
//!
//! The VT-x backend (`hw::vmx_vcpu`) implements [`Vcpu`]; an AMD SVM backend implements the same trait and
//! reuses `exits` and `scheduler` unchanged. Host tests drive the handlers with a scripted fake.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Register numbers of [`Registers::gpr`] (the x86 encoding order).
pub const RAX: usize = 0;
pub const RCX: usize = 1;
pub const RDX: usize = 2;
pub const RBX: usize = 3;
pub const RSP: usize = 4;

/// Guest register state the handlers may read and change. The backend loads it before each entry and
/// stores it after each exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Registers {
    /// RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8..R15 by register number.
    pub gpr: [u64; 16],
    pub rip: u64,
    pub rflags: u64,
    /// Guest CR3 (read-only for handlers: the backend does not write it back).
    pub cr3: u64,
    /// The guest ran at CPL > 0 (user code) when it exited (read-only for handlers).
    pub user_mode: bool,
    /// The guest ran code that is not 64-bit (CS.L clear: compatibility mode) when it exited: its
    /// instructions would be decoded wrongly as 64-bit (read-only for handlers).
    pub legacy_code: bool,
}

/// Why the guest left (decoded by the backend; the exit handlers decide what to do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmExit {
    /// VMCALL / VMMCALL: call number in RAX, request guest-physical address in RBX.
    Hypercall,
    /// CPUID of `leaf` (EAX) and `subleaf` (ECX). `osxsave`: the guest's CR4.OSXSAVE as it reads
    /// it (CPUID.1:ECX.OSXSAVE is a copy of that bit).
    Cpuid {
        leaf: u32,
        subleaf: u32,
        osxsave: bool,
    },
    /// RDMSR (`write` false) or WRMSR with EDX:EAX in `value`.
    Msr {
        msr: u32,
        write: bool,
        value: u64,
    },
    /// IN/OUT; `value` is the low `size` bytes of RAX for an OUT. `string`: INS/OUTS (not emulated).
    PortIo {
        port: u16,
        size: u8,
        write: bool,
        value: u32,
        string: bool,
    },
    /// An access to guest-physical memory that is not mapped for that kind of access (EPT violation,
    /// nested page fault).
    MmioAccess {
        gpa: u64,
        write: bool,
        fetch: bool,
        /// The access was the processor walking the guest's own page tables (they lie at `gpa`),
        /// not the instruction's data access: never a device access.
        page_walk: bool,
        /// The access was the processor delivering an event (pushing its frame on a stack placed
        /// at `gpa`, reading the IDT): the instruction at RIP did not make it, never a device access.
        event_delivery: bool,
    },
    /// XSETBV of `value` into XCR `xcr`.
    Xsetbv {
        xcr: u32,
        value: u64,
    },
    Hlt,
    /// A guest exception that the backend intercepted.
    Fault {
        vector: u8,
        error_code: Option<u32>,
    },
    TripleFault,
    /// The time slice ended (VMX preemption timer).
    PreemptionTimer,
    /// A host interrupt arrived while the guest ran; nothing for the guest to see.
    HostInterrupt,
    /// Guest state the hypervisor does not allow, found set at an exit of any kind (the backend
    /// cannot intercept the write that set it): `what` names it.
    ForbiddenState {
        what: &'static str,
    },
    /// Anything else, with the backend's reason number and name.
    Other {
        reason: u32,
        name: &'static str,
    },
}

/// Why the backend could not run the guest at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VcpuError {
    /// The entry instruction failed (VMLAUNCH/VMRESUME, VMRUN), with the backend's explanation.
    EntryFailed(String),
    /// Reading or writing the backend's control structure failed.
    Control(String),
}

impl fmt::Display for VcpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EntryFailed(why) => write!(f, "guest entry failed: {why}"),
            Self::Control(why) => write!(f, "vCPU control structure: {why}"),
        }
    }
}

/// One virtual CPU with its guest memory (guest-physical address 0 is `memory()[0]`).
pub trait Vcpu {
    /// Enters the guest and returns at its next exit.
    fn run(&mut self) -> Result<VmExit, VcpuError>;
    fn regs(&self) -> &Registers;
    fn regs_mut(&mut self) -> &mut Registers;
    /// Moves RIP past `len` bytes (an instruction the handler emulated or completed).
    fn advance_rip(&mut self, len: u64);
    /// Length of the instruction that caused the last exit, when the hardware reports it.
    fn exit_instruction_len(&self) -> u64;
    /// Makes the next entry deliver #GP(0) to the guest.
    fn inject_gp(&mut self);
    /// Sets the guest's XCR0 (already validated by the handler).
    fn set_guest_xcr0(&mut self, value: u64);
    /// The guest's XCR0 (1, x87 only, until the guest sets another): CPUID leaf 0Dh reports the
    /// XSAVE area size of the components it enables.
    fn guest_xcr0(&self) -> u64;
    fn memory(&self) -> &[u8];
    fn memory_mut(&mut self) -> &mut [u8];
    /// Lines describing the hardware state, for a guest stopped by an unexpected exit (a VMCS dump).
    fn diagnostic_dump(&mut self) -> Vec<String>;
}

/// What the CPU must offer before a guest runs beside others, else the guest is not started (fail
/// closed): a timer that ends its time slices (VT-x: the VMX-preemption timer; SVM: the local APIC
/// timer), or a guest that never exits holds the CPU for good. (Each guest's SIMD registers are kept
/// apart with XSAVE, or FXSAVE on a CPU without it: `hw::xsave`.)
pub fn isolation_prerequisites(time_slices: bool) -> Result<(), String> {
    if !time_slices {
        return Err(
            "no timer can end its time slices (a guest that never exits would hold the CPU)".into(),
        );
    }
    Ok(())
}

#[cfg(test)]
#[test]
fn a_guest_needs_a_slice_timer() {
    assert_eq!(isolation_prerequisites(true), Ok(()));
    assert!(isolation_prerequisites(false)
        .unwrap_err()
        .contains("time slices"));
}
