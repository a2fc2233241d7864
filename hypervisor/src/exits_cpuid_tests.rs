//! CPUID fields that report the guest's own state: CPUID.1:ECX.OSXSAVE (a copy of its CR4.OSXSAVE)
//! and the XSAVE area sizes of leaf 0Dh (its XCR0), through the exit handler as a backend calls it.

use super::*;
use crate::fake_vcpu::{FakeVcpu, Lines};
use crate::vm::GuestState;
use alloc::vec;

const CPUID1_ECX_OSXSAVE: u64 = 1 << 27;

/// A host with XSAVE (CPUID.1:ECX[26]) and OSXSAVE on, XCR0 bits x87, SSE, AVX, AVX-512 and PKRU
/// (leaf 0Dh sizes: 2696 bytes for them all, AVX's 256 bytes at offset 576).
fn host(leaf: u32, subleaf: u32) -> [u32; 4] {
    match (leaf, subleaf) {
        (1, _) => [0x906A0, 0, 0x7FFA_F3BF, 0xBFEB_FBFF],
        (0xD, 0) => [0x2E7, 2696, 2696, 0],
        (0xD, 1) => [0x1F, 2712, 0x1900, 0],
        (0xD, 2) => [256, 576, 0, 0],
        (0xD, 5..=7) => [64, 832, 0, 0],
        (0xD, 9) => [8, 2688, 0, 0],
        _ => [0; 4],
    }
}

/// RAX, RBX, RCX, RDX after the guest's CPUID of `leaf`/`subleaf` with CR4.OSXSAVE `osxsave`.
fn guest_cpuid(
    vcpu: &mut FakeVcpu,
    host: &dyn Fn(u32, u32) -> [u32; 4],
    leaf: u32,
    subleaf: u32,
    osxsave: bool,
) -> [u64; 4] {
    let mut log = Lines::default();
    let mut services = crate::host_services::fail_closed("no policy loaded", || 0);
    let mut env = ExitEnv {
        log: &mut log,
        host_cpuid: host,
        xcr0_allowed: 0x207,
        services: &mut services,
    };
    let mut guest = GuestState::new("g");
    let exit = VmExit::Cpuid {
        leaf,
        subleaf,
        osxsave,
    };
    assert_eq!(
        handle_exit(vcpu, exit, &mut guest, &mut env),
        ExitAction::Resume
    );
    [RAX, RBX, RCX, RDX].map(|r| vcpu.regs.gpr[r])
}

#[test]
fn osxsave_is_the_guests_cr4_bit_not_the_hosts() {
    let mut vcpu = FakeVcpu::new(0x1000, vec![]);
    // A guest starts with CR4.OSXSAVE clear: XGETBV/XSETBV would #UD.
    assert_eq!(
        guest_cpuid(&mut vcpu, &host, 1, 0, false)[2] & CPUID1_ECX_OSXSAVE,
        0
    );
    assert_ne!(
        guest_cpuid(&mut vcpu, &host, 1, 0, true)[2] & CPUID1_ECX_OSXSAVE,
        0
    );
    // The rest of ECX is the filtered host value either way (XSAVE itself stays listed).
    let off = guest_cpuid(&mut vcpu, &host, 1, 0, false)[2];
    let on = guest_cpuid(&mut vcpu, &host, 1, 0, true)[2];
    assert_eq!(off | CPUID1_ECX_OSXSAVE, on);
    assert_ne!(off & (1 << 26), 0, "XSAVE");
    // Without XSAVE on the host, CR4.OSXSAVE cannot be set: never reported.
    let no_xsave = |leaf: u32, subleaf: u32| {
        let mut out = host(leaf, subleaf);
        if leaf == 1 {
            out[2] &= !(3 << 26);
        }
        out
    };
    assert_eq!(
        guest_cpuid(&mut vcpu, &no_xsave, 1, 0, true)[2] & (3 << 26),
        0
    );
}

#[test]
fn xsave_area_sizes_follow_the_guests_xcr0() {
    let mut vcpu = FakeVcpu::new(0x1000, vec![]);
    // XCR0 = x87 (as a guest starts): the legacy region and the header, 576 bytes; ECX: every
    // component the guest may enable (x87, SSE, AVX), not the host's AVX-512 and PKRU.
    assert_eq!(
        guest_cpuid(&mut vcpu, &host, 0xD, 0, true),
        [7, 576, 832, 0]
    );
    for (xcr0, size) in [(3, 576), (7, 832), (1, 576)] {
        let mut log = Lines::default();
        let mut services = crate::host_services::fail_closed("no policy loaded", || 0);
        let mut env = ExitEnv {
            log: &mut log,
            host_cpuid: &host,
            xcr0_allowed: 0x207,
            services: &mut services,
        };
        let xsetbv = VmExit::Xsetbv {
            xcr: 0,
            value: xcr0,
        };
        handle_exit(&mut vcpu, xsetbv, &mut GuestState::new("g"), &mut env);
        assert_eq!(vcpu.guest_xcr0(), xcr0);
        // Whatever CR4.OSXSAVE says: XCR0 keeps its value while OSXSAVE is clear.
        for osxsave in [true, false] {
            let out = guest_cpuid(&mut vcpu, &host, 0xD, 0, osxsave);
            assert_eq!(out, [7, size, 832, 0], "XCR0 {xcr0:#x}");
        }
    }
    // A host without AVX: 576 bytes is all a guest may enable.
    let no_avx = |leaf: u32, subleaf: u32| match (leaf, subleaf) {
        (0xD, 0) => [3, 576, 576, 0],
        (0xD, 2) => [0; 4],
        _ => host(leaf, subleaf),
    };
    assert_eq!(
        guest_cpuid(&mut vcpu, &no_avx, 0xD, 0, true),
        [3, 576, 576, 0]
    );
    // Sub-leaves other than 0 keep the host's answer (AVX's offset and size are the host's).
    assert_eq!(
        guest_cpuid(&mut vcpu, &host, 0xD, 2, true),
        [256, 576, 0, 0]
    );
}

#[test]
fn a_host_without_xsave_reports_no_xsave_area() {
    let state = CpuidGuestState {
        osxsave: false,
        xcr0: 1,
    };
    let none = |_: u32, _: u32| [0u32; 4];
    assert_eq!(filtered_cpuid(0xD, 0, state, &none), [0; 4]);
}

#[test]
fn components_and_supervisor_state_the_guest_cannot_use_are_not_listed() {
    let mut vcpu = FakeVcpu::new(0x1000, vec![]);
    vcpu.set_guest_xcr0(7);
    // Sub-leaf 1: XSAVEOPT, XSAVEC and XGETBV1 stay; XSAVES and XFD go; the XCR0 | XSS area is
    // the guest's XCR0's; no supervisor component.
    assert_eq!(
        guest_cpuid(&mut vcpu, &host, 0xD, 1, true),
        [0x7, 832, 0, 0]
    );
    // AVX-512 (5-7) and PKRU (9) cannot be enabled by a guest: no area; AVX (2) keeps its own.
    for subleaf in [5, 6, 7, 9, 63, 64, 0xFFFF_FFFF] {
        assert_eq!(
            guest_cpuid(&mut vcpu, &host, 0xD, subleaf, true),
            [0; 4],
            "sub-leaf {subleaf}"
        );
    }
    assert_eq!(
        guest_cpuid(&mut vcpu, &host, 0xD, 2, true),
        [256, 576, 0, 0]
    );
}
