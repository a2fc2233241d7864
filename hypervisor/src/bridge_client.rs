//! The hypervisor's side of the MCP bridge (docs/bridge.md): an approved file tool call leaves as a
//! request frame on a UART (COM2), and the client waits, bounded, for the matching response or error
//! frame. Pure logic over the [`Uart`] trait and a millisecond clock, so it is host-tested with a
//! fake UART; `hw::com2` is the real port.
//!
//! Nothing from the UART is trusted beyond the frame codec's checks (magic, version, kind, length
//! ≤ 1 MiB, CRC-32). Every failure, a timeout, a garbled frame, a frame for another request, an
//! error frame, ends the call with a [`BridgeFailure`] that names the ABI status it stands for;
//! the client never waits without a deadline. Before each request the receive side is drained,
//! so a late answer to an earlier (timed-out) call cannot be taken for this one.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use hypercall_abi::Status;
use mcp_bridge::frame::{self, FrameDecoder, FrameKind};
use mcp_bridge::wire_error::{BridgeError, ErrorCode};

/// The tools that go to the bridge when it is enabled; every other tool stays in the hypervisor.
pub const BRIDGED_TOOLS: [&str; 3] = ["read_file", "write_file", "list_dir"];

/// How long a call waits for its answer. The bridge itself answers within its per-call timeout
/// (10 s) plus the server's start; under Bochs the hypervisor's clock runs far slower than wall time.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// Backstop if the clock does not advance: polls of the UART before the call is given up.
pub const DEFAULT_MAX_POLLS: u64 = 4_000_000_000;
/// Most bytes discarded while draining stale input before a request (2 frames of the maximum size).
const DRAIN_LIMIT: usize = 2 * (frame::MAX_PAYLOAD + frame::HEADER_LEN + frame::TRAILER_LEN);
/// Bytes read from the UART between two looks at the decoder.
const READ_BATCH: usize = 256;

/// A byte-wide serial port, non-blocking.
pub trait Uart {
    /// A received byte, if one is waiting.
    fn try_read(&mut self) -> Option<u8>;
    /// Sends `byte` if the transmitter can take it; `false` means try again later.
    fn try_write(&mut self, byte: u8) -> bool;
}

/// What went wrong with a bridged call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// No (complete) answer before the deadline, or the transmitter never took the request.
    Timeout,
    /// Bytes that are not a valid frame (the codec's refusal).
    Garbled,
    /// A valid frame for another request id, or of the wrong kind.
    Unexpected,
    /// The bridge answered with an error frame (its code).
    Remote(ErrorCode),
    /// The request could not be built or the bridge is not there.
    Local,
}

/// A bridged call that produced no tool output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeFailure {
    pub kind: FailureKind,
    /// The ABI status this failure stands for (docs/bridge.md, error codes).
    pub status: Status,
    pub message: String,
}

impl fmt::Display for BridgeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl BridgeFailure {
    fn new(kind: FailureKind, status: Status, message: String) -> Self {
        Self {
            kind,
            status,
            message,
        }
    }

    fn from_remote(error: BridgeError) -> Self {
        let status = match error.code {
            ErrorCode::BadFrame | ErrorCode::BadRequest => Status::InternalError,
            ErrorCode::UnknownTool => Status::UnknownTool,
            ErrorCode::TooLarge => Status::TooLarge,
            ErrorCode::Unsupported
            | ErrorCode::BadPath
            | ErrorCode::ToolFailed
            | ErrorCode::Timeout
            | ErrorCode::ServerExited
            | ErrorCode::ServerError => Status::ToolFailed,
        };
        Self::new(
            FailureKind::Remote(error.code),
            status,
            format!("bridge error {error}"),
        )
    }
}

/// One bridged call: the request id it went out under (0 if it never went out) and its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeCall {
    pub id: u32,
    pub result: Result<Vec<u8>, BridgeFailure>,
}

/// Where approved file tool calls go when the bridge is on.
pub trait ToolBridge {
    /// Sends `{"tool": tool, "args": args_json}` and waits for the answer. `args_json` must be a
    /// JSON object (the arguments the gate decided on, re-serialised).
    fn call(&mut self, tool: &str, args_json: &str) -> BridgeCall;
}

/// The bridge asked for on the command line, but absent: every bridged call fails (fail closed).
pub struct Unavailable(pub &'static str);

impl ToolBridge for Unavailable {
    fn call(&mut self, _tool: &str, _args_json: &str) -> BridgeCall {
        BridgeCall {
            id: 0,
            result: Err(BridgeFailure::new(
                FailureKind::Local,
                Status::InternalError,
                format!("bridge unavailable: {}", self.0),
            )),
        }
    }
}

/// The frame client over a UART.
pub struct BridgeClient<U: Uart> {
    uart: U,
    clock_ms: fn() -> u64,
    timeout_ms: u64,
    max_polls: u64,
    next_id: u32,
    decoder: FrameDecoder,
}

impl<U: Uart> BridgeClient<U> {
    pub fn new(uart: U, clock_ms: fn() -> u64) -> Self {
        Self::with_limits(uart, clock_ms, DEFAULT_TIMEOUT_MS, DEFAULT_MAX_POLLS)
    }

    pub fn with_limits(uart: U, clock_ms: fn() -> u64, timeout_ms: u64, max_polls: u64) -> Self {
        Self {
            uart,
            clock_ms,
            timeout_ms,
            max_polls: max_polls.max(1),
            next_id: 1,
            decoder: FrameDecoder::new(),
        }
    }

    /// The UART, for tests.
    pub fn uart_mut(&mut self) -> &mut U {
        &mut self.uart
    }

    fn take_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        id
    }

    /// Discards whatever arrived since the last call (late answers, noise), bounded.
    fn drain(&mut self) -> usize {
        self.decoder = FrameDecoder::new();
        let mut dropped = 0;
        while dropped < DRAIN_LIMIT && self.uart.try_read().is_some() {
            dropped += 1;
        }
        dropped
    }

    fn timeout(&self, what: &str, id: u32) -> BridgeFailure {
        BridgeFailure::new(
            FailureKind::Timeout,
            Status::InternalError,
            format!(
                "bridge timeout: {what} (request id {id}, limit {} ms)",
                self.timeout_ms
            ),
        )
    }

    fn exchange(&mut self, id: u32, bytes: &[u8]) -> Result<Vec<u8>, BridgeFailure> {
        let start = (self.clock_ms)();
        let mut polls: u64 = 0;
        let expired = |polls: u64, clock: fn() -> u64, limit: u64, max: u64| {
            polls >= max || clock().saturating_sub(start) >= limit
        };
        for &byte in bytes {
            while !self.uart.try_write(byte) {
                polls += 1;
                if expired(polls, self.clock_ms, self.timeout_ms, self.max_polls) {
                    return Err(self.timeout("COM2 did not take the request", id));
                }
                core::hint::spin_loop();
            }
        }
        let mut batch = [0u8; READ_BATCH];
        loop {
            let mut got = 0;
            while got < READ_BATCH {
                match self.uart.try_read() {
                    Some(b) => {
                        batch[got] = b;
                        got += 1;
                    }
                    None => break,
                }
            }
            // Every look counts toward the poll backstop, busy ones too: with a clock that does not
            // move, a bridge that keeps trickling bytes must not hold the call for good.
            polls += 1;
            if got > 0 {
                self.decoder.push(&batch[..got]);
            }
            while let Some(answer) = self.decoder.next_frame() {
                // The late answer of an earlier request that timed out here: not this one's.
                if matches!(&answer, Ok(f) if is_earlier_answer(f, id)) {
                    continue;
                }
                return self.judge(id, answer);
            }
            // Also while bytes keep coming: an answer that trickles in must not outlast the deadline.
            if expired(polls, self.clock_ms, self.timeout_ms, self.max_polls) {
                let what = if self.decoder.pending() > 0 {
                    format!(
                        "the answer stopped after {} byte(s)",
                        self.decoder.pending()
                    )
                } else {
                    String::from("no answer from the bridge")
                };
                return Err(self.timeout(&what, id));
            }
            core::hint::spin_loop();
        }
    }

    fn judge(
        &mut self,
        id: u32,
        answer: Result<frame::Frame, frame::FrameError>,
    ) -> Result<Vec<u8>, BridgeFailure> {
        let frame = answer.map_err(|e| {
            BridgeFailure::new(
                FailureKind::Garbled,
                Status::InternalError,
                format!("bridge sent a bad frame: {e}"),
            )
        })?;
        let unexpected = |why: String| {
            Err(BridgeFailure::new(
                FailureKind::Unexpected,
                Status::InternalError,
                why,
            ))
        };
        match frame.kind {
            FrameKind::Error if frame.id == id || frame.id == frame::FRAMING_ERROR_ID => {
                match BridgeError::from_payload(&frame.payload) {
                    Ok(error) => Err(BridgeFailure::from_remote(error)),
                    Err(why) => Err(BridgeFailure::new(
                        FailureKind::Garbled,
                        Status::InternalError,
                        format!("bridge error frame id {} unreadable: {why}", frame.id),
                    )),
                }
            }
            FrameKind::Response if frame.id == id => Ok(frame.payload),
            FrameKind::Request => unexpected(format!(
                "bridge sent a request frame (id {}) instead of an answer",
                frame.id
            )),
            _ => unexpected(format!(
                "bridge answered request id {} while id {id} was waiting",
                frame.id
            )),
        }
    }
}

/// The request payload `{"tool": NAME, "args": ARGS}`; `args_json` is inserted as is.
pub fn request_payload(tool: &str, args_json: &str) -> Vec<u8> {
    let mut text = String::from("{\"tool\":");
    probe::json::write_string(&mut text, tool);
    text.push_str(",\"args\":");
    text.push_str(args_json);
    text.push('}');
    text.into_bytes()
}

impl<U: Uart> ToolBridge for BridgeClient<U> {
    fn call(&mut self, tool: &str, args_json: &str) -> BridgeCall {
        let id = self.take_id();
        self.drain();
        let result = match frame::encode(FrameKind::Request, id, &request_payload(tool, args_json))
        {
            Ok(bytes) => self.exchange(id, &bytes),
            Err(e) => Err(BridgeFailure::new(
                FailureKind::Local,
                Status::TooLarge,
                format!("request not sent: {e}"),
            )),
        };
        BridgeCall { id, result }
    }
}

/// The `bridge=` word of the kernel command line: `bridge=com2` turns the bridge on, `bridge=off`
/// (or no word) leaves it off; the last word wins. Any other value is an error (the boot fails).
pub fn requested(cmdline: &str) -> Result<bool, String> {
    let mut on = false;
    for word in cmdline.split_ascii_whitespace() {
        match word.strip_prefix("bridge=") {
            Some("com2") => on = true,
            Some("off") => on = false,
            Some(other) => {
                return Err(format!(
                    "unknown bridge={other:?} (expected bridge=com2 or bridge=off)"
                ))
            }
            None => {}
        }
    }
    Ok(on)
}

/// An answer (Response or Error) to a request sent before `id`: ids count up from 1 and wrap,
/// 0 is the framing-error id.
fn is_earlier_answer(frame: &frame::Frame, id: u32) -> bool {
    matches!(frame.kind, FrameKind::Response | FrameKind::Error)
        && frame.id != frame::FRAMING_ERROR_ID
        && frame.id != id
        && id.wrapping_sub(frame.id) < 1 << 31
}

#[cfg(test)]
#[path = "bridge_client_tests.rs"]
mod tests;
