use super::*;
use crate::controls::{entry, exit, pin, primary, secondary};
use crate::hw::{HwOp, SoftVmcs};

// Capability MSR values shaped like a Skylake CPU (allowed0 low, allowed1 high).
const TRUE_PIN: u64 = 0x0000_007F_0000_0016;
const TRUE_PROC: u64 = 0xFFF9_FFFE_0400_6172;
const PROC2: u64 = 0x0055_3CFE_0000_0000;
const TRUE_EXIT: u64 = 0x01FF_FFFF_0003_6DFB;
const TRUE_ENTRY: u64 = 0x0003_FFFF_0000_11FB;
const CR0_FIXED: (u64, u64) = (0x8000_0021, 0xFFFF_FFFF);
const CR4_FIXED: (u64, u64) = (0x2000, 0x3727FF);

fn cpu() -> SoftVmcs {
    let mut hw = SoftVmcs::new()
        .with_msr(msr::IA32_VMX_TRUE_PINBASED_CTLS, TRUE_PIN)
        .with_msr(msr::IA32_VMX_TRUE_PROCBASED_CTLS, TRUE_PROC)
        .with_msr(msr::IA32_VMX_PROCBASED_CTLS2, PROC2)
        .with_msr(msr::IA32_VMX_TRUE_EXIT_CTLS, TRUE_EXIT)
        .with_msr(msr::IA32_VMX_TRUE_ENTRY_CTLS, TRUE_ENTRY);
    hw.vmxon(0x1000).unwrap();
    hw.vmclear(0x2000).unwrap();
    hw.vmptrld(0x2000).unwrap();
    hw
}

fn basic() -> VmxBasic {
    VmxBasic::from_msr(0x00DA_0400_0000_0004)
}

#[test]
fn controls_are_adjusted_and_written() {
    let mut hw = cpu();
    let written = write_controls(
        &mut hw,
        &basic(),
        ControlRequest::long_mode_guest_with_ept(),
    )
    .unwrap();
    assert_eq!(
        written.pin,
        0x16 | pin::EXTERNAL_INTERRUPT_EXITING | pin::NMI_EXITING
    );
    assert_ne!(written.primary & primary::ACTIVATE_SECONDARY_CONTROLS, 0);
    assert_ne!(written.secondary & secondary::WBINVD_EXITING, 0);
    for bit in [
        primary::CR8_LOAD_EXITING,
        primary::CR8_STORE_EXITING,
        primary::MOV_DR_EXITING,
        primary::MWAIT_EXITING,
        primary::MONITOR_EXITING,
        primary::RDPMC_EXITING,
    ] {
        assert_ne!(
            written.primary & bit,
            0,
            "CR8, DR, MWAIT, MONITOR and RDPMC exit ({bit:#x})"
        );
    }
    assert_ne!(written.primary & 0x0400_6172, 0, "required ones kept");
    assert_eq!(
        written.secondary,
        secondary::ENABLE_EPT | secondary::ENABLE_VPID | secondary::WBINVD_EXITING
    );
    assert_ne!(written.exit & exit::HOST_ADDRESS_SPACE_SIZE, 0);
    assert_ne!(written.entry & entry::IA32E_MODE_GUEST, 0);
    assert_eq!(hw.field(0x4000), Some(u64::from(written.pin)));
    assert_eq!(hw.field(0x4002), Some(u64::from(written.primary)));
    assert_eq!(hw.field(0x401E), Some(u64::from(written.secondary)));
    assert_eq!(hw.field(0x400C), Some(u64::from(written.exit)));
    assert_eq!(hw.field(0x4012), Some(u64::from(written.entry)));
}

#[test]
fn unsupported_control_is_an_error_naming_the_field() {
    let mut hw = cpu();
    let request = ControlRequest {
        pin: pin::POSTED_INTERRUPTS,
        ..ControlRequest::long_mode_guest_with_ept()
    };
    let err = write_controls(&mut hw, &basic(), request).unwrap_err();
    let SetupError::Control(e) = err else {
        panic!("expected a control error")
    };
    assert_eq!(e.kind, Some(ControlKind::PinBased));
    assert_eq!(e.unsupported, pin::POSTED_INTERRUPTS);
    assert_eq!(
        hw.field(0x4000),
        None,
        "nothing written after a failed adjustment"
    );
}

#[test]
fn guest_control_registers_respect_fixed_bits_and_hide_vmxe() {
    let crs = guest_control_registers(CR0_FIXED, CR4_FIXED);
    assert_eq!(crs.cr0, 0x8000_0021);
    assert_eq!(crs.cr4, 0x2020);
    assert_eq!(crs.cr4_shadow, 0x20);
}

#[test]
fn long_mode_guest_state_is_written() {
    let mut hw = cpu();
    let guest = LongModeGuest {
        rip: 0x40_0000,
        rsp: 0x80_0000,
        cr3: 0x10_0000,
        gdtr: (0x5000, 0x1F),
        ..Default::default()
    };
    let crs = guest_control_registers(CR0_FIXED, CR4_FIXED);
    write_long_mode_guest(&mut hw, &guest, &crs, CR0_FIXED.0).unwrap();
    assert_eq!(hw.field(f::GUEST_RIP.encoding()), Some(0x40_0000));
    assert_eq!(hw.field(f::GUEST_CR3.encoding()), Some(0x10_0000));
    assert_eq!(hw.field(f::GUEST_CS_ACCESS_RIGHTS.encoding()), Some(0xA09B));
    assert_eq!(
        hw.field(f::GUEST_LDTR_ACCESS_RIGHTS.encoding()),
        Some(1 << 16)
    );
    assert_eq!(hw.field(f::GUEST_TR_ACCESS_RIGHTS.encoding()), Some(0x8B));
    assert_eq!(hw.field(f::VMCS_LINK_POINTER.encoding()), Some(u64::MAX));
    assert_eq!(hw.field(f::GUEST_GDTR_LIMIT.encoding()), Some(0x1F));
    assert_eq!(hw.field(f::CR4_READ_SHADOW.encoding()), Some(0x20));
    // Only the allow-listed CR4 bits are the guest's: VMXE, protection keys, CET, Key Locker
    // (19), UINTR (25), FRED (32) and any bit not yet defined change only through an exit.
    let mask = hw.field(f::CR4_GUEST_HOST_MASK.encoding()).unwrap();
    assert_eq!(mask, !msr::CR4_GUEST_OWNED);
    for bit in [0, 1, 6, 12, 13, 14, 19, 22, 23, 24, 25, 27, 28, 32, 63] {
        assert_ne!(mask & (1u64 << bit), 0, "CR4 bit {bit}");
    }
    for bit in [5, 9, 10, 16, 17, 18, 20, 21] {
        assert_eq!(mask & (1u64 << bit), 0, "CR4 bit {bit}");
    }
    let efer = hw.field(f::GUEST_IA32_EFER.encoding()).unwrap();
    assert_eq!(
        efer & (msr::EFER_LME | msr::EFER_LMA),
        msr::EFER_LME | msr::EFER_LMA
    );
}

#[test]
fn host_state_strips_rpl_and_ti() {
    let mut hw = cpu();
    let host = HostState {
        cs: 0x08,
        ss: 0x13,
        tr: 0x28,
        rip: 0xFFFF_8000_0010_0000,
        rsp: 0x9000,
        ..Default::default()
    };
    write_host_state(&mut hw, &host).unwrap();
    assert_eq!(hw.field(f::HOST_SS_SELECTOR.encoding()), Some(0x10));
    assert_eq!(hw.field(f::HOST_TR_SELECTOR.encoding()), Some(0x28));
    assert_eq!(
        hw.field(f::HOST_RIP.encoding()),
        Some(0xFFFF_8000_0010_0000)
    );
}

#[test]
fn pointers_follow_the_written_controls() {
    let mut hw = cpu();
    let written = ControlRequest {
        primary: primary::USE_MSR_BITMAPS,
        secondary: secondary::ENABLE_EPT,
        ..Default::default()
    };
    let pointers = ExecutionPointers {
        eptp: 0x3000 | 0x1E,
        vpid: 1,
        io_bitmap_a: 0x4000,
        io_bitmap_b: 0x5000,
        msr_bitmap: 0x6000,
    };
    write_execution_pointers(&mut hw, &written, &pointers).unwrap();
    assert_eq!(hw.field(f::EPT_POINTER.encoding()), Some(0x301E));
    assert_eq!(hw.field(f::MSR_BITMAPS.encoding()), Some(0x6000));
    assert_eq!(hw.field(f::VPID.encoding()), None);
    assert_eq!(hw.field(f::IO_BITMAP_A.encoding()), None);
}

#[test]
fn failed_vmwrite_names_the_field() {
    let mut hw = cpu();
    hw.fail_next_valid(HwOp::Vmwrite, 12);
    let err = write_host_state(&mut hw, &HostState::default()).unwrap_err();
    assert_eq!(
        err,
        SetupError::Write {
            field: f::HOST_CS_SELECTOR.encoding(),
            error: VmxInstructionError::FailValid(12)
        }
    );
}

#[test]
fn the_guest_reads_its_own_cr4_bits_and_the_shadow_of_the_hosts() {
    let crs = guest_control_registers(CR0_FIXED, CR4_FIXED);
    let osxsave = 1 << 18;
    // VMXE is set in the guest's CR4 and hidden by the shadow; OSXSAVE is the guest's own.
    let mask = msr::CR4_HOST_OWNED;
    assert_eq!(
        guest_view_of_cr(crs.cr4, mask, crs.cr4_shadow),
        crs.cr4_shadow
    );
    assert_eq!(
        guest_view_of_cr(crs.cr4 | osxsave, mask, crs.cr4_shadow) & (osxsave | msr::CR4_VMXE),
        osxsave
    );
    // A bit in the mask reads as the shadow says, whatever the guest-state field holds.
    assert_eq!(guest_view_of_cr(0, osxsave, osxsave), osxsave);
    assert_eq!(guest_view_of_cr(osxsave, osxsave, 0), 0);
}
