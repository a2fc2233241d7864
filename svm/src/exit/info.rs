//! EXITINFO1/EXITINFO2 decoding and the next RIP of an intercepted instruction.

use crate::vmcb::save::{self, SegmentRegister};
use crate::vmcb::{control, Vmcb};
use core::fmt;
use iced_x86::{Decoder, DecoderOptions};

/// IN or OUT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoDirection {
    /// IN/INS (EXITINFO1 bit 0 set).
    In,
    /// OUT/OUTS.
    Out,
}

/// A VMEXIT_IOIO (APM 15.10.2, Figure 15-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoioInfo {
    /// Port (bits 31:16).
    pub port: u16,
    /// Access size in bytes, 1, 2 or 4 (bits 6:4).
    pub size: u8,
    /// Direction (bit 0).
    pub direction: IoDirection,
    /// INS/OUTS (bit 2).
    pub string: bool,
    /// REP prefix (bit 3).
    pub rep: bool,
    /// Address size in bits for string forms, 16, 32 or 64 (bits 9:7); 0 when none is set.
    pub address_size: u8,
    /// Effective segment of a string instruction (bits 12:10; with decode assists).
    pub segment: u8,
    /// RIP of the next instruction (EXITINFO2).
    pub next_rip: u64,
}

/// Malformed exit information.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitInfoError {
    /// IOIO EXITINFO1 names no single access size.
    IoSize(u64),
    /// MSR EXITINFO1 is neither 0 (RDMSR) nor 1 (WRMSR).
    MsrAccess(u64),
}

impl fmt::Display for ExitInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::IoSize(v) => write!(f, "IOIO EXITINFO1 {v:#x} has no single size bit"),
            Self::MsrAccess(v) => write!(f, "MSR EXITINFO1 {v:#x} is neither 0 nor 1"),
        }
    }
}

impl IoioInfo {
    /// Decodes EXITINFO1 and EXITINFO2 of a VMEXIT_IOIO.
    pub fn decode(info1: u64, info2: u64) -> Result<Self, ExitInfoError> {
        let size = match (info1 >> 4) & 7 {
            1 => 1,
            2 => 2,
            4 => 4,
            _ => return Err(ExitInfoError::IoSize(info1)),
        };
        let address_size = match (info1 >> 7) & 7 {
            1 => 16,
            2 => 32,
            4 => 64,
            _ => 0,
        };
        Ok(Self {
            port: (info1 >> 16) as u16,
            size,
            direction: if info1 & 1 != 0 {
                IoDirection::In
            } else {
                IoDirection::Out
            },
            string: info1 & (1 << 2) != 0,
            rep: info1 & (1 << 3) != 0,
            address_size,
            segment: ((info1 >> 10) & 7) as u8,
            next_rip: info2,
        })
    }
}

/// A VMEXIT_MSR: the MSR number is the guest's ECX, the value EDX:EAX.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsrExit {
    /// RDMSR (EXITINFO1 = 0).
    Read,
    /// WRMSR (EXITINFO1 = 1).
    Write,
}

impl MsrExit {
    /// Decodes EXITINFO1 of a VMEXIT_MSR.
    pub fn decode(info1: u64) -> Result<Self, ExitInfoError> {
        match info1 {
            0 => Ok(Self::Read),
            1 => Ok(Self::Write),
            other => Err(ExitInfoError::MsrAccess(other)),
        }
    }
}

/// A VMEXIT_NPF (APM 15.25.6): EXITINFO1 is a page-fault error code plus two walk bits,
/// EXITINFO2 the faulting guest-physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NpfInfo {
    /// The nested entry was present (a rights violation) (bit 0).
    pub present: bool,
    /// A write (bit 1).
    pub write: bool,
    /// A user access (bit 2; always set for nested walks).
    pub user: bool,
    /// A reserved bit was set in a nested entry (bit 3).
    pub reserved: bool,
    /// An instruction fetch (bit 4).
    pub fetch: bool,
    /// Fault while translating the final guest-physical address (bit 32).
    pub final_translation: bool,
    /// Fault while translating a guest page-table access (bit 33).
    pub page_table_walk: bool,
    /// The faulting guest-physical address.
    pub gpa: u64,
}

impl NpfInfo {
    /// Decodes EXITINFO1 and EXITINFO2 of a VMEXIT_NPF.
    pub fn decode(info1: u64, info2: u64) -> Self {
        let bit = |n: u32| info1 & (1 << n) != 0;
        Self {
            present: bit(0),
            write: bit(1),
            user: bit(2),
            reserved: bit(3),
            fetch: bit(4),
            final_translation: bit(32),
            page_table_walk: bit(33),
            gpa: info2,
        }
    }
}

/// A CR read/write intercept with decode assists: EXITINFO1 bit 63 says MOV CRx (else CLTS,
/// LMSW or SMSW), bits 3:0 name the general-purpose register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrAccess {
    /// MOV to/from CR (bit 63).
    pub mov: bool,
    /// GPR number of a MOV (bits 3:0).
    pub gpr: u8,
}

impl CrAccess {
    /// Decodes EXITINFO1.
    pub fn decode(info1: u64) -> Self {
        Self {
            mov: info1 >> 63 != 0,
            gpr: (info1 & 0xF) as u8,
        }
    }
}

/// Event types of EVENTINJ and EXITINTINFO (APM 15.20).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// External or virtual interrupt (0).
    Interrupt,
    /// NMI (2).
    Nmi,
    /// Exception (3).
    Exception,
    /// Software interrupt INTn (4).
    SoftwareInterrupt,
    /// A reserved type value.
    Reserved(u8),
}

/// An EVENTINJ or EXITINTINFO value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventInfo {
    /// Vector (bits 7:0).
    pub vector: u8,
    /// Type (bits 10:8).
    pub event_type: EventType,
    /// Error code (bits 63:32), when EV (bit 11) is set.
    pub error_code: Option<u32>,
}

impl EventInfo {
    /// Decodes a value; None when V (bit 31) is clear.
    pub fn decode(raw: u64) -> Option<Self> {
        if raw & (1 << 31) == 0 {
            return None;
        }
        let event_type = match ((raw >> 8) & 7) as u8 {
            0 => EventType::Interrupt,
            2 => EventType::Nmi,
            3 => EventType::Exception,
            4 => EventType::SoftwareInterrupt,
            other => EventType::Reserved(other),
        };
        Some(Self {
            vector: raw as u8,
            event_type,
            error_code: (raw & (1 << 11) != 0).then_some((raw >> 32) as u32),
        })
    }

    /// Encodes for EVENTINJ (V set).
    pub fn encode(self) -> u64 {
        let ty = match self.event_type {
            EventType::Interrupt => 0,
            EventType::Nmi => 2,
            EventType::Exception => 3,
            EventType::SoftwareInterrupt => 4,
            EventType::Reserved(t) => u64::from(t & 7),
        };
        let ev = self
            .error_code
            .map_or(0, |code| (1 << 11) | (u64::from(code) << 32));
        u64::from(self.vector) | ty << 8 | ev | 1 << 31
    }
}

/// Why the next RIP could not be found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstructionLengthError {
    /// No NRIP and no fetched instruction bytes (no decode assists, or an exit without them).
    NoInstructionBytes,
    /// The fetched bytes do not decode to an instruction.
    Undecodable,
}

impl fmt::Display for InstructionLengthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoInstructionBytes => {
                f.write_str("no nRIP and no guest instruction bytes to decode")
            }
            Self::Undecodable => f.write_str("guest instruction bytes do not decode"),
        }
    }
}

/// RIP of the instruction after the intercepted one: the VMCB's NRIP when the CPU saves it
/// (`nrip_save`, CPUID 8000_000Ah EDX\[3\]) and it is set, else RIP plus the length of the
/// fetched guest instruction bytes decoded in the guest's code size (CS.L / CS.D).
pub fn next_rip(vmcb: &Vmcb, nrip_save: bool) -> Result<u64, InstructionLengthError> {
    next_rip_with_fallback(vmcb, nrip_save, &[])
}

/// Like [`next_rip`], but when the CPU saved neither NRIP nor instruction bytes (no NRIPS, no
/// decode assists) decodes `fetched`: bytes the caller read from guest memory at RIP.
pub fn next_rip_with_fallback(
    vmcb: &Vmcb,
    nrip_save: bool,
    fetched: &[u8],
) -> Result<u64, InstructionLengthError> {
    let rip = vmcb.get64(save::RIP);
    let nrip = vmcb.get64(control::NRIP);
    if nrip_save && nrip != 0 {
        return Ok(nrip);
    }
    let saved = vmcb.guest_instruction_bytes();
    let bytes = if saved.is_empty() {
        &fetched[..fetched.len().min(15)]
    } else {
        saved
    };
    if bytes.is_empty() {
        return Err(InstructionLengthError::NoInstructionBytes);
    }
    let cs = vmcb.segment(SegmentRegister::Cs).attrib;
    let bitness = if cs.long() {
        64
    } else if cs.default_big() {
        32
    } else {
        16
    };
    let mut decoder = Decoder::with_ip(bitness, bytes, rip, DecoderOptions::NONE);
    let instruction = decoder.decode();
    if instruction.is_invalid() {
        return Err(InstructionLengthError::Undecodable);
    }
    Ok(rip.wrapping_add(instruction.len() as u64))
}
