extern crate std;
use super::*;
use crate::consistency::{check_vmrun_consistency, CpuLimits, Violation};
use std::string::ToString;

type Breaker = fn(&mut Vmcb);

fn guest() -> LongModeGuest {
    LongModeGuest {
        entry: 0x40_0000,
        stack: 0x80_0000,
        cr3: 0x10_0000,
        gdtr: (0x2000, 0x1F),
        idtr: (0x3000, 0xFFF),
        asid: 1,
        tlb_control: TlbControl::FlushGuest,
        ncr3: 0x7_0000_0000,
        iopm_pa: 0x5000,
        msrpm_pa: 0x9000,
        intercepts: InterceptChoice::default(),
    }
}

fn filled() -> Vmcb {
    let mut vmcb = Vmcb::new();
    write_long_mode_guest(&mut vmcb, &guest());
    vmcb
}

#[test]
fn long_mode_guest_fields_are_written() {
    let vmcb = filled();
    assert_eq!(vmcb.get64(save::RIP), 0x40_0000);
    assert_eq!(vmcb.get64(save::RSP), 0x80_0000);
    assert_eq!(vmcb.get64(save::CR3), 0x10_0000);
    assert_eq!(vmcb.get64(save::EFER), 0x1D00);
    assert_eq!(vmcb.get64(save::CR0), 0x8001_0033);
    assert_eq!(vmcb.get64(control::N_CR3), 0x7_0000_0000);
    assert_eq!(vmcb.get64(control::NP_CONTROL) & 1, 1);
    assert_eq!(vmcb.get32(control::GUEST_ASID), 1);
    assert_eq!(vmcb.get8(control::TLB_CONTROL), 3);
    assert_eq!(vmcb.get64(control::IOPM_BASE_PA), 0x5000);
    assert_eq!(vmcb.get64(control::MSRPM_BASE_PA), 0x9000);
    let cs = vmcb.segment(SegmentRegister::Cs);
    assert!(cs.attrib.long() && !cs.attrib.default_big());
    assert_eq!(vmcb.segment(SegmentRegister::Idtr).limit, 0xFFF);
    assert_eq!(vmcb.segment(SegmentRegister::Tr).attrib, TSS_ATTRIB);
    assert_eq!(vmcb.get64(control::V_INTR), control::V_INTR_MASKING);
}

#[test]
fn default_intercepts_are_set_and_optional_ones_can_be_left_out() {
    let vmcb = filled();
    for i in [
        Intercept::VMRUN,
        Intercept::VMMCALL,
        Intercept::CPUID,
        Intercept::HLT,
        Intercept::IOIO_PROT,
        Intercept::MSR_PROT,
        Intercept::SHUTDOWN,
        Intercept::XSETBV,
        Intercept::INTR,
        Intercept::NMI,
    ] {
        assert!(vmcb.intercepts(i), "{i:?}");
    }
    assert!(!vmcb.intercepts(Intercept::RDTSC));
    // The SVM instructions a guest could otherwise run on host-physical memory or the GIF.
    for i in ALWAYS_INTERCEPTED {
        assert!(vmcb.intercepts(i), "{i:?}");
    }
    for i in [
        Intercept::VMLOAD,
        Intercept::VMSAVE,
        Intercept::CLGI,
        Intercept::STGI,
    ] {
        assert!(ALWAYS_INTERCEPTED.contains(&i), "{i:?}");
    }
    let mut g = guest();
    g.intercepts.hlt = false;
    g.intercepts.intr = false;
    let mut vmcb = Vmcb::new();
    write_long_mode_guest(&mut vmcb, &g);
    assert!(!vmcb.intercepts(Intercept::HLT));
    assert!(!vmcb.intercepts(Intercept::INTR));
    assert!(vmcb.intercepts(Intercept::VMRUN) && vmcb.intercepts(Intercept::VMLOAD));
    assert_eq!(vmcb.get64(control::V_INTR), 0);
}

#[test]
fn a_filled_vmcb_passes_every_check() {
    assert_eq!(check_vmrun_consistency(&filled(), CpuLimits::default()), []);
}

#[test]
fn each_broken_rule_is_reported() {
    let cpu = CpuLimits::default();
    let cases: [(Breaker, Violation); 12] = [
        (
            |v| v.set64(save::EFER, GUEST_EFER & !EFER_SVME),
            Violation::EferSvmeClear,
        ),
        (
            |v| v.set64(save::CR0, GUEST_CR0 | crate::msr::CR0_NW),
            Violation::Cr0NwWithoutCd,
        ),
        (
            |v| v.set64(save::CR0, GUEST_CR0 | 1 << 32),
            Violation::Cr0HighBits(GUEST_CR0 | 1 << 32),
        ),
        (
            |v| v.set64(save::CR4, GUEST_CR4 & !CR4_PAE),
            Violation::LongModeWithoutPae,
        ),
        (
            |v| v.set64(save::CR0, GUEST_CR0 & !CR0_PE),
            Violation::LongModeWithoutProtectedMode,
        ),
        (
            |v| {
                let mut cs = v.segment(SegmentRegister::Cs);
                cs.attrib = SegmentAttributes(cs.attrib.0 | 1 << 10);
                v.set_segment(SegmentRegister::Cs, cs);
            },
            Violation::CodeSegmentLongAndDefaultBig,
        ),
        (
            |v| v.set_intercept(Intercept::VMRUN, false),
            Violation::VmrunNotIntercepted,
        ),
        (|v| v.set32(control::GUEST_ASID, 0), Violation::AsidZero),
        (
            |v| v.set64(control::EVENTINJ, 1 << 31 | 3 << 8 | 2),
            Violation::IllegalEventInjection(1 << 31 | 3 << 8 | 2),
        ),
        (
            |v| v.set64(control::IOPM_BASE_PA, 0xFFFF_FFFF_E000),
            Violation::IopmOutOfRange(0xFFFF_FFFF_E000),
        ),
        (
            |v| v.set64(save::EFER, GUEST_EFER | 1 << 40),
            Violation::EferReservedBits(GUEST_EFER | 1 << 40),
        ),
        (
            |v| v.set64(save::DR7, 1 << 40),
            Violation::Dr7HighBits(1 << 40),
        ),
    ];
    for (breaker, expected) in cases {
        let mut vmcb = filled();
        breaker(&mut vmcb);
        assert_eq!(check_vmrun_consistency(&vmcb, cpu), [expected]);
    }
}

#[test]
fn limits_of_the_cpu_matter() {
    let mut vmcb = filled();
    vmcb.set64(save::CR3, 1 << 45);
    assert_eq!(check_vmrun_consistency(&vmcb, CpuLimits::default()), []);
    let narrow = CpuLimits {
        max_physical_address_bits: 40,
        long_mode: true,
    };
    assert_eq!(
        check_vmrun_consistency(&vmcb, narrow),
        [Violation::Cr3ReservedBits(1 << 45)]
    );
    let legacy = CpuLimits {
        max_physical_address_bits: 48,
        long_mode: false,
    };
    assert!(check_vmrun_consistency(&filled(), legacy).contains(&Violation::LongModeUnsupported));
    // A pending NMI-type event and an injected #PF are legal.
    let mut ok = filled();
    ok.set64(control::EVENTINJ, 1 << 31 | 1 << 11 | 3 << 8 | 14);
    assert_eq!(check_vmrun_consistency(&ok, CpuLimits::default()), []);
    assert_eq!(Violation::AsidZero.to_string(), "guest ASID is 0");
}
