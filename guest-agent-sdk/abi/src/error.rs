//! Why a request was rejected, and the status the guest sees for it.

use crate::Status;
use core::fmt;

/// The part of a request an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The request structure itself (its address in `RBX`).
    Request,
    Name,
    Args,
    Result,
    /// A range checked on its own by [`crate::validate_range`].
    Range,
}

impl Field {
    pub fn name(self) -> &'static str {
        match self {
            Field::Request => "request",
            Field::Name => "name",
            Field::Args => "args",
            Field::Result => "result",
            Field::Range => "range",
        }
    }
}

/// A rejected request. [`AbiError::status`] is what the hypervisor returns in `RAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbiError {
    /// Fewer than [`crate::REQUEST_SIZE`] bytes were available.
    ShortRequest {
        len: usize,
    },
    BadMagic {
        found: u32,
    },
    BadVersion {
        found: u16,
    },
    /// `RAX` or the request kind is not a known call.
    UnknownCall {
        number: u64,
    },
    /// The request kind differs from the call number in `RAX`.
    KindMismatch {
        number: u64,
        kind: u16,
    },
    /// `flags` or a field unused by this kind is not zero.
    ReservedNotZero(Field),
    NullPointer(Field),
    /// `gpa + len` wraps around the 64-bit address space.
    Overflow(Field),
    /// The range ends beyond guest memory.
    OutOfBounds(Field),
    Misaligned {
        field: Field,
        align: u64,
    },
    /// The alignment asked of [`crate::validate_range`] is not a power of two.
    InvalidAlignment {
        align: u64,
    },
    /// A required buffer is empty.
    Empty(Field),
    TooLarge {
        field: Field,
        len: u64,
        max: u64,
    },
    /// Tool names are 1..=64 bytes of `[a-z0-9_]` starting with a letter.
    BadToolName,
    /// The arguments are not UTF-8 text of a JSON object (`{...}`).
    ArgsNotObject,
    /// Console or exit text is not UTF-8.
    TextNotUtf8,
}

impl AbiError {
    pub fn status(self) -> Status {
        match self {
            AbiError::ShortRequest { .. } | AbiError::Empty(_) => Status::BadLength,
            AbiError::BadMagic { .. } => Status::BadMagic,
            AbiError::BadVersion { .. } => Status::BadVersion,
            AbiError::UnknownCall { .. } => Status::UnknownCall,
            AbiError::KindMismatch { .. }
            | AbiError::ReservedNotZero(_)
            | AbiError::BadToolName
            | AbiError::ArgsNotObject
            | AbiError::TextNotUtf8 => Status::BadRequest,
            AbiError::NullPointer(_) | AbiError::Overflow(_) | AbiError::OutOfBounds(_) => {
                Status::BadPointer
            }
            AbiError::Misaligned { .. } | AbiError::InvalidAlignment { .. } => Status::BadAlignment,
            AbiError::TooLarge { .. } => Status::TooLarge,
        }
    }

    /// The same error attributed to `field` (for errors from [`crate::validate_range`]).
    pub fn in_field(self, field: Field) -> AbiError {
        match self {
            AbiError::ReservedNotZero(_) => AbiError::ReservedNotZero(field),
            AbiError::NullPointer(_) => AbiError::NullPointer(field),
            AbiError::Overflow(_) => AbiError::Overflow(field),
            AbiError::OutOfBounds(_) => AbiError::OutOfBounds(field),
            AbiError::Misaligned { align, .. } => AbiError::Misaligned { field, align },
            AbiError::Empty(_) => AbiError::Empty(field),
            AbiError::TooLarge { len, max, .. } => AbiError::TooLarge { field, len, max },
            other => other,
        }
    }
}

impl fmt::Display for AbiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AbiError::ShortRequest { len } => {
                write!(f, "request is {len} bytes, needs {}", crate::REQUEST_SIZE)
            }
            AbiError::BadMagic { found } => write!(f, "bad magic {found:#010x}"),
            AbiError::BadVersion { found } => write!(
                f,
                "ABI version {found} not supported (speaks {})",
                crate::VERSION
            ),
            AbiError::UnknownCall { number } => write!(f, "unknown call number {number}"),
            AbiError::KindMismatch { number, kind } => {
                write!(f, "request kind {kind} but call number {number}")
            }
            AbiError::ReservedNotZero(x) => write!(f, "{}: reserved field not zero", x.name()),
            AbiError::NullPointer(x) => write!(f, "{}: null pointer", x.name()),
            AbiError::Overflow(x) => write!(f, "{}: address range wraps around", x.name()),
            AbiError::OutOfBounds(x) => write!(f, "{}: outside guest memory", x.name()),
            AbiError::Misaligned { field, align } => {
                write!(f, "{}: not {align}-byte aligned", field.name())
            }
            AbiError::InvalidAlignment { align } => {
                write!(f, "alignment {align} is not a power of two")
            }
            AbiError::Empty(x) => write!(f, "{}: empty", x.name()),
            AbiError::TooLarge { field, len, max } => {
                write!(f, "{}: {len} bytes exceeds {max}", field.name())
            }
            AbiError::BadToolName => {
                f.write_str("tool name must be 1..=64 bytes of [a-z0-9_] starting with a letter")
            }
            AbiError::ArgsNotObject => f.write_str("args must be UTF-8 JSON object text"),
            AbiError::TextNotUtf8 => f.write_str("text is not UTF-8"),
        }
    }
}
