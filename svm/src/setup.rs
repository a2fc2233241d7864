//! Fills a VMCB for a 64-bit long-mode guest with nested paging (APM Vol. 2, 15.5 and 15.25).

use crate::msr::{
    CR0_ET, CR0_MP, CR0_NE, CR0_PE, CR0_PG, CR0_WP, CR4_OSFXSR, CR4_OSXMMEXCPT, CR4_PAE, EFER_LMA,
    EFER_LME, EFER_NXE, EFER_SVME,
};
use crate::vmcb::control::{self, Intercept, TlbControl};
use crate::vmcb::save::{self, SegmentRegister};
use crate::vmcb::{Segment, SegmentAttributes, Vmcb};

/// 64-bit code segment attributes: type 0xB (execute/read, accessed), S, P, L, G.
pub const CODE64_ATTRIB: SegmentAttributes = SegmentAttributes(0xA9B);
/// Flat data segment attributes: type 0x3 (read/write, accessed), S, P, D/B, G.
pub const DATA_ATTRIB: SegmentAttributes = SegmentAttributes(0xC93);
/// Busy 64-bit TSS attributes: type 0xB, P.
pub const TSS_ATTRIB: SegmentAttributes = SegmentAttributes(0x08B);
/// The power-on PAT value (WB, WT, UC-, UC repeated), used as G_PAT.
pub const DEFAULT_PAT: u64 = 0x0007_0406_0007_0406;
/// DR6 architectural reset value.
pub const DR6_INIT: u64 = 0xFFFF_0FF0;
/// DR7 architectural reset value.
pub const DR7_INIT: u64 = 0x400;

/// Which optional intercepts to set; VMRUN is always intercepted (VMRUN requires it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterceptChoice {
    /// VMMCALL (the hypercall instruction).
    pub vmmcall: bool,
    /// CPUID.
    pub cpuid: bool,
    /// HLT.
    pub hlt: bool,
    /// IN/OUT through the I/O permission map.
    pub ioio: bool,
    /// RDMSR/WRMSR through the MSR permission map.
    pub msr: bool,
    /// Shutdown (guest triple fault).
    pub shutdown: bool,
    /// XSETBV.
    pub xsetbv: bool,
    /// Physical INTR (with V_INTR_MASKING, so the host keeps its interrupts).
    pub intr: bool,
    /// Physical NMI.
    pub nmi: bool,
}

impl Default for InterceptChoice {
    fn default() -> Self {
        Self {
            vmmcall: true,
            cpuid: true,
            hlt: true,
            ioio: true,
            msr: true,
            shutdown: true,
            xsetbv: true,
            intr: true,
            nmi: true,
        }
    }
}

/// What the guest starts with. Addresses are guest-physical except the three `*_pa` fields,
/// which are host-physical.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LongModeGuest {
    /// First instruction.
    pub entry: u64,
    /// Initial RSP.
    pub stack: u64,
    /// Guest CR3 (its own 4-level page tables).
    pub cr3: u64,
    /// Guest GDT base and limit (0 limit: a guest fault becomes a shutdown).
    pub gdtr: (u64, u16),
    /// Guest IDT base and limit.
    pub idtr: (u64, u16),
    /// Guest ASID, 1..number_of_asids.
    pub asid: u32,
    /// TLB flush to request on the next VMRUN.
    pub tlb_control: TlbControl,
    /// Host-physical nested page table root ([`crate::npt::Npt::ncr3`]).
    pub ncr3: u64,
    /// Host-physical I/O permission map.
    pub iopm_pa: u64,
    /// Host-physical MSR permission map.
    pub msrpm_pa: u64,
    /// Optional intercepts.
    pub intercepts: InterceptChoice,
}

/// Guest CR0: protected mode, paging, MP, ET, NE, WP (caching enabled: CD=NW=0).
pub const GUEST_CR0: u64 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
/// Guest CR4: PAE plus SSE support.
pub const GUEST_CR4: u64 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
/// Guest EFER: long mode enabled and active, NX, and SVME (VMRUN requires it set).
pub const GUEST_EFER: u64 = EFER_LME | EFER_LMA | EFER_NXE | EFER_SVME;

/// The intercepts that are always on. The guest runs with EFER.SVME set (VMRUN requires it), so it
/// could otherwise execute the SVM instructions itself: VMLOAD/VMSAVE take a *host*-physical
/// address (another guest's memory, the hypervisor's code), CLGI masks the time-slice interrupt for
/// good, INVLPGA flushes other guests' ASIDs, INVD drops the host's dirty cache lines; MWAIT into a
/// deep C-state could keep the CPU past the slice timer, RDPMC reads the host's counters, RDTSCP
/// the host's TSC_AUX (VT-x leaves RDTSCP and RDPID disabled: #UD; RDPID cannot be intercepted here,
/// so the hypervisor sets TSC_AUX to 0 at bring-up), WBINVD flushes the caches everyone shares.
/// Each of them exits (and the guest is stopped).
pub const ALWAYS_INTERCEPTED: [Intercept; 13] = [
    Intercept::MONITOR,
    Intercept::MWAIT,
    Intercept::RDPMC,
    Intercept::RDTSCP,
    Intercept::WBINVD,
    Intercept::VMRUN,
    Intercept::VMLOAD,
    Intercept::VMSAVE,
    Intercept::STGI,
    Intercept::CLGI,
    Intercept::SKINIT,
    Intercept::INVLPGA,
    Intercept::INVD,
];

/// Sets the intercepts of `choice`, plus [`ALWAYS_INTERCEPTED`].
pub fn write_intercepts(vmcb: &mut Vmcb, choice: InterceptChoice) {
    for intercept in ALWAYS_INTERCEPTED {
        vmcb.set_intercept(intercept, true);
    }
    // DR0-DR3 are not in the VMCB (DR6 and DR7 are): a guest touching them exits, so no value
    // passes from one guest to the next.
    for n in 0..4 {
        for intercept in [Intercept::dr_read(n), Intercept::dr_write(n)]
            .into_iter()
            .flatten()
        {
            vmcb.set_intercept(intercept, true);
        }
    }
    let optional = [
        (Intercept::VMMCALL, choice.vmmcall),
        (Intercept::CPUID, choice.cpuid),
        (Intercept::HLT, choice.hlt),
        (Intercept::IOIO_PROT, choice.ioio),
        (Intercept::MSR_PROT, choice.msr),
        (Intercept::SHUTDOWN, choice.shutdown),
        (Intercept::XSETBV, choice.xsetbv),
        (Intercept::INTR, choice.intr),
        (Intercept::NMI, choice.nmi),
    ];
    for (intercept, on) in optional {
        vmcb.set_intercept(intercept, on);
    }
}

/// Writes the whole VMCB for `guest`: control area (intercepts, maps, ASID, nested paging,
/// interrupt virtualization) and state-save area (flat 64-bit segments, CRs, EFER, RIP/RSP).
/// All clean bits are cleared, so the CPU reloads everything.
pub fn write_long_mode_guest(vmcb: &mut Vmcb, guest: &LongModeGuest) {
    *vmcb = Vmcb::new();
    write_intercepts(vmcb, guest.intercepts);
    vmcb.set64(control::IOPM_BASE_PA, guest.iopm_pa & !0xFFF);
    vmcb.set64(control::MSRPM_BASE_PA, guest.msrpm_pa & !0xFFF);
    vmcb.set32(control::GUEST_ASID, guest.asid);
    vmcb.set8(control::TLB_CONTROL, guest.tlb_control as u8);
    if guest.intercepts.intr {
        vmcb.set64(control::V_INTR, control::V_INTR_MASKING);
    }
    vmcb.set64(control::NP_CONTROL, control::NP_ENABLE);
    vmcb.set64(control::N_CR3, guest.ncr3);
    vmcb.set32(control::VMCB_CLEAN, 0);

    let flat = |selector, attrib| Segment {
        selector,
        attrib,
        limit: 0xFFFF_FFFF,
        base: 0,
    };
    vmcb.set_segment(SegmentRegister::Cs, flat(0x08, CODE64_ATTRIB));
    for seg in [
        SegmentRegister::Ss,
        SegmentRegister::Ds,
        SegmentRegister::Es,
        SegmentRegister::Fs,
        SegmentRegister::Gs,
    ] {
        vmcb.set_segment(seg, flat(0x10, DATA_ATTRIB));
    }
    vmcb.set_segment(
        SegmentRegister::Tr,
        Segment {
            selector: 0x18,
            attrib: TSS_ATTRIB,
            limit: 0x67,
            base: 0,
        },
    );
    vmcb.set_segment(SegmentRegister::Ldtr, Segment::default());
    let table = |(base, limit): (u64, u16)| Segment {
        selector: 0,
        attrib: SegmentAttributes(0),
        limit: u32::from(limit),
        base,
    };
    vmcb.set_segment(SegmentRegister::Gdtr, table(guest.gdtr));
    vmcb.set_segment(SegmentRegister::Idtr, table(guest.idtr));

    vmcb.set8(save::CPL, 0);
    vmcb.set64(save::EFER, GUEST_EFER);
    vmcb.set64(save::CR0, GUEST_CR0);
    vmcb.set64(save::CR3, guest.cr3);
    vmcb.set64(save::CR4, GUEST_CR4);
    vmcb.set64(save::DR6, DR6_INIT);
    vmcb.set64(save::DR7, DR7_INIT);
    vmcb.set64(save::RFLAGS, 0x2);
    vmcb.set64(save::RIP, guest.entry);
    vmcb.set64(save::RSP, guest.stack);
    vmcb.set64(save::G_PAT, DEFAULT_PAT);
}

#[cfg(test)]
#[path = "setup_tests.rs"]
mod tests;
