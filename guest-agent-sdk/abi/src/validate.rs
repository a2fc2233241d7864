//! Hypervisor-side checks of a hypercall: every pointer, length, alignment and field of a request.

use crate::{
    AbiError, Field, Kind, Request, Status, MAGIC, MAX_ARGS_LEN, MAX_NAME_LEN, MAX_RESULT_CAP,
    MAX_TEXT_LEN, REQUEST_ALIGN, REQUEST_SIZE, VERSION,
};
use core::ops::Range;

/// Check that `gpa..gpa+len` lies inside guest memory `0..guest_mem_size` and that `gpa` is a multiple of
/// `align` (a power of two). A zero-length range touches no memory and is returned as `0..0`.
/// Order of checks: alignment argument, null pointer, alignment, wrap-around, bounds.
pub fn validate_range(
    gpa: u64,
    len: u64,
    guest_mem_size: u64,
    align: u64,
) -> Result<Range<u64>, AbiError> {
    if align == 0 || !align.is_power_of_two() {
        return Err(AbiError::InvalidAlignment { align });
    }
    if len == 0 {
        return Ok(0..0);
    }
    if gpa == 0 {
        return Err(AbiError::NullPointer(Field::Range));
    }
    if gpa & (align - 1) != 0 {
        return Err(AbiError::Misaligned {
            field: Field::Range,
            align,
        });
    }
    let end = gpa
        .checked_add(len)
        .ok_or(AbiError::Overflow(Field::Range))?;
    if end > guest_mem_size {
        return Err(AbiError::OutOfBounds(Field::Range));
    }
    Ok(gpa..end)
}

/// Read a request from its wire bytes (at least [`REQUEST_SIZE`]) and check magic, version, kind, flags.
pub fn parse_request(bytes: &[u8]) -> Result<Request, AbiError> {
    let b: &[u8; REQUEST_SIZE] = bytes
        .get(..REQUEST_SIZE)
        .and_then(|s| s.try_into().ok())
        .ok_or(AbiError::ShortRequest { len: bytes.len() })?;
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let u64_at = |o: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[o..o + 8]);
        u64::from_le_bytes(w)
    };
    let request = Request {
        magic: u32_at(0),
        version: u16_at(4),
        kind: u16_at(6),
        flags: u32_at(8),
        exit_code: u32_at(12),
        name_gpa: u64_at(16),
        name_len: u64_at(24),
        args_gpa: u64_at(32),
        args_len: u64_at(40),
        result_gpa: u64_at(48),
        result_cap: u64_at(56),
    };
    if request.magic != MAGIC {
        return Err(AbiError::BadMagic {
            found: request.magic,
        });
    }
    if request.version != VERSION {
        return Err(AbiError::BadVersion {
            found: request.version,
        });
    }
    if Kind::from_u64(request.kind.into()).is_none() {
        return Err(AbiError::UnknownCall {
            number: request.kind.into(),
        });
    }
    if request.flags != 0 {
        return Err(AbiError::ReservedNotZero(Field::Request));
    }
    Ok(request)
}

/// Tool names are 1..=64 bytes of `[a-z0-9_]`, starting with a letter.
pub fn check_tool_name(bytes: &[u8]) -> Result<&str, AbiError> {
    let ok_first = bytes.first().is_some_and(u8::is_ascii_lowercase);
    let ok_rest = bytes
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_');
    if !ok_first || !ok_rest || bytes.len() as u64 > MAX_NAME_LEN {
        return Err(AbiError::BadToolName);
    }
    core::str::from_utf8(bytes).map_err(|_| AbiError::BadToolName)
}

/// Arguments are UTF-8 text that looks like one JSON object (`{` ... `}` after trimming whitespace).
/// The full JSON parse happens later, in the probe pipeline.
pub fn check_args_json(bytes: &[u8]) -> Result<&str, AbiError> {
    let text = core::str::from_utf8(bytes).map_err(|_| AbiError::ArgsNotObject)?;
    let t = text.trim_matches(|c: char| c.is_ascii_whitespace());
    if t.len() < 2 || !t.starts_with('{') || !t.ends_with('}') {
        return Err(AbiError::ArgsNotObject);
    }
    Ok(text)
}

/// A checked hypercall, borrowing its buffers from guest memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call<'a> {
    /// `result` is the validated result buffer (capacity clamped to [`MAX_RESULT_CAP`]).
    ToolCall {
        name: &'a str,
        args: &'a str,
        result: Range<u64>,
    },
    ConsoleWrite {
        text: &'a str,
    },
    /// A malformed exit request still stops the agent; the hypervisor records the error.
    Exit {
        code: u32,
        message: &'a str,
    },
}

/// Decode and check the hypercall `number` (guest `RAX`) with its request at `request_gpa` (guest `RBX`)
/// against guest memory `mem` (guest-physical address 0 is `mem[0]`).
pub fn decode_call(number: u64, request_gpa: u64, mem: &[u8]) -> Result<Call<'_>, AbiError> {
    let kind = Kind::from_u64(number).ok_or(AbiError::UnknownCall { number })?;
    let mem_size = mem.len() as u64;
    let range = validate_range(request_gpa, REQUEST_SIZE as u64, mem_size, REQUEST_ALIGN)
        .map_err(|e| e.in_field(Field::Request))?;
    let request = parse_request(slice(mem, &range)?)?;
    if u64::from(request.kind) != number {
        return Err(AbiError::KindMismatch {
            number,
            kind: request.kind,
        });
    }
    let buffer = |gpa: u64, len: u64, field: Field, max: u64| -> Result<&[u8], AbiError> {
        if len > max {
            return Err(AbiError::TooLarge { field, len, max });
        }
        let range = validate_range(gpa, len, mem_size, 1).map_err(|e| e.in_field(field))?;
        slice(mem, &range)
    };
    let unused = |gpa: u64, len: u64, field: Field| {
        if gpa != 0 || len != 0 {
            return Err(AbiError::ReservedNotZero(field));
        }
        Ok(())
    };
    match kind {
        Kind::ToolCall => {
            if request.exit_code != 0 {
                return Err(AbiError::ReservedNotZero(Field::Request));
            }
            if request.name_len == 0 {
                return Err(AbiError::Empty(Field::Name));
            }
            if request.args_len == 0 {
                return Err(AbiError::Empty(Field::Args));
            }
            // Every pointer and length first, then the contents: a request with a bad buffer is a
            // bad pointer whatever the other buffers hold.
            let name = buffer(
                request.name_gpa,
                request.name_len,
                Field::Name,
                MAX_NAME_LEN,
            )?;
            let args = buffer(
                request.args_gpa,
                request.args_len,
                Field::Args,
                MAX_ARGS_LEN,
            )?;
            let cap = request.result_cap.min(MAX_RESULT_CAP);
            let result = validate_range(request.result_gpa, cap, mem_size, 1)
                .map_err(|e| e.in_field(Field::Result))?;
            let name = check_tool_name(name)?;
            let args = check_args_json(args)?;
            Ok(Call::ToolCall { name, args, result })
        }
        Kind::ConsoleWrite | Kind::Exit => {
            unused(request.name_gpa, request.name_len, Field::Name)?;
            unused(request.result_gpa, request.result_cap, Field::Result)?;
            let bytes = buffer(
                request.args_gpa,
                request.args_len,
                Field::Args,
                MAX_TEXT_LEN,
            )?;
            let text = core::str::from_utf8(bytes).map_err(|_| AbiError::TextNotUtf8)?;
            if kind == Kind::ConsoleWrite {
                if request.exit_code != 0 {
                    return Err(AbiError::ReservedNotZero(Field::Request));
                }
                Ok(Call::ConsoleWrite { text })
            } else {
                Ok(Call::Exit {
                    code: request.exit_code,
                    message: text,
                })
            }
        }
    }
}

fn slice<'m>(mem: &'m [u8], range: &Range<u64>) -> Result<&'m [u8], AbiError> {
    let start = usize::try_from(range.start).map_err(|_| AbiError::OutOfBounds(Field::Range))?;
    let end = usize::try_from(range.end).map_err(|_| AbiError::OutOfBounds(Field::Range))?;
    mem.get(start..end)
        .ok_or(AbiError::OutOfBounds(Field::Range))
}

/// What the hypervisor puts in the guest's `RAX` (status) and `RDX` (result length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub status: Status,
    pub len: u64,
}

impl Response {
    pub fn error(error: AbiError) -> Response {
        Response {
            status: error.status(),
            len: 0,
        }
    }

    /// `(RAX, RDX)`.
    pub fn registers(self) -> (u64, u64) {
        (self.status as u64, self.len)
    }
}

/// Write a tool's answer into the validated `result` buffer and build the response.
/// An `Ok` payload that does not fit gives [`Status::TooLarge`] with `len` = the length needed and the
/// buffer holding the first bytes; reason and error texts of other statuses are cut at a UTF-8
/// character boundary to fit and keep their status. A request-error status (2..=9,
/// [`Status::is_abi_error`], such as a bridged `TooLarge`) writes nothing and gives `len` 0, whatever
/// the payload: its `RDX` would otherwise read as "bytes needed" and the message as output.
pub fn write_result(
    mem: &mut [u8],
    result: Range<u64>,
    status: Status,
    payload: &[u8],
) -> Response {
    if status.is_abi_error() {
        return Response { status, len: 0 };
    }
    let cap = (result.end - result.start) as usize;
    let Ok(start) = usize::try_from(result.start) else {
        return Response {
            status: Status::InternalError,
            len: 0,
        };
    };
    let Some(buf) = mem.get_mut(start..start.saturating_add(cap)) else {
        return Response {
            status: Status::InternalError,
            len: 0,
        };
    };
    if payload.len() <= cap {
        buf[..payload.len()].copy_from_slice(payload);
        return Response {
            status,
            len: payload.len() as u64,
        };
    }
    if status == Status::Ok {
        buf.copy_from_slice(&payload[..cap]);
        return Response {
            status: Status::TooLarge,
            len: payload.len() as u64,
        };
    }
    let mut cut = cap;
    if core::str::from_utf8(payload).is_ok() {
        while cut > 0 && (payload[cut] & 0xC0) == 0x80 {
            cut -= 1;
        }
    }
    buf[..cut].copy_from_slice(&payload[..cut]);
    Response {
        status,
        len: cut as u64,
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "write_result_tests.rs"]
mod write_result_tests;
