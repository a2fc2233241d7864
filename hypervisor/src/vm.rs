//! Per-guest state the exit handlers keep besides the vCPU: name, console line buffer, tool device
//! registers, counters, and why the guest stopped.

use crate::log_text::Shown;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Longest console line kept before it is flushed without a newline.
pub const CONSOLE_LINE_MAX: usize = 256;

/// Where the hypervisor's log lines go (the serial console on bare metal, a vector in tests).
pub trait LogSink {
    fn line(&mut self, args: fmt::Arguments<'_>);
}

/// The tool device's guest-visible registers (hypercall_abi::mmio).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ToolDeviceState {
    pub request_gpa: u64,
    pub status: u64,
    pub result_len: u64,
}

/// Counters for the end-of-run summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GuestStats {
    pub exits: u64,
    pub hypercalls: u64,
    /// Hypercalls answered with an error status (bad pointers and other malformed requests).
    pub refused_requests: u64,
    pub tool_calls: u64,
    pub tool_calls_denied: u64,
    pub time_slices: u64,
}

/// Why a guest no longer runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The guest asked to stop (Exit hypercall).
    Exited {
        code: u32,
        message: String,
    },
    /// HLT.
    Halted,
    /// An Exit hypercall whose request was malformed: the agent still stops (hypercall-abi `Call::Exit`).
    MalformedExit(String),
    /// Access to guest-physical memory the guest does not own (outside RAM and the tool device).
    MemoryViolation {
        gpa: u64,
        write: bool,
        fetch: bool,
    },
    /// A bad access to the tool device (unknown register, wrong width, undecodable instruction).
    BadDeviceAccess(String),
    /// Port I/O the hypervisor does not emulate.
    BadPortIo {
        port: u16,
        write: bool,
    },
    TripleFault,
    Fault {
        vector: u8,
    },
    /// An exit the hypervisor does not handle.
    UnexpectedExit(String),
    /// Guest state outside its allow-list (XCR0, CR4 bits) found at an exit.
    ForbiddenState(&'static str),
    /// The guest could not be entered.
    EntryFailed(String),
    /// The guest used up its own exit budget without finishing.
    BudgetExhausted {
        exits: u64,
    },
    /// The guest used up its time slices without finishing (a guest that never exits on its own).
    SlicesExhausted {
        slices: u64,
    },
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exited { code, message } if message.is_empty() => {
                write!(f, "exited with code {code}")
            }
            Self::Exited { code, message } => {
                // The guest's words: on one line, cut (they are printed twice).
                write!(f, "exited with code {code:#x}: \"{}\"", Shown::new(message))
            }
            Self::Halted => write!(f, "halted (HLT)"),
            Self::MalformedExit(why) => write!(f, "malformed Exit request ({why})"),
            Self::MemoryViolation { gpa, write, fetch } => {
                let kind = if *fetch {
                    "fetch"
                } else if *write {
                    "write"
                } else {
                    "read"
                };
                write!(
                    f,
                    "memory violation: {kind} at guest-physical {gpa:#x} outside its memory"
                )
            }
            Self::BadDeviceAccess(why) => write!(f, "bad tool device access: {why}"),
            Self::BadPortIo { port, write } => {
                write!(
                    f,
                    "port I/O {} port {port:#x} is not emulated",
                    if *write { "write to" } else { "read from" }
                )
            }
            Self::TripleFault => write!(f, "triple fault"),
            Self::Fault { vector } => write!(f, "unhandled exception vector {vector}"),
            Self::UnexpectedExit(what) => write!(f, "unexpected exit: {what}"),
            Self::ForbiddenState(what) => write!(f, "forbidden guest state: {what}"),
            Self::EntryFailed(why) => write!(f, "entry failed: {why}"),
            Self::BudgetExhausted { exits } => {
                write!(f, "still running after {exits} exits (budget exhausted)")
            }
            Self::SlicesExhausted { slices } => {
                write!(
                    f,
                    "still running after {slices} time slices (budget exhausted)"
                )
            }
        }
    }
}

impl StopReason {
    /// True when the guest ended itself (Exit hypercall, whatever its code, or HLT); false for a stop the
    /// hypervisor forced.
    pub fn is_voluntary(&self) -> bool {
        matches!(self, Self::Exited { .. } | Self::Halted)
    }

    /// Whether the exit handler that stopped the guest has already written an audit record of the
    /// cause (a memory violation, a refused device access, a refused Exit request).
    pub fn audited_where_it_happened(&self) -> bool {
        matches!(
            self,
            Self::MemoryViolation { .. } | Self::BadDeviceAccess(_) | Self::MalformedExit(_)
        )
    }
}

/// A guest's state outside its vCPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestState {
    pub name: String,
    pub console_line: Vec<u8>,
    pub device: ToolDeviceState,
    pub stats: GuestStats,
    pub stopped: Option<StopReason>,
}

impl GuestState {
    pub fn new(name: &str) -> Self {
        Self {
            name: String::from(name),
            console_line: Vec::new(),
            device: ToolDeviceState::default(),
            stats: GuestStats::default(),
            stopped: None,
        }
    }

    /// Writes `text` to the guest console: complete lines go to `log` tagged with the guest name.
    pub fn console_write(&mut self, text: &[u8], log: &mut dyn LogSink) {
        for &byte in text {
            if byte == b'\n' || self.console_line.len() >= CONSOLE_LINE_MAX {
                self.flush_console(log);
                if byte == b'\n' {
                    continue;
                }
            }
            if byte != b'\r' && byte != 0 {
                self.console_line.push(byte);
            }
        }
    }

    /// Emits a pending partial line.
    pub fn flush_console(&mut self, log: &mut dyn LogSink) {
        if self.console_line.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.console_line);
        // One log line however the guest wrote it (control characters escaped).
        let shown = Shown::with_max(&text, CONSOLE_LINE_MAX);
        log.line(format_args!("[guest {}] {shown}", self.name));
        self.console_line.clear();
    }
}
