//! #VMEXIT decoding (APM Vol. 2, Appendix C exit codes; 15.7 EXITINFO, 15.10.2 IOIO,
//! 15.11 MSR, 15.25.6 nested page faults, 15.20 events, 15.33 decode assists).

mod info;
pub use info::{
    next_rip, next_rip_with_fallback, CrAccess, EventInfo, EventType, ExitInfoError,
    InstructionLengthError, IoDirection, IoioInfo, MsrExit, NpfInfo,
};

macro_rules! exit_codes {
    ($($variant:ident = $num:literal, $name:literal;)*) => {
        /// A #VMEXIT code (the EXITCODE field).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum ExitCode {
            /// Read of CRn (0x00 + n).
            CrRead(u8),
            /// Write of CRn (0x10 + n).
            CrWrite(u8),
            /// Read of DRn (0x20 + n).
            DrRead(u8),
            /// Write of DRn (0x30 + n).
            DrWrite(u8),
            /// Exception with this vector (0x40 + vector).
            Exception(u8),
            /// Write of CRn trapped after the instruction (0x90 + n).
            CrWriteTrap(u8),
            $(
                #[doc = $name]
                $variant,
            )*
            /// VMEXIT_INVALID (-1): VMRUN refused the VMCB's state.
            Invalid,
            /// VMEXIT_BUSY (-2): the VMSA was busy (SEV-ES).
            Busy,
            /// A code this table does not know.
            Unknown(u64),
        }

        impl ExitCode {
            /// Decodes the EXITCODE value. -1 and -2 are also accepted zero-extended from 32
            /// bits (0xFFFF_FFFF, 0xFFFF_FFFE), the form QEMU TCG writes.
            pub fn from_raw(code: u64) -> Self {
                match code {
                    0x00..=0x0F => Self::CrRead(code as u8),
                    0x10..=0x1F => Self::CrWrite((code - 0x10) as u8),
                    0x20..=0x2F => Self::DrRead((code - 0x20) as u8),
                    0x30..=0x3F => Self::DrWrite((code - 0x30) as u8),
                    0x40..=0x5F => Self::Exception((code - 0x40) as u8),
                    0x90..=0x9F => Self::CrWriteTrap((code - 0x90) as u8),
                    $($num => Self::$variant,)*
                    // QEMU TCG stores these two as zero-extended 32-bit values.
                    u64::MAX | 0xFFFF_FFFF => Self::Invalid,
                    0xFFFF_FFFF_FFFF_FFFE | 0xFFFF_FFFE => Self::Busy,
                    other => Self::Unknown(other),
                }
            }

            /// The EXITCODE value.
            pub fn raw(self) -> u64 {
                match self {
                    Self::CrRead(n) => u64::from(n),
                    Self::CrWrite(n) => 0x10 + u64::from(n),
                    Self::DrRead(n) => 0x20 + u64::from(n),
                    Self::DrWrite(n) => 0x30 + u64::from(n),
                    Self::Exception(v) => 0x40 + u64::from(v),
                    Self::CrWriteTrap(n) => 0x90 + u64::from(n),
                    $(Self::$variant => $num,)*
                    Self::Invalid => u64::MAX,
                    Self::Busy => 0xFFFF_FFFF_FFFF_FFFE,
                    Self::Unknown(n) => n,
                }
            }

            /// The APM name (VMEXIT_...).
            pub fn name(self) -> &'static str {
                match self {
                    Self::CrRead(_) => "VMEXIT_CRx_READ",
                    Self::CrWrite(_) => "VMEXIT_CRx_WRITE",
                    Self::DrRead(_) => "VMEXIT_DRx_READ",
                    Self::DrWrite(_) => "VMEXIT_DRx_WRITE",
                    Self::Exception(_) => "VMEXIT_EXCPx",
                    Self::CrWriteTrap(_) => "VMEXIT_CRx_WRITE_TRAP",
                    $(Self::$variant => $name,)*
                    Self::Invalid => "VMEXIT_INVALID",
                    Self::Busy => "VMEXIT_BUSY",
                    Self::Unknown(_) => "unknown exit code",
                }
            }
        }
    };
}

exit_codes! {
    Intr = 0x60, "VMEXIT_INTR";
    Nmi = 0x61, "VMEXIT_NMI";
    Smi = 0x62, "VMEXIT_SMI";
    Init = 0x63, "VMEXIT_INIT";
    Vintr = 0x64, "VMEXIT_VINTR";
    Cr0SelWrite = 0x65, "VMEXIT_CR0_SEL_WRITE";
    IdtrRead = 0x66, "VMEXIT_IDTR_READ";
    GdtrRead = 0x67, "VMEXIT_GDTR_READ";
    LdtrRead = 0x68, "VMEXIT_LDTR_READ";
    TrRead = 0x69, "VMEXIT_TR_READ";
    IdtrWrite = 0x6A, "VMEXIT_IDTR_WRITE";
    GdtrWrite = 0x6B, "VMEXIT_GDTR_WRITE";
    LdtrWrite = 0x6C, "VMEXIT_LDTR_WRITE";
    TrWrite = 0x6D, "VMEXIT_TR_WRITE";
    Rdtsc = 0x6E, "VMEXIT_RDTSC";
    Rdpmc = 0x6F, "VMEXIT_RDPMC";
    Pushf = 0x70, "VMEXIT_PUSHF";
    Popf = 0x71, "VMEXIT_POPF";
    Cpuid = 0x72, "VMEXIT_CPUID";
    Rsm = 0x73, "VMEXIT_RSM";
    Iret = 0x74, "VMEXIT_IRET";
    Swint = 0x75, "VMEXIT_SWINT";
    Invd = 0x76, "VMEXIT_INVD";
    Pause = 0x77, "VMEXIT_PAUSE";
    Hlt = 0x78, "VMEXIT_HLT";
    Invlpg = 0x79, "VMEXIT_INVLPG";
    Invlpga = 0x7A, "VMEXIT_INVLPGA";
    Ioio = 0x7B, "VMEXIT_IOIO";
    Msr = 0x7C, "VMEXIT_MSR";
    TaskSwitch = 0x7D, "VMEXIT_TASK_SWITCH";
    FerrFreeze = 0x7E, "VMEXIT_FERR_FREEZE";
    Shutdown = 0x7F, "VMEXIT_SHUTDOWN";
    Vmrun = 0x80, "VMEXIT_VMRUN";
    Vmmcall = 0x81, "VMEXIT_VMMCALL";
    Vmload = 0x82, "VMEXIT_VMLOAD";
    Vmsave = 0x83, "VMEXIT_VMSAVE";
    Stgi = 0x84, "VMEXIT_STGI";
    Clgi = 0x85, "VMEXIT_CLGI";
    Skinit = 0x86, "VMEXIT_SKINIT";
    Rdtscp = 0x87, "VMEXIT_RDTSCP";
    Icebp = 0x88, "VMEXIT_ICEBP";
    Wbinvd = 0x89, "VMEXIT_WBINVD";
    Monitor = 0x8A, "VMEXIT_MONITOR";
    Mwait = 0x8B, "VMEXIT_MWAIT";
    MwaitConditional = 0x8C, "VMEXIT_MWAIT_CONDITIONAL";
    Xsetbv = 0x8D, "VMEXIT_XSETBV";
    Rdpru = 0x8E, "VMEXIT_RDPRU";
    EferWriteTrap = 0x8F, "VMEXIT_EFER_WRITE_TRAP";
    Invlpgb = 0xA0, "VMEXIT_INVLPGB";
    InvlpgbIllegal = 0xA1, "VMEXIT_INVLPGB_ILLEGAL";
    Invpcid = 0xA2, "VMEXIT_INVPCID";
    Mcommit = 0xA3, "VMEXIT_MCOMMIT";
    Tlbsync = 0xA4, "VMEXIT_TLBSYNC";
    Npf = 0x400, "VMEXIT_NPF";
    AvicIncompleteIpi = 0x401, "VMEXIT_AVIC_INCOMPLETE_IPI";
    AvicNoaccel = 0x402, "VMEXIT_AVIC_NOACCEL";
    Vmgexit = 0x403, "VMEXIT_VMGEXIT";
}

impl core::fmt::Display for ExitCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::CrRead(n) | Self::CrWrite(n) | Self::CrWriteTrap(n) => {
                write!(f, "{} (CR{n}, {:#x})", self.name(), self.raw())
            }
            Self::DrRead(n) | Self::DrWrite(n) => {
                write!(f, "{} (DR{n}, {:#x})", self.name(), self.raw())
            }
            Self::Exception(v) => write!(f, "{} (vector {v}, {:#x})", self.name(), self.raw()),
            _ => write!(f, "{} ({:#x})", self.name(), self.raw()),
        }
    }
}

/// The exit fields of a VMCB after #VMEXIT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmExit {
    /// EXITCODE.
    pub code: ExitCode,
    /// EXITINFO1.
    pub info1: u64,
    /// EXITINFO2.
    pub info2: u64,
    /// EXITINTINFO: an event whose delivery the exit interrupted (re-inject it).
    pub interrupted_event: Option<EventInfo>,
}

impl VmExit {
    /// Reads the exit fields.
    pub fn read(vmcb: &crate::vmcb::Vmcb) -> Self {
        use crate::vmcb::control;
        Self {
            code: ExitCode::from_raw(vmcb.get64(control::EXITCODE)),
            info1: vmcb.get64(control::EXITINFO1),
            info2: vmcb.get64(control::EXITINFO2),
            interrupted_event: EventInfo::decode(vmcb.get64(control::EXITINTINFO)),
        }
    }
}

#[cfg(test)]
mod tests;
