//! Hypercall ABI v1 shared by the guest SDK and the hypervisor (see docs/hypercall-abi.md).
//!
//! A guest fills a [`Request`] (64 bytes, `#[repr(C)]`, little endian) in its own memory and issues
//! the hypercall instruction of its CPU vendor ([`HypercallInsn`]) with
//! `RAX` = call number ([`Kind`] as u64) and `RBX` = guest-physical address of the request.
//! The hypervisor answers with `RAX` = [`Status`] and `RDX` = result length, all other registers
//! preserved. Everything the hypervisor needs to check a request is here, pure and host-tested:
//! [`validate_range`], [`parse_request`], [`decode_call`], [`write_result`].
#![cfg_attr(not(test), no_std)]

mod error;
pub mod mmio;
mod validate;

pub use error::{AbiError, Field};
pub use validate::{
    check_args_json, check_tool_name, decode_call, parse_request, validate_range, write_result,
    Call, Response,
};

/// `b"PVHC"` read as a little-endian u32: the first field of every request.
pub const MAGIC: u32 = u32::from_le_bytes(*b"PVHC");
/// The ABI version this crate speaks. A hypervisor answers other versions with [`Status::BadVersion`].
pub const VERSION: u16 = 1;
/// Size of the request structure in bytes.
pub const REQUEST_SIZE: usize = 64;
/// Required alignment of the request's guest-physical address.
pub const REQUEST_ALIGN: u64 = 8;
/// Longest tool name (bytes); names are `[a-z0-9_]`, 1..=64 bytes, starting with a letter.
pub const MAX_NAME_LEN: u64 = 64;
/// Longest JSON argument object of a tool call (bytes).
pub const MAX_ARGS_LEN: u64 = 64 * 1024;
/// Longest console write or exit message (bytes).
pub const MAX_TEXT_LEN: u64 = 4 * 1024;
/// Largest result buffer the hypervisor will consider (bytes); larger capacities are clamped.
pub const MAX_RESULT_CAP: u64 = 1024 * 1024;
/// Exit code the SDK's panic handler reports (the message holds the panic text).
pub const EXIT_CODE_PANIC: u32 = 0xDEAD_0001;

/// The call number (in `RAX`) and request `kind` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Kind {
    /// Run a tool: `name` = tool name, `args` = JSON object, result buffer receives the tool output.
    ToolCall = 1,
    /// Write `args` bytes (UTF-8 text) to the agent console (the hypervisor log).
    ConsoleWrite = 2,
    /// Stop the agent with `exit_code`; `args` may hold a message (a panic text).
    Exit = 3,
}

impl Kind {
    pub fn from_u64(number: u64) -> Option<Kind> {
        match number {
            1 => Some(Kind::ToolCall),
            2 => Some(Kind::ConsoleWrite),
            3 => Some(Kind::Exit),
            _ => None,
        }
    }
}

/// The status the hypervisor returns in `RAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Status {
    Ok = 0,
    /// The policy refused the tool call; the result buffer holds the reason text.
    Denied = 1,
    /// A pointer is null, wraps around, or lies outside guest memory.
    BadPointer = 2,
    /// A length is zero where data is required, or the request is short.
    BadLength = 3,
    /// The request address is not 8-byte aligned.
    BadAlignment = 4,
    /// A buffer exceeds its limit, or the result did not fit (`RDX` = length needed).
    TooLarge = 5,
    /// `RAX` holds no known call number, or the request kind is unknown.
    UnknownCall = 6,
    /// The request's version is not [`VERSION`].
    BadVersion = 7,
    /// The request does not start with [`MAGIC`].
    BadMagic = 8,
    /// A field is malformed: reserved bits set, bad tool name, args not a JSON object, kind != `RAX`.
    BadRequest = 9,
    /// The tool ran and failed (file not found, ...); the result buffer holds the message.
    ToolFailed = 10,
    /// No tool of that name exists.
    UnknownTool = 11,
    /// The hypervisor failed for a reason of its own.
    InternalError = 12,
}

impl Status {
    pub const ALL: [Status; 13] = [
        Status::Ok,
        Status::Denied,
        Status::BadPointer,
        Status::BadLength,
        Status::BadAlignment,
        Status::TooLarge,
        Status::UnknownCall,
        Status::BadVersion,
        Status::BadMagic,
        Status::BadRequest,
        Status::ToolFailed,
        Status::UnknownTool,
        Status::InternalError,
    ];

    pub fn from_u64(value: u64) -> Option<Status> {
        Status::ALL.iter().copied().find(|s| *s as u64 == value)
    }

    /// Whether this is one of the request errors 2..=9 (`BadPointer` to `BadRequest`): the
    /// hypervisor writes nothing to the result buffer with it, and `RDX` is 0 (except `TooLarge`
    /// for an output that did not fit, see [`crate::write_result`]).
    pub fn is_abi_error(self) -> bool {
        (Status::BadPointer as u64..=Status::BadRequest as u64).contains(&(self as u64))
    }

    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Denied => "denied",
            Status::BadPointer => "bad pointer",
            Status::BadLength => "bad length",
            Status::BadAlignment => "bad alignment",
            Status::TooLarge => "too large",
            Status::UnknownCall => "unknown call",
            Status::BadVersion => "bad version",
            Status::BadMagic => "bad magic",
            Status::BadRequest => "bad request",
            Status::ToolFailed => "tool failed",
            Status::UnknownTool => "unknown tool",
            Status::InternalError => "internal error",
        }
    }
}

/// The request a guest places in its memory. Field offsets are part of the ABI (see the tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct Request {
    /// [`MAGIC`].
    pub magic: u32,
    /// [`VERSION`].
    pub version: u16,
    /// A [`Kind`]; must equal the call number in `RAX`.
    pub kind: u16,
    /// Reserved, must be 0.
    pub flags: u32,
    /// [`Kind::Exit`] only: the exit code (0 otherwise).
    pub exit_code: u32,
    /// Tool name (UTF-8), [`Kind::ToolCall`] only; `0, 0` for other kinds.
    pub name_gpa: u64,
    pub name_len: u64,
    /// Tool call: JSON arguments object. Console write / exit: the text.
    pub args_gpa: u64,
    pub args_len: u64,
    /// Tool call: where the hypervisor writes the result or reason text; `0, 0` for other kinds.
    pub result_gpa: u64,
    pub result_cap: u64,
}

impl Request {
    /// A request of `kind` with magic and version filled in and every buffer empty.
    pub fn new(kind: Kind) -> Request {
        Request {
            magic: MAGIC,
            version: VERSION,
            kind: kind as u16,
            ..Request::default()
        }
    }

    /// The little-endian wire form, identical to the in-memory `#[repr(C)]` layout on x86_64.
    pub fn to_bytes(&self) -> [u8; REQUEST_SIZE] {
        let mut out = [0u8; REQUEST_SIZE];
        out[0..4].copy_from_slice(&self.magic.to_le_bytes());
        out[4..6].copy_from_slice(&self.version.to_le_bytes());
        out[6..8].copy_from_slice(&self.kind.to_le_bytes());
        out[8..12].copy_from_slice(&self.flags.to_le_bytes());
        out[12..16].copy_from_slice(&self.exit_code.to_le_bytes());
        let words = [
            self.name_gpa,
            self.name_len,
            self.args_gpa,
            self.args_len,
            self.result_gpa,
            self.result_cap,
        ];
        for (i, w) in words.iter().enumerate() {
            out[16 + 8 * i..24 + 8 * i].copy_from_slice(&w.to_le_bytes());
        }
        out
    }
}

/// The guest's hypercall instruction, chosen from the CPUID vendor string (leaf 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HypercallInsn {
    /// `VMCALL` (0F 01 C1), Intel VT-x.
    Vmcall,
    /// `VMMCALL` (0F 01 D9), AMD SVM (and Hygon).
    Vmmcall,
}

impl HypercallInsn {
    /// `vendor` is the 12-byte CPUID leaf 0 string in EBX, EDX, ECX order. Unknown vendors get
    /// `VMCALL` (the instruction probevisor's VT-x back end handles).
    pub fn for_vendor(vendor: &[u8; 12]) -> HypercallInsn {
        match vendor {
            b"AuthenticAMD" | b"HygonGenuine" => HypercallInsn::Vmmcall,
            _ => HypercallInsn::Vmcall,
        }
    }

    /// The machine code bytes.
    pub fn bytes(self) -> [u8; 3] {
        match self {
            HypercallInsn::Vmcall => [0x0F, 0x01, 0xC1],
            HypercallInsn::Vmmcall => [0x0F, 0x01, 0xD9],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, offset_of, size_of};

    #[test]
    fn request_layout_is_the_documented_one() {
        assert_eq!(size_of::<Request>(), REQUEST_SIZE);
        assert_eq!(align_of::<Request>(), REQUEST_ALIGN as usize);
        let offsets = [
            offset_of!(Request, magic),
            offset_of!(Request, version),
            offset_of!(Request, kind),
            offset_of!(Request, flags),
            offset_of!(Request, exit_code),
            offset_of!(Request, name_gpa),
            offset_of!(Request, name_len),
            offset_of!(Request, args_gpa),
            offset_of!(Request, args_len),
            offset_of!(Request, result_gpa),
            offset_of!(Request, result_cap),
        ];
        assert_eq!(offsets, [0, 4, 6, 8, 12, 16, 24, 32, 40, 48, 56]);
    }

    #[test]
    fn to_bytes_places_fields_at_their_offsets() {
        let mut r = Request::new(Kind::ToolCall);
        r.exit_code = 0x0102_0304;
        r.name_gpa = 0x1122_3344_5566_7788;
        r.result_cap = 0xAABB;
        let b = r.to_bytes();
        assert_eq!(&b[0..4], b"PVHC");
        assert_eq!(&b[4..8], &[1, 0, 1, 0]);
        assert_eq!(&b[12..16], &[4, 3, 2, 1]);
        assert_eq!(&b[16..24], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(&b[56..64], &0xAABBu64.to_le_bytes());
    }

    #[test]
    fn status_and_kind_numbers_round_trip() {
        for (i, s) in Status::ALL.iter().enumerate() {
            assert_eq!(*s as u64, i as u64);
            assert_eq!(Status::from_u64(i as u64), Some(*s));
            assert!(!s.name().is_empty());
        }
        assert_eq!(Status::from_u64(13), None);
        assert_eq!(Kind::from_u64(1), Some(Kind::ToolCall));
        assert_eq!(Kind::from_u64(2), Some(Kind::ConsoleWrite));
        assert_eq!(Kind::from_u64(3), Some(Kind::Exit));
        assert_eq!(Kind::from_u64(0), None);
        assert_eq!(Kind::from_u64(1 << 16 | 1), None);
    }

    #[test]
    fn vendor_picks_the_hypercall_instruction() {
        assert_eq!(
            HypercallInsn::for_vendor(b"GenuineIntel"),
            HypercallInsn::Vmcall
        );
        assert_eq!(
            HypercallInsn::for_vendor(b"AuthenticAMD"),
            HypercallInsn::Vmmcall
        );
        assert_eq!(
            HypercallInsn::for_vendor(b"HygonGenuine"),
            HypercallInsn::Vmmcall
        );
        assert_eq!(
            HypercallInsn::for_vendor(b"TCGTCGTCGTCG"),
            HypercallInsn::Vmcall
        );
        assert_eq!(HypercallInsn::Vmcall.bytes(), [0x0F, 0x01, 0xC1]);
        assert_eq!(HypercallInsn::Vmmcall.bytes(), [0x0F, 0x01, 0xD9]);
    }
}
