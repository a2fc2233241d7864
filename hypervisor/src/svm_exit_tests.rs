use super::*;
use crate::guest_memory::{build_boot_structures, GUEST_RAM_SIZE, PML4_GPA};
use crate::vcpu::{RBX, RSP};
use alloc::vec;
use svm::setup::CODE64_ATTRIB;
use svm::vmcb::save::SegmentRegister;
use svm::vmcb::Segment;

fn vmcb_with(code: ExitCode, info1: u64, info2: u64) -> Vmcb {
    let mut vmcb = Vmcb::new();
    vmcb.set64(control::EXITCODE, code.raw());
    vmcb.set64(control::EXITINFO1, info1);
    vmcb.set64(control::EXITINFO2, info2);
    vmcb.set_segment(
        SegmentRegister::Cs,
        Segment {
            selector: 8,
            attrib: CODE64_ATTRIB,
            limit: u32::MAX,
            base: 0,
        },
    );
    vmcb
}

fn regs(rax: u64, rcx: u64, rdx: u64) -> Registers {
    let mut r = Registers::default();
    r.gpr[RAX] = rax;
    r.gpr[RCX] = rcx;
    r.gpr[RDX] = rdx;
    r
}

fn qemu_cpuid(edx_bits: u32) -> SvmCpuid {
    SvmCpuid {
        max_extended_leaf: 0x8000_0021,
        ext1_ecx: CPUID_EXT1_ECX_SVM,
        leaf_a_eax: 1,
        leaf_a_ebx: 16,
        leaf_a_edx: edx_bits,
    }
}

#[test]
fn backend_prefers_vmx_then_svm_with_nested_paging() {
    let svm = qemu_cpuid(edx::NP | edx::NRIPS);
    assert_eq!(choose_backend(true, &svm), Backend::Vmx);
    assert_eq!(choose_backend(false, &svm), Backend::Svm);
    assert_eq!(
        choose_backend(false, &qemu_cpuid(edx::NRIPS)),
        Backend::Neither(NoBackend::SvmWithoutNestedPaging)
    );
    let mut none = svm;
    none.ext1_ecx = 0;
    assert_eq!(
        choose_backend(false, &none),
        Backend::Neither(NoBackend::NoVmxNoSvm)
    );
    let mut old = svm;
    old.max_extended_leaf = 0x8000_0008;
    assert_eq!(
        choose_backend(false, &old),
        Backend::Neither(NoBackend::SvmWithoutFeatureLeaf)
    );
    let mut no_ext = svm;
    no_ext.max_extended_leaf = 0x8000_0000;
    assert_eq!(
        choose_backend(false, &no_ext),
        Backend::Neither(NoBackend::NoVmxNoSvm)
    );
}

#[test]
fn instruction_exits_decode_from_registers() {
    let r = regs(0x4000_0000, 7, 0);
    assert_eq!(
        decode_exit(&vmcb_with(ExitCode::Vmmcall, 0, 0), &r, true),
        VmExit::Hypercall
    );
    assert_eq!(
        decode_exit(&vmcb_with(ExitCode::Cpuid, 0, 0), &r, true),
        VmExit::Cpuid {
            leaf: 0x4000_0000,
            subleaf: 7,
            osxsave: false,
        }
    );
    // CPUID.1:ECX.OSXSAVE copies the guest's CR4.OSXSAVE (the VMCB's CR4 is the guest's own).
    let mut osxsave = vmcb_with(ExitCode::Cpuid, 0, 0);
    osxsave.set64(save::CR4, 0x20 | (1 << 18));
    assert_eq!(
        decode_exit(&osxsave, &regs(1, 0, 0), true),
        VmExit::Cpuid {
            leaf: 1,
            subleaf: 0,
            osxsave: true,
        }
    );
    let wr = regs(0xFFFF_FFFF_1122_3344, 0xC000_0100, 0x55);
    assert_eq!(
        decode_exit(&vmcb_with(ExitCode::Msr, 1, 0), &wr, true),
        VmExit::Msr {
            msr: 0xC000_0100,
            write: true,
            value: 0x55_1122_3344
        }
    );
    assert_eq!(
        decode_exit(&vmcb_with(ExitCode::Msr, 0, 0), &wr, true),
        VmExit::Msr {
            msr: 0xC000_0100,
            write: false,
            value: 0
        }
    );
    assert!(matches!(
        decode_exit(&vmcb_with(ExitCode::Msr, 2, 0), &wr, true),
        VmExit::Other { reason: 0x7C, .. }
    ));
    assert_eq!(
        decode_exit(&vmcb_with(ExitCode::Xsetbv, 0, 0), &regs(7, 0, 0), true),
        VmExit::Xsetbv { xcr: 0, value: 7 }
    );
    assert_eq!(
        decode_exit(&vmcb_with(ExitCode::Hlt, 0, 0), &r, true),
        VmExit::Hlt
    );
    assert_eq!(
        decode_exit(&vmcb_with(ExitCode::Shutdown, 0, 0), &r, true),
        VmExit::TripleFault
    );
}

#[test]
fn ioio_decodes_port_size_direction_and_value() {
    // OUT dx, al to 0xE9: port in bits 31:16, SZ8 (bit 4), direction out (bit 0 clear).
    let out = vmcb_with(ExitCode::Ioio, 0xE9 << 16 | 1 << 4, 0x40_1002);
    assert_eq!(
        decode_exit(&out, &regs(0x1234_5641, 0, 0), true),
        VmExit::PortIo {
            port: 0xE9,
            size: 1,
            write: true,
            value: 0x1234_5641,
            string: false
        }
    );
    // IN al, dx from 0x3FD; INS is reported as a string access.
    let inb = vmcb_with(ExitCode::Ioio, 0x3FD << 16 | 1 << 4 | 1, 0);
    assert!(matches!(
        decode_exit(&inb, &regs(0, 0, 0), true),
        VmExit::PortIo {
            port: 0x3FD,
            write: false,
            string: false,
            ..
        }
    ));
    let ins = vmcb_with(ExitCode::Ioio, 0x3FD << 16 | 1 << 4 | 1 << 2 | 1, 0);
    assert!(matches!(
        decode_exit(&ins, &regs(0, 0, 0), true),
        VmExit::PortIo { string: true, .. }
    ));
    // No size bit: refused, not guessed.
    let bad = vmcb_with(ExitCode::Ioio, 0x80 << 16, 0);
    assert!(matches!(
        decode_exit(&bad, &regs(0, 0, 0), true),
        VmExit::Other { reason: 0x7B, .. }
    ));
}

#[test]
fn nested_page_fault_is_an_mmio_access() {
    // A write to the tool device window, not present in the NPT (bit 1 write, bit 32 final translation).
    let write = vmcb_with(ExitCode::Npf, 1 << 1 | 1 << 2 | 1 << 32, 0xFEB0_0008);
    assert_eq!(
        decode_exit(&write, &Registers::default(), true),
        VmExit::MmioAccess {
            gpa: 0xFEB0_0008,
            write: true,
            fetch: false,
            page_walk: false,
            event_delivery: false,
        }
    );
    let fetch = vmcb_with(ExitCode::Npf, 1 << 4 | 1 << 2 | 1 << 32, 0x1000_0000);
    assert_eq!(
        decode_exit(&fetch, &Registers::default(), true),
        VmExit::MmioAccess {
            gpa: 0x1000_0000,
            write: false,
            fetch: true,
            page_walk: false,
            event_delivery: false,
        }
    );
    // The guest's own page-table walk touching the window (bit 33): not the instruction's access.
    let walk = vmcb_with(ExitCode::Npf, 1 << 2 | 1 << 33, 0xFEB0_0000);
    assert_eq!(
        decode_exit(&walk, &Registers::default(), true),
        VmExit::MmioAccess {
            gpa: 0xFEB0_0000,
            write: false,
            fetch: false,
            page_walk: true,
            event_delivery: false,
        }
    );
    // The same write while a #DB was being delivered (EXITINTINFO valid): the frame's push.
    let mut push = vmcb_with(ExitCode::Npf, 1 << 1 | 1 << 2 | 1 << 32, 0xFEB0_0008);
    push.set64(control::EXITINTINFO, 0x8000_0301);
    assert_eq!(
        decode_exit(&push, &Registers::default(), true),
        VmExit::MmioAccess {
            gpa: 0xFEB0_0008,
            write: true,
            fetch: false,
            page_walk: false,
            event_delivery: true,
        }
    );
}

#[test]
fn interrupts_exceptions_and_unknown_exits() {
    let r = Registers::default();
    let intr = vmcb_with(ExitCode::Intr, 0, 0);
    assert_eq!(decode_exit(&intr, &r, true), VmExit::PreemptionTimer);
    assert_eq!(decode_exit(&intr, &r, false), VmExit::HostInterrupt);
    assert_eq!(
        decode_exit(&vmcb_with(ExitCode::Nmi, 0, 0), &r, true),
        VmExit::HostInterrupt
    );
    assert_eq!(
        decode_exit(&vmcb_with(ExitCode::Exception(13), 0x18, 0), &r, true),
        VmExit::Fault {
            vector: 13,
            error_code: Some(0x18)
        }
    );
    assert_eq!(
        decode_exit(&vmcb_with(ExitCode::Exception(6), 0x18, 0), &r, true),
        VmExit::Fault {
            vector: 6,
            error_code: None
        }
    );
    assert_eq!(
        decode_exit(&vmcb_with(ExitCode::Invalid, 0, 0), &r, true),
        VmExit::Other {
            reason: u32::MAX,
            name: "VMEXIT_INVALID"
        }
    );
    assert_eq!(
        decode_exit(&vmcb_with(ExitCode::Vmrun, 0, 0), &r, true),
        VmExit::Other {
            reason: 0x80,
            name: "VMEXIT_VMRUN"
        }
    );
}

fn guest_ram_with(code_gpa: u64, code: &[u8]) -> alloc::vec::Vec<u8> {
    let mut mem = vec![0u8; GUEST_RAM_SIZE as usize];
    build_boot_structures(&mut mem).unwrap();
    let at = code_gpa as usize;
    mem[at..at + code.len()].copy_from_slice(code);
    mem
}

#[test]
fn instruction_length_from_nrip_or_decoded_guest_bytes() {
    let rip = 0x40_1000;
    // vmmcall (0F 01 D9); cpuid (0F A2).
    let mem = guest_ram_with(rip, &[0x0F, 0x01, 0xD9, 0x0F, 0xA2]);
    let mut vmcb = vmcb_with(ExitCode::Vmmcall, 0, 0);
    vmcb.set64(save::RIP, rip);
    // Without NRIP save (or NRIP zero): decoded from guest memory through the guest page tables.
    assert_eq!(instruction_len(&vmcb, false, &mem, PML4_GPA), Ok(3));
    assert_eq!(instruction_len(&vmcb, true, &mem, PML4_GPA), Ok(3));
    // With NRIP save, NRIP wins (even over the bytes).
    vmcb.set64(control::NRIP, rip + 3);
    assert_eq!(instruction_len(&vmcb, true, &[], PML4_GPA), Ok(3));
    // NRIP present but not announced by CPUID: ignored, bytes decoded.
    vmcb.set64(save::RIP, rip + 3);
    vmcb.set64(control::EXITCODE, ExitCode::Cpuid.raw());
    assert_eq!(instruction_len(&vmcb, false, &mem, PML4_GPA), Ok(2));
    // Nothing to decode: unknown, not guessed.
    assert_eq!(
        instruction_len(&vmcb, false, &[], PML4_GPA),
        Err(NoInstructionLength)
    );
    // A bogus NRIP (behind RIP) is refused.
    vmcb.set64(control::NRIP, rip);
    assert_eq!(
        instruction_len(&vmcb, true, &mem, PML4_GPA),
        Err(NoInstructionLength)
    );
}

#[test]
fn ioio_length_comes_from_exitinfo2() {
    let mut vmcb = vmcb_with(ExitCode::Ioio, 0xE9 << 16 | 1 << 4, 0x40_1002);
    vmcb.set64(save::RIP, 0x40_1000);
    assert_eq!(instruction_len(&vmcb, false, &[], PML4_GPA), Ok(2));
    assert!(is_instruction_exit(&vmcb));
    assert!(!is_instruction_exit(&vmcb_with(ExitCode::Npf, 0, 0)));
}

#[test]
fn registers_round_trip_through_the_vmcb() {
    let mut regs = Registers {
        rip: 0x40_0010,
        rflags: 0x202,
        ..Registers::default()
    };
    regs.gpr[RAX] = 1;
    regs.gpr[RBX] = 2;
    regs.gpr[RSP] = 0xF_FFF0;
    let mut vmcb = Vmcb::new();
    vmcb.set64(save::CR3, PML4_GPA);
    load_registers(&mut vmcb, &regs);
    let mut gprs = regs.gpr;
    gprs[RAX] = 0xDEAD;
    gprs[RSP] = 0xBEEF;
    let back = store_registers(&vmcb, &gprs);
    assert_eq!(back.gpr[RAX], 1, "RAX comes from the VMCB");
    assert_eq!(back.gpr[RSP], 0xF_FFF0, "RSP comes from the VMCB");
    assert_eq!(back.gpr[RBX], 2);
    assert_eq!(
        (back.rip, back.rflags, back.cr3),
        (0x40_0010, 0x202, PML4_GPA)
    );
}

#[test]
fn vmcall_is_recognised_only_at_rip() {
    let rip = 0x40_2000;
    let mem = guest_ram_with(rip, &[0x0F, 0x01, 0xC1, 0x0F, 0x01, 0xD9]);
    assert!(is_vmcall_at(&mem, PML4_GPA, rip));
    assert!(
        !is_vmcall_at(&mem, PML4_GPA, rip + 3),
        "VMMCALL is not VMCALL"
    );
    assert!(!is_vmcall_at(&mem, PML4_GPA, rip + 1));
    // RIP whose bytes run off the end of guest RAM.
    assert!(!is_vmcall_at(&mem, PML4_GPA, GUEST_RAM_SIZE - 2));
}
