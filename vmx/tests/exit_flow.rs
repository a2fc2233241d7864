//! End to end on the software VMCS: configure a 64-bit guest, map RAM and an MMIO page with EPT,
//! enter the guest, take a simulated EPT-violation exit on the MMIO page, decode it, and emulate
//! the faulting instruction into the guest registers.

use vmx::capabilities::VmxBasic;
use vmx::ept::{Ept, EptMemoryType, EptPerms, HeapFrameAllocator, PageSize};
use vmx::exit::{BasicExitReason, EptViolation, ExitReason, VmcsDump, DEFAULT_DUMP_FIELDS};
use vmx::fields;
use vmx::guest_regs::GuestRegisters;
use vmx::hw::{SimulatedExit, SoftVmcs, VmxHardware};
use vmx::mmio_decode::{decode, MmioDirection};
use vmx::msr;
use vmx::vmcs_setup::{
    guest_control_registers, write_controls, write_execution_pointers, write_long_mode_guest,
    ControlRequest, ExecutionPointers, LongModeGuest,
};

const MMIO_GPA: u64 = 0xFEE0_0000;

#[test]
fn mmio_read_exit_is_decoded_and_emulated() {
    let all = 0xFFFF_FFFF_0000_0000;
    let mut hw = SoftVmcs::new()
        .with_msr(msr::IA32_VMX_TRUE_PINBASED_CTLS, all)
        .with_msr(msr::IA32_VMX_TRUE_PROCBASED_CTLS, all)
        .with_msr(msr::IA32_VMX_PROCBASED_CTLS2, all)
        .with_msr(msr::IA32_VMX_TRUE_EXIT_CTLS, all)
        .with_msr(msr::IA32_VMX_TRUE_ENTRY_CTLS, all);
    hw.vmxon(0x1000).unwrap();
    hw.vmclear(0x2000).unwrap();
    hw.vmptrld(0x2000).unwrap();

    let mut ept = Ept::new(HeapFrameAllocator::new(0x100_0000, 16)).unwrap();
    ept.map_range(
        0,
        0x4000_0000,
        4 << 20,
        EptPerms::RWX,
        EptMemoryType::WriteBack,
    )
    .unwrap();
    // The MMIO page is mapped without rights so every access exits.
    ept.map(
        MMIO_GPA,
        MMIO_GPA,
        PageSize::Size4K,
        EptPerms::NONE,
        EptMemoryType::Uncacheable,
    )
    .unwrap();

    let basic = VmxBasic::from_msr(1 << 55);
    let written =
        write_controls(&mut hw, &basic, ControlRequest::long_mode_guest_with_ept()).unwrap();
    let pointers = ExecutionPointers {
        eptp: ept.eptp(false),
        vpid: 1,
        ..Default::default()
    };
    write_execution_pointers(&mut hw, &written, &pointers).unwrap();
    let crs = guest_control_registers((0x8000_0021, u64::MAX), (0x2000, u64::MAX));
    let guest = LongModeGuest {
        rip: 0x1000,
        rsp: 0x8000,
        cr3: 0x2000,
        ..Default::default()
    };
    write_long_mode_guest(&mut hw, &guest, &crs, 0x8000_0021).unwrap();

    // The guest executes `mov ecx, [rdx]` with rdx = MMIO_GPA + 0x30.
    let instruction = [0x8B, 0x0A];
    let mut regs = GuestRegisters::default();
    regs.gpr[1] = 0xFFFF_FFFF_FFFF_FFFF;
    regs.gpr[2] = MMIO_GPA + 0x30;
    hw.queue_exit(SimulatedExit {
        reason: 48,
        qualification: 0x181, // data read, linear address valid, final translation
        guest_physical_address: MMIO_GPA + 0x30,
        instruction_length: 2,
        registers: None,
    });
    hw.run_guest(&mut regs, false).unwrap();

    let reason = ExitReason::from_raw(fields::VM_EXIT_REASON.read(&mut hw).unwrap());
    assert_eq!(reason.basic, BasicExitReason::EptViolation);
    let q = EptViolation::from_qualification(fields::EXIT_QUALIFICATION.read(&mut hw).unwrap());
    assert!(q.read && !q.write && !q.readable);
    let gpa = fields::GUEST_PHYSICAL_ADDRESS.read(&mut hw).unwrap();
    let t = ept.translate(gpa).unwrap();
    assert_eq!(
        (t.perms, t.memory_type),
        (EptPerms::NONE, Some(EptMemoryType::Uncacheable))
    );

    let decoded = decode(&instruction).unwrap();
    assert_eq!(decoded.direction, MmioDirection::Read);
    let device_value = 0x0001_0020; // e.g. an APIC version register
    let dest = usize::from(decoded.register().unwrap().index);
    regs.gpr[dest] = decoded.apply_read(regs.gpr[dest], device_value).unwrap();
    assert_eq!(
        regs.gpr[1], 0x0001_0020,
        "32-bit destination clears the upper half"
    );

    let rip = fields::GUEST_RIP.read(&mut hw).unwrap();
    let len = fields::VM_EXIT_INSTRUCTION_LENGTH.read(&mut hw).unwrap();
    assert_eq!(u64::from(len), u64::from(decoded.len));
    fields::GUEST_RIP
        .write(&mut hw, rip + u64::from(len))
        .unwrap();
    hw.run_guest(&mut regs, true).unwrap();
    assert_eq!(fields::GUEST_RIP.read(&mut hw), Ok(0x1002));

    let dump = VmcsDump::capture(&mut hw, DEFAULT_DUMP_FIELDS).to_string();
    assert!(dump.contains("GUEST_PHYSICAL_ADDRESS (0x2400) = 0xfee00030"));
}
