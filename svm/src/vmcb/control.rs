//! Control-area fields (APM Vol. 2, Table B-1) and intercept bits.

use super::{Field16, Field32, Field64, Field8};

/// CR0..CR15 read intercepts (bits 15:0) and write intercepts (bits 31:16).
pub const INTERCEPT_CR: Field32 = Field32::new(0x000, "INTERCEPT_CR");
/// DR0..DR15 read intercepts (bits 15:0) and write intercepts (bits 31:16).
pub const INTERCEPT_DR: Field32 = Field32::new(0x004, "INTERCEPT_DR");
/// Exception intercepts, one bit per vector.
pub const INTERCEPT_EXCEPTIONS: Field32 = Field32::new(0x008, "INTERCEPT_EXCEPTIONS");
/// Miscellaneous intercept vector 1.
pub const INTERCEPT_MISC1: Field32 = Field32::new(0x00C, "INTERCEPT_MISC1");
/// Miscellaneous intercept vector 2.
pub const INTERCEPT_MISC2: Field32 = Field32::new(0x010, "INTERCEPT_MISC2");
/// Miscellaneous intercept vector 3 (INVLPGB, INVPCID, MCOMMIT, TLBSYNC).
pub const INTERCEPT_MISC3: Field32 = Field32::new(0x014, "INTERCEPT_MISC3");
/// PAUSE filter threshold.
pub const PAUSE_FILTER_THRESHOLD: Field16 = Field16::new(0x03C, "PAUSE_FILTER_THRESHOLD");
/// PAUSE filter count.
pub const PAUSE_FILTER_COUNT: Field16 = Field16::new(0x03E, "PAUSE_FILTER_COUNT");
/// Physical base of the I/O permission map (bits 11:0 ignored).
pub const IOPM_BASE_PA: Field64 = Field64::new(0x040, "IOPM_BASE_PA");
/// Physical base of the MSR permission map (bits 11:0 ignored).
pub const MSRPM_BASE_PA: Field64 = Field64::new(0x048, "MSRPM_BASE_PA");
/// Added to the TSC while the guest runs.
pub const TSC_OFFSET: Field64 = Field64::new(0x050, "TSC_OFFSET");
/// Guest ASID (bits 31:0 of the quadword at 0x58).
pub const GUEST_ASID: Field32 = Field32::new(0x058, "GUEST_ASID");
/// TLB_CONTROL (bits 39:32 of the quadword at 0x58).
pub const TLB_CONTROL: Field8 = Field8::new(0x05C, "TLB_CONTROL");
/// V_TPR, V_IRQ, VGIF, V_NMI, V_INTR_PRIO, V_IGN_TPR, V_INTR_MASKING, AVIC enable, V_INTR_VECTOR.
pub const V_INTR: Field64 = Field64::new(0x060, "V_INTR");
/// INTERRUPT_SHADOW (bit 0), GUEST_INTERRUPT_MASK (bit 1).
pub const INTERRUPT_SHADOW: Field64 = Field64::new(0x068, "INTERRUPT_SHADOW");
/// EXITCODE.
pub const EXITCODE: Field64 = Field64::new(0x070, "EXITCODE");
/// EXITINFO1.
pub const EXITINFO1: Field64 = Field64::new(0x078, "EXITINFO1");
/// EXITINFO2.
pub const EXITINFO2: Field64 = Field64::new(0x080, "EXITINFO2");
/// EXITINTINFO: the event being delivered when the #VMEXIT happened.
pub const EXITINTINFO: Field64 = Field64::new(0x088, "EXITINTINFO");
/// NP_ENABLE (bit 0), SEV (bit 1), SEV-ES (bit 2), GMET (bit 3), ...
pub const NP_CONTROL: Field64 = Field64::new(0x090, "NP_ENABLE");
/// AVIC APIC_BAR.
pub const AVIC_APIC_BAR: Field64 = Field64::new(0x098, "AVIC_APIC_BAR");
/// Guest physical address of the GHCB (SEV-ES).
pub const GHCB_PA: Field64 = Field64::new(0x0A0, "GHCB_PA");
/// EVENTINJ: an event to inject on VMRUN.
pub const EVENTINJ: Field64 = Field64::new(0x0A8, "EVENTINJ");
/// N_CR3: the nested page table root.
pub const N_CR3: Field64 = Field64::new(0x0B0, "N_CR3");
/// LBR virtualization enable (bit 0), virtualized VMSAVE/VMLOAD (bit 1).
pub const VIRT_EXT: Field64 = Field64::new(0x0B8, "VIRT_EXT");
/// VMCB clean bits (bits 31:0).
pub const VMCB_CLEAN: Field32 = Field32::new(0x0C0, "VMCB_CLEAN");
/// nRIP: next sequential RIP on intercepted instructions (with NRIPS).
pub const NRIP: Field64 = Field64::new(0x0C8, "NRIP");
/// Number of guest instruction bytes fetched (decode assists).
pub const GUEST_INSTRUCTION_BYTE_COUNT: Field8 = Field8::new(0x0D0, "GUEST_INSTR_BYTES_COUNT");
/// Offset of the 15 guest instruction bytes.
pub const GUEST_INSTRUCTION_BYTES_OFFSET: u16 = 0x0D1;
/// AVIC APIC backing page pointer.
pub const AVIC_BACKING_PAGE: Field64 = Field64::new(0x0E0, "AVIC_APIC_BACKING_PAGE");
/// AVIC logical table pointer.
pub const AVIC_LOGICAL_TABLE: Field64 = Field64::new(0x0F0, "AVIC_LOGICAL_TABLE");
/// AVIC physical table pointer and max index.
pub const AVIC_PHYSICAL_TABLE: Field64 = Field64::new(0x0F8, "AVIC_PHYSICAL_TABLE");
/// VMSA pointer (SEV-ES).
pub const VMSA_PA: Field64 = Field64::new(0x108, "VMSA_PA");

/// NP_CONTROL bit 0: nested paging enable.
pub const NP_ENABLE: u64 = 1 << 0;

/// V_INTR bits 7:0: virtual TPR.
pub const V_TPR_MASK: u64 = 0xFF;
/// V_INTR bit 8: a virtual interrupt is pending.
pub const V_IRQ: u64 = 1 << 8;
/// V_INTR bit 9: virtual GIF.
pub const V_GIF: u64 = 1 << 9;
/// V_INTR bits 19:16: priority of the virtual interrupt.
pub const V_INTR_PRIO_SHIFT: u32 = 16;
/// V_INTR bit 20: ignore the virtual TPR.
pub const V_IGN_TPR: u64 = 1 << 20;
/// V_INTR bit 24: virtualize TPR and RFLAGS.IF masking of physical interrupts.
pub const V_INTR_MASKING: u64 = 1 << 24;
/// V_INTR bit 31: AVIC enable.
pub const AVIC_ENABLE: u64 = 1 << 31;
/// V_INTR bits 39:32: vector of the virtual interrupt.
pub const V_INTR_VECTOR_SHIFT: u32 = 32;

/// INTERRUPT_SHADOW bit 0: the guest is in an interrupt shadow.
pub const IN_INTERRUPT_SHADOW: u64 = 1 << 0;
/// INTERRUPT_SHADOW bit 1: guest RFLAGS.IF as of the #VMEXIT.
pub const GUEST_INTERRUPT_MASK: u64 = 1 << 1;

/// TLB_CONTROL values (APM 15.16.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlbControl {
    /// 0: no flush.
    DoNothing = 0,
    /// 1: flush the entire TLB (all ASIDs).
    FlushAll = 1,
    /// 3: flush this guest's ASID (needs FlushByAsid).
    FlushGuest = 3,
    /// 7: flush this guest's non-global entries (needs FlushByAsid).
    FlushGuestNonGlobal = 7,
}

/// VMCB clean bits (APM 15.15.3): a set bit says the CPU may use its cached copy.
pub mod clean {
    /// Intercept vectors, TSC offset, pause filter.
    pub const INTERCEPTS: u32 = 1 << 0;
    /// IOPM_BASE_PA, MSRPM_BASE_PA.
    pub const IOPM: u32 = 1 << 1;
    /// ASID.
    pub const ASID: u32 = 1 << 2;
    /// V_TPR .. V_INTR_VECTOR.
    pub const TPR: u32 = 1 << 3;
    /// N_CR3, G_PAT.
    pub const NP: u32 = 1 << 4;
    /// CR0, CR3, CR4, EFER.
    pub const CRX: u32 = 1 << 5;
    /// DR6, DR7.
    pub const DRX: u32 = 1 << 6;
    /// GDT/IDT base and limit.
    pub const DT: u32 = 1 << 7;
    /// CS/DS/SS/ES and CPL.
    pub const SEG: u32 = 1 << 8;
    /// CR2.
    pub const CR2: u32 = 1 << 9;
    /// DBGCTL and LBR MSRs.
    pub const LBR: u32 = 1 << 10;
    /// AVIC fields.
    pub const AVIC: u32 = 1 << 11;
}

/// One intercept bit: a bit in one of the 32-bit intercept vectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Intercept {
    /// The vector holding the bit.
    pub word: Field32,
    /// Bit number 0..=31.
    pub bit: u8,
}

impl Intercept {
    const fn misc1(bit: u8) -> Self {
        Self {
            word: INTERCEPT_MISC1,
            bit,
        }
    }
    const fn misc2(bit: u8) -> Self {
        Self {
            word: INTERCEPT_MISC2,
            bit,
        }
    }
    /// Read of CRn (n < 16).
    pub fn cr_read(n: u8) -> Option<Self> {
        (n < 16).then_some(Self {
            word: INTERCEPT_CR,
            bit: n,
        })
    }
    /// Write of CRn (n < 16).
    pub fn cr_write(n: u8) -> Option<Self> {
        (n < 16).then_some(Self {
            word: INTERCEPT_CR,
            bit: n + 16,
        })
    }
    /// Read of DRn (n < 16).
    pub fn dr_read(n: u8) -> Option<Self> {
        (n < 16).then_some(Self {
            word: INTERCEPT_DR,
            bit: n,
        })
    }
    /// Write of DRn (n < 16).
    pub fn dr_write(n: u8) -> Option<Self> {
        (n < 16).then_some(Self {
            word: INTERCEPT_DR,
            bit: n + 16,
        })
    }
    /// Exception `vector` (< 32).
    pub fn exception(vector: u8) -> Option<Self> {
        (vector < 32).then_some(Self {
            word: INTERCEPT_EXCEPTIONS,
            bit: vector,
        })
    }

    /// Physical maskable interrupt.
    pub const INTR: Self = Self::misc1(0);
    /// Physical NMI.
    pub const NMI: Self = Self::misc1(1);
    /// Physical SMI.
    pub const SMI: Self = Self::misc1(2);
    /// INIT.
    pub const INIT: Self = Self::misc1(3);
    /// Virtual interrupt.
    pub const VINTR: Self = Self::misc1(4);
    /// CR0 writes changing bits other than TS or MP.
    pub const CR0_SEL_WRITE: Self = Self::misc1(5);
    /// SIDT.
    pub const IDTR_READ: Self = Self::misc1(6);
    /// SGDT.
    pub const GDTR_READ: Self = Self::misc1(7);
    /// SLDT.
    pub const LDTR_READ: Self = Self::misc1(8);
    /// STR.
    pub const TR_READ: Self = Self::misc1(9);
    /// LIDT.
    pub const IDTR_WRITE: Self = Self::misc1(10);
    /// LGDT.
    pub const GDTR_WRITE: Self = Self::misc1(11);
    /// LLDT.
    pub const LDTR_WRITE: Self = Self::misc1(12);
    /// LTR.
    pub const TR_WRITE: Self = Self::misc1(13);
    /// RDTSC.
    pub const RDTSC: Self = Self::misc1(14);
    /// RDPMC.
    pub const RDPMC: Self = Self::misc1(15);
    /// PUSHF.
    pub const PUSHF: Self = Self::misc1(16);
    /// POPF.
    pub const POPF: Self = Self::misc1(17);
    /// CPUID.
    pub const CPUID: Self = Self::misc1(18);
    /// RSM.
    pub const RSM: Self = Self::misc1(19);
    /// IRET.
    pub const IRET: Self = Self::misc1(20);
    /// INTn.
    pub const INTN: Self = Self::misc1(21);
    /// INVD.
    pub const INVD: Self = Self::misc1(22);
    /// PAUSE.
    pub const PAUSE: Self = Self::misc1(23);
    /// HLT.
    pub const HLT: Self = Self::misc1(24);
    /// INVLPG.
    pub const INVLPG: Self = Self::misc1(25);
    /// INVLPGA.
    pub const INVLPGA: Self = Self::misc1(26);
    /// IN/OUT through the I/O permission map.
    pub const IOIO_PROT: Self = Self::misc1(27);
    /// RDMSR/WRMSR through the MSR permission map.
    pub const MSR_PROT: Self = Self::misc1(28);
    /// Task switch.
    pub const TASK_SWITCH: Self = Self::misc1(29);
    /// FERR freeze.
    pub const FERR_FREEZE: Self = Self::misc1(30);
    /// Shutdown (triple fault).
    pub const SHUTDOWN: Self = Self::misc1(31);
    /// VMRUN (must be set or VMRUN fails with VMEXIT_INVALID).
    pub const VMRUN: Self = Self::misc2(0);
    /// VMMCALL.
    pub const VMMCALL: Self = Self::misc2(1);
    /// VMLOAD.
    pub const VMLOAD: Self = Self::misc2(2);
    /// VMSAVE.
    pub const VMSAVE: Self = Self::misc2(3);
    /// STGI.
    pub const STGI: Self = Self::misc2(4);
    /// CLGI.
    pub const CLGI: Self = Self::misc2(5);
    /// SKINIT.
    pub const SKINIT: Self = Self::misc2(6);
    /// RDTSCP.
    pub const RDTSCP: Self = Self::misc2(7);
    /// ICEBP (INT1).
    pub const ICEBP: Self = Self::misc2(8);
    /// WBINVD and WBNOINVD.
    pub const WBINVD: Self = Self::misc2(9);
    /// MONITOR and MONITORX.
    pub const MONITOR: Self = Self::misc2(10);
    /// MWAIT and MWAITX, unconditionally.
    pub const MWAIT: Self = Self::misc2(11);
    /// MWAIT and MWAITX when the monitor is armed.
    pub const MWAIT_CONDITIONAL: Self = Self::misc2(12);
    /// XSETBV.
    pub const XSETBV: Self = Self::misc2(13);
    /// RDPRU.
    pub const RDPRU: Self = Self::misc2(14);
    /// EFER writes (trap, after the instruction).
    pub const EFER_WRITE_TRAP: Self = Self::misc2(15);
}
