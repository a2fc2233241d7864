//! End to end on the software double: enable SVM, build nested page tables and permission
//! maps, fill a long-mode guest VMCB, run it, and decode IOIO, MSR, NPF and VMMCALL exits.

use svm::asid::AsidAllocator;
use svm::capabilities::{detect, SvmCpuid};
use svm::consistency::{check_vmrun_consistency, CpuLimits};
use svm::exit::{next_rip, ExitCode, IoDirection, IoioInfo, NpfInfo, VmExit};
use svm::guest_regs::{read_gpr, GuestRegisters, RCX};
use svm::hw::{enable_svm, SimulatedExit, SoftSvm, SvmHardware};
use svm::npt::{HeapFrameAllocator, Npt, NptMemoryType, NptPerms};
use svm::permission_maps::{IoPermissionMap, MsrAccess, MsrPermissionMap};
use svm::setup::{write_long_mode_guest, InterceptChoice, LongModeGuest};
use svm::vmcb::{control, save, Vmcb};

const VMCB_PA: u64 = 0x20_0000;

#[test]
fn guest_exits_are_decoded_end_to_end() {
    let cpuid = SvmCpuid {
        max_extended_leaf: 0x8000_001F,
        ext1_ecx: 1 << 2,
        leaf_a_eax: 1,
        leaf_a_ebx: 8,
        leaf_a_edx: 0b1100_1001,
    };
    let (features, _) = detect(cpuid, || 0).unwrap();
    let mut asids = AsidAllocator::new(features.number_of_asids, features.flush_by_asid());
    let asid = asids.allocate().unwrap();

    let mut npt = Npt::new(HeapFrameAllocator::new(0x100_0000, 32)).unwrap();
    npt.map_range(
        0,
        0x4000_0000,
        0x40_0000,
        NptPerms::RWX,
        NptMemoryType::WriteBack,
    )
    .unwrap();
    let mut iopm = IoPermissionMap::allow_all();
    iopm.set(0x3F8, true);
    let mut msrpm = MsrPermissionMap::allow_all();
    msrpm.set(0xC000_0080, MsrAccess::Write, true);
    assert!(iopm.traps(0x3F8, 1) && !iopm.traps(0x60, 1));

    let mut vmcb = Vmcb::new();
    let guest = LongModeGuest {
        entry: 0x1000,
        stack: 0x9000,
        cr3: 0x10_0000,
        gdtr: (0x2000, 0x1F),
        idtr: (0, 0),
        asid,
        tlb_control: asids.flush_control(),
        ncr3: npt.ncr3(),
        iopm_pa: 0x30_0000,
        msrpm_pa: 0x30_3000,
        intercepts: InterceptChoice::default(),
    };
    write_long_mode_guest(&mut vmcb, &guest);
    assert_eq!(check_vmrun_consistency(&vmcb, CpuLimits::default()), []);

    let mut hw = SoftSvm::new();
    enable_svm(&mut hw, 0x40_0000).unwrap();
    hw.attach_vmcb(VMCB_PA, vmcb);
    let mut regs = GuestRegisters::default();

    // OUT DX, AL to the trapped COM1 port.
    hw.queue_exit(SimulatedExit {
        code: ExitCode::Ioio.raw(),
        info1: 0x3F8 << 16 | 1 << 9 | 1 << 4,
        info2: 0x1001,
        ..SimulatedExit::default()
    });
    hw.vmrun(VMCB_PA, &mut regs).unwrap();
    let exit = VmExit::read(hw.vmcb(VMCB_PA).unwrap());
    assert_eq!(exit.code, ExitCode::Ioio);
    let io = IoioInfo::decode(exit.info1, exit.info2).unwrap();
    assert_eq!(
        (io.port, io.size, io.direction),
        (0x3F8, 1, IoDirection::Out)
    );
    assert!(iopm.traps(io.port, io.size));
    hw.vmcb_mut(VMCB_PA).unwrap().set64(save::RIP, io.next_rip);

    // WRMSR EFER, with RCX in the saved registers.
    let mut after = regs;
    after.gpr[1] = 0xC000_0080;
    hw.queue_exit(SimulatedExit {
        code: ExitCode::Msr.raw(),
        info1: 1,
        instruction_bytes: vec![0x0F, 0x30],
        registers: Some(after),
        ..SimulatedExit::default()
    });
    hw.vmrun(VMCB_PA, &mut regs).unwrap();
    let vmcb = hw.vmcb(VMCB_PA).unwrap();
    let msr = read_gpr(vmcb, &regs, RCX).unwrap() as u32;
    assert!(msrpm.traps(msr, MsrAccess::Write));
    assert_eq!(next_rip(vmcb, features.nrip_save()), Ok(0x1003));

    // A write to a page mapped read-only: a #NPF on the final translation.
    npt.protect(0x5000, svm::npt::PageSize::Size4K, NptPerms::RX)
        .expect_err("2-MiB page: protect needs the 2-MiB size");
    npt.protect(0, svm::npt::PageSize::Size2M, NptPerms::RX)
        .unwrap();
    hw.queue_exit(SimulatedExit {
        code: ExitCode::Npf.raw(),
        info1: 1 << 32 | 0b111,
        info2: 0x5008,
        ..SimulatedExit::default()
    });
    hw.vmrun(VMCB_PA, &mut regs).unwrap();
    let exit = VmExit::read(hw.vmcb(VMCB_PA).unwrap());
    let npf = NpfInfo::decode(exit.info1, exit.info2);
    assert!(npf.write && npf.present && npf.final_translation);
    let t = npt.translate(npf.gpa).unwrap();
    assert!(!t.perms.write);
    assert_eq!(t.hpa, 0x4000_5008);

    // VMMCALL with NRIP saved.
    hw.queue_exit(SimulatedExit {
        code: ExitCode::Vmmcall.raw(),
        nrip: 0x1006,
        ..SimulatedExit::default()
    });
    hw.vmrun(VMCB_PA, &mut regs).unwrap();
    let vmcb = hw.vmcb(VMCB_PA).unwrap();
    assert_eq!(VmExit::read(vmcb).code, ExitCode::Vmmcall);
    assert_eq!(next_rip(vmcb, true), Ok(0x1006));
    assert_eq!(vmcb.get32(control::GUEST_ASID), 1);
}
