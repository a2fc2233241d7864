//! COM2 frames between the hypervisor and the host bridge (no_std + alloc).
//!
//! Layout, little endian (docs/bridge.md):
//! `magic "PB"` (2) | `version` (1) | `kind` (1) | `request id` (u32) | `payload length` (u32) | payload | `CRC-32` (u32)
//! The CRC covers the 12-byte header and the payload. Payload length is at most [`MAX_PAYLOAD`].

use crate::crc32::Crc32;
use alloc::vec::Vec;
use core::fmt;

pub const MAGIC: [u8; 2] = *b"PB";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 12;
pub const TRAILER_LEN: usize = 4;
/// Largest payload a frame may carry (1 MiB, the ABI's result buffer cap).
pub const MAX_PAYLOAD: usize = 1 << 20;
/// Request id of the Error frames the bridge sends for frames it could not decode (requests count from 1).
pub const FRAMING_ERROR_ID: u32 = 0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// Guest -> host: `{"tool": NAME, "args": {...}}`.
    Request = 1,
    /// Host -> guest: the tool output bytes.
    Response = 2,
    /// Host -> guest: `{"code": CODE, "message": TEXT}`.
    Error = 3,
}

impl FrameKind {
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Request),
            2 => Some(Self::Response),
            3 => Some(Self::Error),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub kind: FrameKind,
    pub id: u32,
    pub payload: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    PayloadTooLarge { len: usize },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PayloadTooLarge { len } => {
                write!(
                    f,
                    "payload of {len} bytes exceeds the frame limit of {MAX_PAYLOAD}"
                )
            }
        }
    }
}

impl Frame {
    pub fn new(kind: FrameKind, id: u32, payload: Vec<u8>) -> Self {
        Frame { kind, id, payload }
    }

    /// The frame's bytes on the wire.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        encode(self.kind, self.id, &self.payload)
    }
}

/// Encodes one frame.
pub fn encode(kind: FrameKind, id: u32, payload: &[u8]) -> Result<Vec<u8>, EncodeError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(EncodeError::PayloadTooLarge { len: payload.len() });
    }
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + TRAILER_LEN);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(kind as u8);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    let mut crc = Crc32::new();
    crc.update(&out);
    out.extend_from_slice(&crc.finish().to_le_bytes());
    Ok(out)
}

/// Why bytes were refused. Every error drops at least the offending magic and the decoder then looks for the next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Bytes before a magic were not a frame start; `skipped` of them were discarded.
    BadMagic {
        skipped: usize,
    },
    BadVersion {
        version: u8,
    },
    BadKind {
        kind: u8,
    },
    Oversized {
        len: u32,
    },
    BadChecksum {
        id: u32,
        expected: u32,
        found: u32,
    },
    /// The stream ended (or went quiet) inside a frame: `have` of `need` bytes arrived.
    Truncated {
        have: usize,
        need: usize,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadMagic { skipped } => write!(f, "bad magic: skipped {skipped} byte(s) before the next frame start"),
            Self::BadVersion { version } => write!(f, "unsupported frame version {version} (expected {VERSION})"),
            Self::BadKind { kind } => write!(f, "bad frame kind {kind} (expected 1 request, 2 response, 3 error)"),
            Self::Oversized { len } => write!(f, "payload length {len} exceeds the limit of {MAX_PAYLOAD} bytes"),
            Self::BadChecksum { id, expected, found } => write!(
                f,
                "checksum mismatch in frame id {id}: computed {expected:#010x}, frame says {found:#010x}"
            ),
            Self::Truncated { have, need } => write!(f, "truncated frame: {have} of {need} bytes arrived"),
        }
    }
}

/// Streaming decoder: `push` bytes as they arrive, then call `next_frame` until it returns `None`.
#[derive(Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held back, waiting for the rest of a frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame, a refusal, or `None` when more bytes are needed.
    pub fn next_frame(&mut self) -> Option<Result<Frame, FrameError>> {
        if self.buf.is_empty() {
            return None;
        }
        if !self.buf.starts_with(&MAGIC) {
            if self.buf.len() == 1 && self.buf[0] == MAGIC[0] {
                return None; // half a magic: wait
            }
            let skipped = self.garbage_prefix_len();
            self.buf.drain(..skipped);
            return Some(Err(FrameError::BadMagic { skipped }));
        }
        if self.buf.len() < HEADER_LEN {
            return None;
        }
        let version = self.buf[2];
        if version != VERSION {
            return Some(Err(self.refuse(FrameError::BadVersion { version })));
        }
        let kind_byte = self.buf[3];
        let Some(kind) = FrameKind::from_u8(kind_byte) else {
            return Some(Err(self.refuse(FrameError::BadKind { kind: kind_byte })));
        };
        let id = u32::from_le_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]);
        let len = u32::from_le_bytes([self.buf[8], self.buf[9], self.buf[10], self.buf[11]]);
        if len as usize > MAX_PAYLOAD {
            return Some(Err(self.refuse(FrameError::Oversized { len })));
        }
        let total = HEADER_LEN + len as usize + TRAILER_LEN;
        if self.buf.len() < total {
            return None;
        }
        let body_end = HEADER_LEN + len as usize;
        let mut crc = Crc32::new();
        crc.update(&self.buf[..body_end]);
        let expected = crc.finish();
        let t = &self.buf[body_end..total];
        let found = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
        if expected != found {
            // The length itself may be the corrupted field: rescan everything after this magic.
            return Some(Err(self.refuse(FrameError::BadChecksum {
                id,
                expected,
                found,
            })));
        }
        let payload = self.buf[HEADER_LEN..body_end].to_vec();
        self.buf.drain(..total);
        Some(Ok(Frame { kind, id, payload }))
    }

    /// Gives up on a partial frame (end of stream, or the sender went quiet): returns `Truncated` and
    /// rescans what followed its magic. `None` when nothing is pending.
    pub fn abandon_partial(&mut self) -> Option<FrameError> {
        if self.buf.is_empty() {
            return None;
        }
        let have = self.buf.len();
        let need = if self.buf.len() >= HEADER_LEN {
            let len = u32::from_le_bytes([self.buf[8], self.buf[9], self.buf[10], self.buf[11]]);
            HEADER_LEN + len as usize + TRAILER_LEN
        } else {
            HEADER_LEN + TRAILER_LEN
        };
        let drop = if self.buf.starts_with(&MAGIC) {
            MAGIC.len()
        } else {
            1
        };
        self.buf.drain(..drop.min(have));
        Some(FrameError::Truncated { have, need })
    }

    /// Drops the magic of a refused frame so the search restarts at the byte after it.
    fn refuse(&mut self, e: FrameError) -> FrameError {
        self.buf.drain(..MAGIC.len());
        e
    }

    /// Length of the prefix that cannot start a frame: up to the next magic, or up to a trailing `MAGIC[0]`.
    fn garbage_prefix_len(&self) -> usize {
        let b = &self.buf;
        for i in 1..b.len() {
            if b[i] == MAGIC[0] && (i + 1 == b.len() || b[i + 1] == MAGIC[1]) {
                return i;
            }
        }
        b.len()
    }
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
