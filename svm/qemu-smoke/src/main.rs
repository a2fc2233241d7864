//! Bare-metal smoke test of the svm crate under QEMU TCG: real VMRUN of a tiny 64-bit guest
//! with nested paging, checking the exit sequence VMMCALL, CPUID, IOIO, NPF, HLT and that the
//! consistency checks predict VMEXIT_INVALID. Prints `SVM-SMOKE: PASS` or `SVM-SMOKE: FAIL`.
#![no_std]
#![no_main]

extern crate alloc;

mod boot;
mod platform;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt::Write;
use platform::{exit_qemu, Serial};
use svm::capabilities::{detect, SvmCpuid};
use svm::consistency::{check_vmrun_consistency, CpuLimits, Violation};
use svm::exit::{next_rip_with_fallback, ExitCode, IoDirection, IoioInfo, NpfInfo, VmExit};
use svm::guest_regs::GuestRegisters;
use svm::hw::real::RealSvm;
use svm::hw::{enable_svm, SvmHardware};
use svm::npt::{FrameAllocator, Npt, NptMemoryType, NptPerms, PageSize};
use svm::permission_maps::{IoPermissionMap, MsrAccess, MsrPermissionMap};
use svm::setup::{write_long_mode_guest, InterceptChoice, LongModeGuest};
use svm::vmcb::control::{self, Intercept, TlbControl};
use svm::vmcb::{save, Vmcb};

/// Guest code: mov eax,0x1234; vmmcall; xor eax,eax; cpuid; mov al,0x55; out 0x80,al;
/// mov rax,[0x20000000]; hlt.
const GUEST_CODE: [u8; 24] = [
    0xB8, 0x34, 0x12, 0x00, 0x00, 0x0F, 0x01, 0xD9, 0x31, 0xC0, 0x0F, 0xA2, 0xB0, 0x55, 0xE6, 0x80,
    0x48, 0xA1, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00,
];
const GUEST_CODE_TAIL: [u8; 3] = [0x00, 0x00, 0xF4];
/// Guest-physical address the guest reads, left out of the nested page tables at first.
const HOLE_GPA: u64 = 0x2000_0000;
const NPT_MAPPED: u64 = 0x2000_0000;

#[repr(C, align(4096))]
struct Page([u8; 4096]);

#[repr(C, align(4096))]
struct Table([u64; 512]);

/// Identity-mapped heap frames: physical address = the Box's address.
struct IdentityFrames {
    frames: Vec<Box<Table>>,
}

impl FrameAllocator for IdentityFrames {
    fn alloc_zeroed_frame(&mut self) -> Option<u64> {
        let frame = Box::new(Table([0; 512]));
        let pa = &*frame as *const Table as u64;
        self.frames.push(frame);
        Some(pa)
    }
    fn phys_to_virt(&self, phys: u64) -> Option<&[u64; 512]> {
        let f = self
            .frames
            .iter()
            .find(|f| &***f as *const Table as u64 == phys)?;
        Some(&f.0)
    }
    fn phys_to_virt_mut(&mut self, phys: u64) -> Option<&mut [u64; 512]> {
        let f = self
            .frames
            .iter_mut()
            .find(|f| &***f as *const Table as u64 == phys)?;
        Some(&mut f.0)
    }
}

fn pa<T>(r: &T) -> u64 {
    r as *const T as u64
}

macro_rules! check {
    ($out:expr, $cond:expr, $($msg:tt)*) => {
        if !$cond {
            let _ = writeln!($out, "svm-smoke: check failed: {}", format_args!($($msg)*));
            let _ = writeln!($out, "SVM-SMOKE: FAIL");
            exit_qemu(false);
        }
    };
}

#[no_mangle]
extern "C" fn smoke_main() -> ! {
    let mut out = Serial;
    let _ = writeln!(out, "svm-smoke: boot ok");
    let cpuid = |leaf: u32| platform::cpuid(leaf);
    let max_ext = cpuid(0x8000_0000).0;
    let leaf_a = cpuid(0x8000_000A);
    let ids = SvmCpuid {
        max_extended_leaf: max_ext,
        ext1_ecx: cpuid(0x8000_0001).2,
        leaf_a_eax: leaf_a.0,
        leaf_a_ebx: leaf_a.1,
        leaf_a_edx: leaf_a.3,
    };
    let host_vmcb = Box::new(Vmcb::new());
    // SAFETY: we run at CPL 0 with identity paging; every address passed below is a Box we
    // own and keep alive until the end (the function never returns).
    let mut hw = match unsafe { RealSvm::new(pa(&*host_vmcb)) } {
        Ok(hw) => hw,
        Err(e) => {
            let _ = writeln!(out, "svm-smoke: {e}");
            exit_qemu(false);
        }
    };
    let features = match detect(ids, || hw.rdmsr(svm::msr::VM_CR)) {
        Ok((f, _)) => f,
        Err(e) => {
            let _ = writeln!(out, "svm-smoke: no SVM: {e}");
            let _ = writeln!(out, "SVM-SMOKE: FAIL");
            exit_qemu(false);
        }
    };
    let _ = writeln!(out, "svm-smoke: {features}");
    let hsave = Box::new(Page([0; 4096]));
    if let Err(e) = enable_svm(&mut hw, pa(&*hsave)) {
        let _ = writeln!(out, "svm-smoke: enable failed: {e}");
        exit_qemu(false);
    }

    let mut npt = Npt::new(IdentityFrames { frames: Vec::new() }).expect("npt");
    npt.map_range(0, 0, NPT_MAPPED, NptPerms::RWX, NptMemoryType::WriteBack)
        .expect("npt map");
    let mut iopm = IoPermissionMap::allow_all();
    iopm.set(0x80, true);
    let mut msrpm = MsrPermissionMap::allow_all();
    msrpm.set(svm::msr::EFER, MsrAccess::Write, true);

    let mut code = Box::new(Page([0xF4; 4096]));
    code.0[..GUEST_CODE.len()].copy_from_slice(&GUEST_CODE);
    code.0[GUEST_CODE.len()..GUEST_CODE.len() + 3].copy_from_slice(&GUEST_CODE_TAIL);
    let stack = Box::new(Page([0; 4096]));
    let mut vmcb = Box::new(Vmcb::new());
    let guest = LongModeGuest {
        entry: pa(&*code),
        stack: pa(&*stack) + 4096,
        cr3: platform::read_cr3(),
        gdtr: (0, 0),
        idtr: (0, 0),
        asid: 1,
        tlb_control: TlbControl::FlushAll,
        ncr3: npt.ncr3(),
        iopm_pa: pa(iopm.as_bytes()),
        msrpm_pa: pa(msrpm.as_bytes()),
        intercepts: InterceptChoice::default(),
    };
    write_long_mode_guest(&mut vmcb, &guest);
    let cpu = CpuLimits {
        max_physical_address_bits: (cpuid(0x8000_0008).0 & 0xFF) as u8,
        long_mode: true,
    };
    let violations = check_vmrun_consistency(&vmcb, cpu);
    check!(out, violations.is_empty(), "consistency: {:?}", violations);
    let vmcb_pa = pa(&*vmcb);
    let mut regs = GuestRegisters::default();

    // VMEXIT_INVALID predicted by the checks: ASID 0, then VMRUN not intercepted.
    for (breaker, expected) in [
        (
            (|v: &mut Vmcb| v.set32(control::GUEST_ASID, 0)) as fn(&mut Vmcb),
            Violation::AsidZero,
        ),
        (
            |v: &mut Vmcb| v.set_intercept(Intercept::VMRUN, false),
            Violation::VmrunNotIntercepted,
        ),
        (
            |v: &mut Vmcb| v.set64(save::EFER, v.get64(save::EFER) & !svm::msr::EFER_SVME),
            Violation::EferSvmeClear,
        ),
    ] {
        let mut broken = Box::new((*vmcb).clone());
        breaker(&mut broken);
        let predicted = check_vmrun_consistency(&broken, cpu);
        hw.vmrun(pa(&*broken), &mut regs).expect("vmrun");
        let code = VmExit::read(&broken).code;
        let _ = writeln!(out, "svm-smoke: {expected} -> {code}");
        check!(out, predicted == [expected], "predicted {:?}", predicted);
        check!(
            out,
            code == ExitCode::Invalid,
            "expected VMEXIT_INVALID, got {code}"
        );
    }

    let expected = [
        ExitCode::Vmmcall,
        ExitCode::Cpuid,
        ExitCode::Ioio,
        ExitCode::Npf,
        ExitCode::Hlt,
    ];
    let mut seen = 0;
    while seen < expected.len() {
        hw.vmrun(vmcb_pa, &mut regs).expect("vmrun");
        vmcb.set8(control::TLB_CONTROL, TlbControl::DoNothing as u8);
        let exit = VmExit::read(&vmcb);
        let rip = vmcb.get64(save::RIP);
        let _ = writeln!(
            out,
            "svm-smoke: exit {} info1={:#x} info2={:#x} rip={:#x} nrip={:#x}",
            exit.code,
            exit.info1,
            exit.info2,
            rip,
            vmcb.get64(control::NRIP)
        );
        if exit.code == ExitCode::Intr || exit.code == ExitCode::Nmi {
            continue;
        }
        check!(
            out,
            exit.code == expected[seen],
            "expected {}",
            expected[seen]
        );
        seen += 1;
        // SAFETY: guest memory is identity-mapped host memory below 512 MiB and RIP lies in
        // the guest code page we own.
        let fetched = unsafe { core::slice::from_raw_parts(rip as *const u8, 15) };
        let next = next_rip_with_fallback(&vmcb, features.nrip_save(), fetched);
        match exit.code {
            ExitCode::Vmmcall => {
                check!(out, vmcb.get64(save::RAX) == 0x1234, "guest rax");
                check!(out, next == Ok(rip + 3), "vmmcall length {:?}", next);
                vmcb.set64(save::RIP, rip + 3);
            }
            ExitCode::Cpuid => {
                let leaf = vmcb.get64(save::RAX) as u32;
                let (a, b, c, d) = cpuid(leaf);
                vmcb.set64(save::RAX, u64::from(a));
                regs.gpr[3] = u64::from(b);
                regs.gpr[1] = u64::from(c);
                regs.gpr[2] = u64::from(d);
                check!(out, next == Ok(rip + 2), "cpuid length {:?}", next);
                vmcb.set64(save::RIP, rip + 2);
            }
            ExitCode::Ioio => {
                let io = IoioInfo::decode(exit.info1, exit.info2).expect("ioio");
                let al = vmcb.get64(save::RAX) & 0xFF;
                check!(out, io.port == 0x80 && io.size == 1, "{:?}", io);
                check!(
                    out,
                    io.direction == IoDirection::Out && al == 0x55,
                    "out al={al:#x}"
                );
                check!(out, io.next_rip == rip + 2, "ioio next rip");
                vmcb.set64(save::RIP, io.next_rip);
            }
            ExitCode::Npf => {
                let npf = NpfInfo::decode(exit.info1, exit.info2);
                let _ = writeln!(out, "svm-smoke: npf {npf:?}");
                check!(
                    out,
                    npf.gpa == HOLE_GPA && !npf.write && !npf.present,
                    "npf"
                );
                let backing = Box::leak(Box::new(Page([0x5A; 4096])));
                npt.map(
                    HOLE_GPA,
                    pa(backing),
                    PageSize::Size4K,
                    NptPerms::R,
                    NptMemoryType::WriteBack,
                )
                .expect("map hole");
            }
            _ => {
                check!(
                    out,
                    vmcb.get64(save::RAX) == 0x5A5A_5A5A_5A5A_5A5A,
                    "guest read the hole"
                );
            }
        }
    }
    let _ = writeln!(out, "SVM-SMOKE: PASS");
    exit_qemu(true);
}
