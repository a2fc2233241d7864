//! The AMD SVM side of the backend-neutral vCPU, as pure logic (host-tested): which backend the boot CPU
//! gets, #VMEXIT decoding from a VMCB into [`VmExit`], and the length of the intercepted instruction
//! (NRIP when the CPU saves it, else iced-x86 over the guest's instruction bytes). `hw::svm_vcpu` runs
//! the guest; everything it decides is here.

use crate::guest_memory;
use crate::simd::CR4_OSXSAVE;
use crate::vcpu::{Registers, VmExit, RAX, RCX, RDX};
use core::fmt;
use svm::capabilities::{edx, SvmCpuid, CPUID_EXT1_ECX_SVM, CPUID_SVM_LEAF};
use svm::exit::{next_rip_with_fallback, ExitCode, IoDirection, IoioInfo, MsrExit, NpfInfo};
use svm::vmcb::{control, save, Vmcb};

/// The virtualization backend the boot CPU offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Intel VT-x (CPUID.1:ECX\[5\]).
    Vmx,
    /// AMD SVM with nested paging (CPUID 8000_0001h ECX\[2\] and 8000_000Ah EDX\[0\]).
    Svm,
    /// Neither usable; why, in words.
    Neither(NoBackend),
}

/// Why no backend can run guests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoBackend {
    /// Neither VMX nor SVM in CPUID.
    NoVmxNoSvm,
    /// SVM without CPUID leaf 8000_000Ah.
    SvmWithoutFeatureLeaf,
    /// SVM without nested paging.
    SvmWithoutNestedPaging,
}

impl fmt::Display for NoBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoVmxNoSvm => "CPUID.1:ECX[5] (VMX) and CPUID 8000_0001h ECX[2] (SVM) are clear",
            Self::SvmWithoutFeatureLeaf => "SVM is present but CPUID leaf 8000_000Ah is missing",
            Self::SvmWithoutNestedPaging => {
                "SVM is present without nested paging (CPUID 8000_000Ah EDX[0] clear)"
            }
        })
    }
}

/// VMX when the CPU has it, else SVM when it has SVM with nested paging, else neither. (Firmware may
/// still have disabled either; the bring-up checks that.)
pub fn choose_backend(has_vmx: bool, svm: &SvmCpuid) -> Backend {
    if has_vmx {
        return Backend::Vmx;
    }
    if svm.max_extended_leaf < 0x8000_0001 || svm.ext1_ecx & CPUID_EXT1_ECX_SVM == 0 {
        return Backend::Neither(NoBackend::NoVmxNoSvm);
    }
    if svm.max_extended_leaf < CPUID_SVM_LEAF {
        return Backend::Neither(NoBackend::SvmWithoutFeatureLeaf);
    }
    if svm.leaf_a_edx & edx::NP == 0 {
        return Backend::Neither(NoBackend::SvmWithoutNestedPaging);
    }
    Backend::Svm
}

/// Exceptions that push an error code (EXITINFO1 holds it on an exception intercept).
fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10 | 11 | 12 | 13 | 14 | 17 | 21 | 29 | 30)
}

fn other(code: ExitCode, name: &'static str) -> VmExit {
    VmExit::Other {
        reason: code.raw() as u32,
        name,
    }
}

/// Decodes the #VMEXIT recorded in `vmcb`. `regs` are the guest's registers as of the exit (RAX and RSP
/// already taken from the VMCB). `intr_ends_slice`: a physical interrupt is the time-slice timer (the
/// only host interrupt source while guests run), else it is only a host interrupt.
pub fn decode_exit(vmcb: &Vmcb, regs: &Registers, intr_ends_slice: bool) -> VmExit {
    let exit = svm::exit::VmExit::read(vmcb);
    let (rax, rcx, rdx) = (regs.gpr[RAX], regs.gpr[RCX], regs.gpr[RDX]);
    let edx_eax = (rdx << 32) | (rax & 0xFFFF_FFFF);
    match exit.code {
        ExitCode::Vmmcall => VmExit::Hypercall,
        ExitCode::Cpuid => VmExit::Cpuid {
            leaf: rax as u32,
            subleaf: rcx as u32,
            // CR4 is the guest's own in the VMCB (no read shadow under SVM).
            osxsave: vmcb.get64(save::CR4) & CR4_OSXSAVE != 0,
        },
        ExitCode::Msr => match MsrExit::decode(exit.info1) {
            Ok(MsrExit::Read) => VmExit::Msr {
                msr: rcx as u32,
                write: false,
                value: 0,
            },
            Ok(MsrExit::Write) => VmExit::Msr {
                msr: rcx as u32,
                write: true,
                value: edx_eax,
            },
            Err(_) => other(exit.code, "MSR exit with a bad EXITINFO1"),
        },
        ExitCode::Ioio => match IoioInfo::decode(exit.info1, exit.info2) {
            Ok(io) => VmExit::PortIo {
                port: io.port,
                size: io.size,
                write: io.direction == IoDirection::Out,
                value: rax as u32,
                string: io.string,
            },
            Err(_) => other(exit.code, "I/O with a reserved size"),
        },
        ExitCode::Npf => {
            let npf = NpfInfo::decode(exit.info1, exit.info2);
            VmExit::MmioAccess {
                gpa: npf.gpa,
                write: npf.write,
                fetch: npf.fetch,
                page_walk: npf.page_table_walk,
                // EXITINTINFO valid: the fault interrupted an event's delivery.
                event_delivery: vmcb.get64(control::EXITINTINFO) & (1 << 31) != 0,
            }
        }
        ExitCode::Xsetbv => VmExit::Xsetbv {
            xcr: rcx as u32,
            value: edx_eax,
        },
        ExitCode::Hlt => VmExit::Hlt,
        ExitCode::Shutdown => VmExit::TripleFault,
        ExitCode::Intr if intr_ends_slice => VmExit::PreemptionTimer,
        ExitCode::Intr | ExitCode::Nmi => VmExit::HostInterrupt,
        ExitCode::Exception(vector) => VmExit::Fault {
            vector,
            error_code: has_error_code(vector).then_some(exit.info1 as u32),
        },
        code => other(code, code.name()),
    }
}

/// Why the length of the intercepted instruction is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoInstructionLength;

/// Length of the instruction that caused the exit: NRIP - RIP when the CPU saves NRIP (`nrip_save`,
/// CPUID 8000_000Ah EDX\[3\]), EXITINFO2 - RIP for IOIO (always the next RIP), else the length iced-x86
/// decodes from the VMCB's instruction bytes (decode assists) or from guest memory at RIP through the
/// guest's page tables (`cr3`). A length outside 1..=15 is refused.
pub fn instruction_len(
    vmcb: &Vmcb,
    nrip_save: bool,
    memory: &[u8],
    cr3: u64,
) -> Result<u64, NoInstructionLength> {
    let rip = vmcb.get64(save::RIP);
    let exit = svm::exit::VmExit::read(vmcb);
    let next = if exit.code == ExitCode::Ioio {
        exit.info2
    } else {
        let (bytes, fetched) = guest_memory::fetch_instruction(memory, cr3, rip);
        next_rip_with_fallback(vmcb, nrip_save, &bytes[..fetched])
            .map_err(|_| NoInstructionLength)?
    };
    let len = next.wrapping_sub(rip);
    if (1..=15).contains(&len) {
        Ok(len)
    } else {
        Err(NoInstructionLength)
    }
}

/// Whether the exit is an intercepted instruction whose length the handlers may need.
pub fn is_instruction_exit(vmcb: &Vmcb) -> bool {
    matches!(
        ExitCode::from_raw(vmcb.get64(control::EXITCODE)),
        ExitCode::Vmmcall
            | ExitCode::Cpuid
            | ExitCode::Msr
            | ExitCode::Ioio
            | ExitCode::Xsetbv
            | ExitCode::Hlt
    )
}

/// VMCALL (0F 01 C1), Intel's hypercall instruction. On AMD it raises #UD, which the SVM backend
/// intercepts: a guest that chose VMCALL (the built-in test guests, or an SDK guest on a CPU whose vendor
/// string is not AMD's) still reaches the hypercall path, so both instructions work on SVM.
pub const VMCALL: [u8; 3] = [0x0F, 0x01, 0xC1];

/// Whether the instruction at guest linear `rip` (through the guest's page tables at `cr3`) is VMCALL.
pub fn is_vmcall_at(memory: &[u8], cr3: u64, rip: u64) -> bool {
    let (bytes, fetched) = guest_memory::fetch_instruction(memory, cr3, rip);
    fetched >= VMCALL.len() && bytes[..VMCALL.len()] == VMCALL
}

/// Copies the handler-visible registers into the VMCB before VMRUN (RAX, RSP, RIP, RFLAGS live there;
/// the other GPRs are loaded by the entry code).
pub fn load_registers(vmcb: &mut Vmcb, regs: &Registers) {
    vmcb.set64(save::RAX, regs.gpr[RAX]);
    vmcb.set64(save::RSP, regs.gpr[crate::vcpu::RSP]);
    vmcb.set64(save::RIP, regs.rip);
    vmcb.set64(save::RFLAGS, regs.rflags);
}

/// The registers after #VMEXIT: `gprs` from the exit code, RAX/RSP/RIP/RFLAGS/CR3 from the VMCB.
pub fn store_registers(vmcb: &Vmcb, gprs: &[u64; 16]) -> Registers {
    let mut regs = Registers {
        gpr: *gprs,
        rip: vmcb.get64(save::RIP),
        rflags: vmcb.get64(save::RFLAGS),
        cr3: vmcb.get64(save::CR3),
        user_mode: vmcb.get8(save::CPL) != 0,
        legacy_code: !vmcb.segment(save::SegmentRegister::Cs).attrib.long(),
    };
    regs.gpr[RAX] = vmcb.get64(save::RAX);
    regs.gpr[crate::vcpu::RSP] = vmcb.get64(save::RSP);
    regs
}

#[cfg(test)]
#[path = "svm_exit_tests.rs"]
mod tests;
