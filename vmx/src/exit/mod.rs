//! VM-exit decoding: exit reasons (SDM Vol. 3, Appendix C), exit qualifications (28.2.1) and
//! a VMCS dump for unhandled exits.

use core::fmt;

mod dump;
pub use dump::{VmcsDump, DEFAULT_DUMP_FIELDS};

macro_rules! basic_exit_reasons {
    ($($variant:ident = $num:literal, $name:literal;)*) => {
        /// Basic exit reason (bits 15:0 of the exit-reason field).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum BasicExitReason {
            $(
                #[doc = $name]
                $variant,
            )*
            /// A number this table does not know.
            Unknown(u16),
        }

        impl BasicExitReason {
            /// Decodes a basic exit reason number.
            pub fn from_number(number: u16) -> Self {
                match number {
                    $($num => Self::$variant,)*
                    other => Self::Unknown(other),
                }
            }

            /// The basic exit reason number.
            pub fn number(self) -> u16 {
                match self {
                    $(Self::$variant => $num,)*
                    Self::Unknown(n) => n,
                }
            }

            /// The SDM name of the reason.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                    Self::Unknown(_) => "unknown exit reason",
                }
            }
        }
    };
}

basic_exit_reasons! {
    ExceptionOrNmi = 0, "Exception or non-maskable interrupt (NMI)";
    ExternalInterrupt = 1, "External interrupt";
    TripleFault = 2, "Triple fault";
    InitSignal = 3, "INIT signal";
    StartupIpi = 4, "Start-up IPI (SIPI)";
    IoSmi = 5, "I/O system-management interrupt (SMI)";
    OtherSmi = 6, "Other SMI";
    InterruptWindow = 7, "Interrupt window";
    NmiWindow = 8, "NMI window";
    TaskSwitch = 9, "Task switch";
    Cpuid = 10, "CPUID";
    Getsec = 11, "GETSEC";
    Hlt = 12, "HLT";
    Invd = 13, "INVD";
    Invlpg = 14, "INVLPG";
    Rdpmc = 15, "RDPMC";
    Rdtsc = 16, "RDTSC";
    Rsm = 17, "RSM";
    Vmcall = 18, "VMCALL";
    Vmclear = 19, "VMCLEAR";
    Vmlaunch = 20, "VMLAUNCH";
    Vmptrld = 21, "VMPTRLD";
    Vmptrst = 22, "VMPTRST";
    Vmread = 23, "VMREAD";
    Vmresume = 24, "VMRESUME";
    Vmwrite = 25, "VMWRITE";
    Vmxoff = 26, "VMXOFF";
    Vmxon = 27, "VMXON";
    ControlRegisterAccess = 28, "Control-register accesses";
    MovDr = 29, "MOV DR";
    IoInstruction = 30, "I/O instruction";
    Rdmsr = 31, "RDMSR";
    Wrmsr = 32, "WRMSR";
    EntryFailureGuestState = 33, "VM-entry failure due to invalid guest state";
    EntryFailureMsrLoading = 34, "VM-entry failure due to MSR loading";
    Mwait = 36, "MWAIT";
    MonitorTrapFlag = 37, "Monitor trap flag";
    Monitor = 39, "MONITOR";
    Pause = 40, "PAUSE";
    EntryFailureMachineCheck = 41, "VM-entry failure due to machine-check event";
    TprBelowThreshold = 43, "TPR below threshold";
    ApicAccess = 44, "APIC access";
    VirtualizedEoi = 45, "Virtualized EOI";
    GdtrIdtrAccess = 46, "Access to GDTR or IDTR";
    LdtrTrAccess = 47, "Access to LDTR or TR";
    EptViolation = 48, "EPT violation";
    EptMisconfiguration = 49, "EPT misconfiguration";
    Invept = 50, "INVEPT";
    Rdtscp = 51, "RDTSCP";
    PreemptionTimerExpired = 52, "VMX-preemption timer expired";
    Invvpid = 53, "INVVPID";
    Wbinvd = 54, "WBINVD or WBNOINVD";
    Xsetbv = 55, "XSETBV";
    ApicWrite = 56, "APIC write";
    Rdrand = 57, "RDRAND";
    Invpcid = 58, "INVPCID";
    Vmfunc = 59, "VMFUNC";
    Encls = 60, "ENCLS";
    Rdseed = 61, "RDSEED";
    PageModificationLogFull = 62, "Page-modification log full";
    Xsaves = 63, "XSAVES";
    Xrstors = 64, "XRSTORS";
    Pconfig = 65, "PCONFIG";
    SppRelatedEvent = 66, "SPP-related event";
    Umwait = 67, "UMWAIT";
    Tpause = 68, "TPAUSE";
    Loadiwkey = 69, "LOADIWKEY";
    Enclv = 70, "ENCLV";
    EnqcmdPasidFailure = 72, "ENQCMD PASID translation failure";
    EnqcmdsPasidFailure = 73, "ENQCMDS PASID translation failure";
    BusLock = 74, "Bus lock";
    InstructionTimeout = 75, "Instruction timeout";
    Seamcall = 76, "SEAMCALL";
    Tdcall = 77, "TDCALL";
    Rdmsrlist = 78, "RDMSRLIST";
    Wrmsrlist = 79, "WRMSRLIST";
}

/// The 32-bit exit-reason field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitReason {
    /// The raw field.
    pub raw: u32,
    /// Bits 15:0.
    pub basic: BasicExitReason,
    /// Bit 31: the exit happened because VM entry failed.
    pub entry_failure: bool,
    /// Bit 27: the exit came from an enclave.
    pub from_enclave: bool,
    /// Bit 28: a monitor trap flag exit was pending.
    pub pending_mtf: bool,
    /// Bit 29: the exit came from VMX root operation (SMM monitor).
    pub from_vmx_root: bool,
}

impl ExitReason {
    /// Decodes the exit-reason field.
    pub fn from_raw(raw: u32) -> Self {
        Self {
            raw,
            basic: BasicExitReason::from_number(raw as u16),
            entry_failure: raw & (1 << 31) != 0,
            from_enclave: raw & (1 << 27) != 0,
            pending_mtf: raw & (1 << 28) != 0,
            from_vmx_root: raw & (1 << 29) != 0,
        }
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit reason {} ({})",
            self.basic.number(),
            self.basic.name()
        )?;
        if self.entry_failure {
            f.write_str(" [VM-entry failure]")?;
        }
        Ok(())
    }
}

/// Exit qualification of an EPT violation (SDM Table 28-7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EptViolation {
    /// The access was a data read.
    pub read: bool,
    /// The access was a data write.
    pub write: bool,
    /// The access was an instruction fetch.
    pub fetch: bool,
    /// The guest-physical address was readable.
    pub readable: bool,
    /// The guest-physical address was writable.
    pub writable: bool,
    /// The guest-physical address was executable.
    pub executable: bool,
    /// The guest linear address field is valid.
    pub linear_address_valid: bool,
    /// With a valid linear address: the access was to the final translation (not a paging structure).
    pub final_translation: bool,
    /// NMI unblocking due to IRET (bit 12).
    pub nmi_unblocking: bool,
}

impl EptViolation {
    /// Decodes the qualification.
    pub fn from_qualification(q: u64) -> Self {
        let bit = |n: u32| q & (1 << n) != 0;
        Self {
            read: bit(0),
            write: bit(1),
            fetch: bit(2),
            readable: bit(3),
            writable: bit(4),
            executable: bit(5),
            linear_address_valid: bit(7),
            final_translation: bit(7) && bit(8),
            nmi_unblocking: bit(12),
        }
    }
}

/// Direction of an I/O instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoDirection {
    /// OUT/OUTS.
    Out,
    /// IN/INS.
    In,
}

/// Exit qualification of an I/O instruction (SDM Table 28-5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoQualification {
    /// Access size in bytes: 1, 2 or 4.
    pub size: u8,
    /// IN or OUT.
    pub direction: IoDirection,
    /// INS/OUTS.
    pub string: bool,
    /// REP prefix.
    pub rep: bool,
    /// The port came from an immediate operand (else DX).
    pub immediate_port: bool,
    /// Port number.
    pub port: u16,
}

/// An exit qualification with reserved encodings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadQualification(pub u64);

impl fmt::Display for BadQualification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit qualification {:#x} has a reserved encoding",
            self.0
        )
    }
}

impl IoQualification {
    /// Decodes the qualification; sizes other than 1, 2, 4 are an error.
    pub fn from_qualification(q: u64) -> Result<Self, BadQualification> {
        let size = match q & 7 {
            0 => 1,
            1 => 2,
            3 => 4,
            _ => return Err(BadQualification(q)),
        };
        Ok(Self {
            size,
            direction: if q & (1 << 3) != 0 {
                IoDirection::In
            } else {
                IoDirection::Out
            },
            string: q & (1 << 4) != 0,
            rep: q & (1 << 5) != 0,
            immediate_port: q & (1 << 6) != 0,
            port: (q >> 16) as u16,
        })
    }
}

/// The kind of control-register access (SDM Table 28-3, bits 5:4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrAccessType {
    /// MOV to CR from general-purpose register `gpr` (0 = RAX ... 15 = R15).
    MovToCr {
        /// Source register number.
        gpr: u8,
    },
    /// MOV from CR to general-purpose register `gpr`.
    MovFromCr {
        /// Destination register number.
        gpr: u8,
    },
    /// CLTS.
    Clts,
    /// LMSW with its 16-bit source data.
    Lmsw {
        /// True when the operand was in memory.
        memory_operand: bool,
        /// The LMSW source data.
        source: u16,
    },
}

/// Exit qualification of a control-register access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrAccess {
    /// Control register number (0, 3, 4 or 8).
    pub cr: u8,
    /// What kind of access.
    pub access: CrAccessType,
}

impl CrAccess {
    /// Decodes the qualification.
    pub fn from_qualification(q: u64) -> Self {
        let gpr = ((q >> 8) & 0xF) as u8;
        let access = match (q >> 4) & 3 {
            0 => CrAccessType::MovToCr { gpr },
            1 => CrAccessType::MovFromCr { gpr },
            2 => CrAccessType::Clts,
            _ => CrAccessType::Lmsw {
                memory_operand: q & (1 << 6) != 0,
                source: (q >> 16) as u16,
            },
        };
        Self {
            cr: (q & 0xF) as u8,
            access,
        }
    }
}

/// Event type in VM-exit interruption information (bits 10:8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterruptionType {
    /// External interrupt (0).
    ExternalInterrupt,
    /// NMI (2).
    Nmi,
    /// Hardware exception (3).
    HardwareException,
    /// Software interrupt (4).
    SoftwareInterrupt,
    /// Privileged software exception (5).
    PrivilegedSoftwareException,
    /// Software exception (6).
    SoftwareException,
    /// Other event (7) or reserved (1).
    Other(u8),
}

/// VM-exit interruption information (SDM Table 25-19).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterruptionInfo {
    /// Vector number.
    pub vector: u8,
    /// Event type.
    pub kind: InterruptionType,
    /// The error-code field is valid.
    pub error_code_valid: bool,
    /// Bit 31: the field is valid.
    pub valid: bool,
}

impl InterruptionInfo {
    /// Decodes the field.
    pub fn from_raw(raw: u32) -> Self {
        let kind = match (raw >> 8) & 7 {
            0 => InterruptionType::ExternalInterrupt,
            2 => InterruptionType::Nmi,
            3 => InterruptionType::HardwareException,
            4 => InterruptionType::SoftwareInterrupt,
            5 => InterruptionType::PrivilegedSoftwareException,
            6 => InterruptionType::SoftwareException,
            other => InterruptionType::Other(other as u8),
        };
        Self {
            vector: raw as u8,
            kind,
            error_code_valid: raw & (1 << 11) != 0,
            valid: raw & (1 << 31) != 0,
        }
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
