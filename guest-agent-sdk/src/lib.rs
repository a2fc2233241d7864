//! no_std SDK for agents that run as probevisor guests (see docs/agents.md and docs/hypercall-abi.md).
//!
//! An agent is a `#![no_std] #![no_main]` binary for `x86_64-unknown-none` that calls
//! `agent_main!` with a `fn(&mut GuestAgent) -> u32`. Every tool call goes through an [`Agent`],
//! which stages the request in a buffer shared with the hypervisor and issues the hypercall through a
//! [`Transport`]: VMCALL/VMMCALL in a guest (`guest::GuestTransport`), the tool device MMIO window
//! (`guest::MmioTransport`), or a mock hypervisor in this crate's host tests.
#![cfg_attr(not(test), no_std)]

pub mod json;
mod tools;

#[cfg(target_os = "none")]
pub mod guest;
#[cfg(test)]
mod mock;
#[cfg(test)]
mod sdk_tests;

pub use hypercall_abi as abi;
pub use hypercall_abi::{Kind, Request, Status};
pub use json::JsonObject;
pub use tools::names;

use hypercall_abi::{check_tool_name, MAX_TEXT_LEN, REQUEST_SIZE};

/// The agent type [`agent_main!`] passes to the agent's main function.
#[cfg(target_os = "none")]
pub type GuestAgent = Agent<guest::GuestTransport>;

/// How a request reaches the hypervisor.
pub trait Transport {
    /// The staging buffer shared with the hypervisor and its guest-physical address (8-byte aligned).
    fn staging(&mut self) -> (u64, &mut [u8]);
    /// Issue call `number` (`RAX`) with the request at `request_gpa` (`RBX`); returns `(RAX, RDX)`.
    fn hypercall(&mut self, number: u64, request_gpa: u64) -> (u64, u64);
    /// Stop for good (after an exit request the hypervisor should never resume the agent).
    fn halt(&mut self) -> !;
}

/// Where the parts of a request live inside the staging buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub name: usize,
    pub args: usize,
    pub args_cap: usize,
    pub result: usize,
    pub result_cap: usize,
}

impl Layout {
    /// Request at 0, name at 64 (64 bytes), arguments next (a quarter of the rest), result after.
    pub fn for_len(len: usize) -> Option<Layout> {
        let body = len.checked_sub(2 * REQUEST_SIZE).filter(|b| *b >= 64)?;
        let args_cap = (body / 4) & !7;
        let result = 2 * REQUEST_SIZE + args_cap;
        Some(Layout {
            name: REQUEST_SIZE,
            args: 2 * REQUEST_SIZE,
            args_cap,
            result,
            result_cap: len - result,
        })
    }
}

/// The output of a successful tool call (borrowed from the staging buffer until the next call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolResult<'a> {
    pub output: &'a [u8],
}

impl<'a> ToolResult<'a> {
    /// The output as text (its longest valid UTF-8 prefix).
    pub fn text(&self) -> &'a str {
        utf8_prefix(self.output)
    }
}

/// Why a tool call did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolError<'a> {
    /// The policy refused the action.
    Denied { reason: &'a str },
    /// Anything else: an ABI error, a failed or unknown tool, a local limit, a misbehaving hypervisor.
    Error { code: Status, message: &'a str },
}

impl ToolError<'_> {
    pub fn code(&self) -> Status {
        match self {
            ToolError::Denied { .. } => Status::Denied,
            ToolError::Error { code, .. } => *code,
        }
    }

    /// The reason or message text.
    pub fn message(&self) -> &str {
        match self {
            ToolError::Denied { reason } => reason,
            ToolError::Error { message, .. } => message,
        }
    }

    /// A copy that no longer borrows the agent (message cut to 256 bytes), so it can be logged.
    pub fn detach(&self) -> ToolFailure {
        let mut message = FixedText::default();
        let _ = core::fmt::Write::write_str(&mut message, self.message());
        ToolFailure {
            code: self.code(),
            message,
        }
    }
}

/// An owned [`ToolError`]: its status and (up to 256 bytes of) its message.
#[derive(Debug)]
pub struct ToolFailure {
    pub code: Status,
    pub message: FixedText<256>,
}

impl core::fmt::Display for ToolFailure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.code.name(), self.message.as_str())
    }
}

fn utf8_prefix(bytes: &[u8]) -> &str {
    match core::str::from_utf8(bytes) {
        Ok(s) => s,
        // The prefix up to `valid_up_to` is valid UTF-8 by definition.
        Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

fn local_error(code: Status, message: &'static str) -> ToolError<'static> {
    ToolError::Error { code, message }
}

/// An agent's connection to the hypervisor.
pub struct Agent<T: Transport> {
    transport: T,
}

impl<T: Transport> Agent<T> {
    pub fn new(transport: T) -> Agent<T> {
        Agent { transport }
    }

    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    fn layout(&mut self) -> Result<(u64, Layout), ToolError<'static>> {
        let (gpa, buf) = self.transport.staging();
        let layout = Layout::for_len(buf.len()).ok_or(local_error(
            Status::InternalError,
            "staging buffer too small",
        ))?;
        Ok((gpa, layout))
    }

    /// Call tool `name` with `json_args`, the text of a JSON object (MCP `tools/call` arguments).
    pub fn call_tool(
        &mut self,
        name: &str,
        json_args: &str,
    ) -> Result<ToolResult<'_>, ToolError<'_>> {
        self.call_with(name, |buf| {
            let dst = buf.get_mut(..json_args.len())?;
            dst.copy_from_slice(json_args.as_bytes());
            Some(json_args.len())
        })
    }

    /// Call tool `name` with arguments built by `build` (see [`JsonObject`]).
    pub fn call_tool_json(
        &mut self,
        name: &str,
        build: impl FnOnce(&mut JsonObject<'_>),
    ) -> Result<ToolResult<'_>, ToolError<'_>> {
        self.call_with(name, |buf| {
            let mut object = JsonObject::new(buf);
            build(&mut object);
            object.finish()
        })
    }

    /// Stage name and arguments (`write_args` fills the args area, `None` = does not fit) and call.
    fn call_with(
        &mut self,
        name: &str,
        write_args: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> Result<ToolResult<'_>, ToolError<'_>> {
        check_tool_name(name.as_bytes())
            .map_err(|_| local_error(Status::BadRequest, "invalid tool name"))?;
        let (gpa, l) = self.layout()?;
        let (_, buf) = self.transport.staging();
        buf[l.name..l.name + name.len()].copy_from_slice(name.as_bytes());
        let args_len = write_args(&mut buf[l.args..l.args + l.args_cap]).ok_or(local_error(
            Status::TooLarge,
            "arguments do not fit the staging buffer",
        ))?;
        let mut request = Request::new(Kind::ToolCall);
        (request.name_gpa, request.name_len) = (gpa + l.name as u64, name.len() as u64);
        (request.args_gpa, request.args_len) = (gpa + l.args as u64, args_len as u64);
        (request.result_gpa, request.result_cap) = (gpa + l.result as u64, l.result_cap as u64);
        buf[..REQUEST_SIZE].copy_from_slice(&request.to_bytes());
        let (status, len) = self.transport.hypercall(Kind::ToolCall as u64, gpa);
        let (_, buf) = self.transport.staging();
        let buf: &[u8] = buf;
        interpret(status, len, &buf[l.result..])
    }

    /// Write text to the agent console, in chunks the ABI accepts (split at character boundaries).
    pub fn console_write(&mut self, text: &str) -> Result<(), ToolError<'static>> {
        let (_, l) = self.layout()?;
        let chunk_max = l.args_cap.min(MAX_TEXT_LEN as usize);
        let mut rest = text;
        while !rest.is_empty() {
            let mut chunk = truncate_utf8(rest, chunk_max);
            if chunk.is_empty() {
                chunk = &rest[..rest.chars().next().map_or(0, char::len_utf8)];
            }
            let (status, _) = self.send_text(Kind::ConsoleWrite, 0, chunk)?;
            if status != Status::Ok as u64 {
                let code = Status::from_u64(status).unwrap_or(Status::InternalError);
                return Err(local_error(code, "console write refused"));
            }
            rest = &rest[chunk.len()..];
        }
        Ok(())
    }

    /// A [`core::fmt::Write`] over the console hypercall, line-buffered: text is sent at each newline,
    /// when the buffer fills, and when the `Console` is dropped (one hypercall per line, not per piece).
    pub fn console(&mut self) -> Console<'_, T> {
        Console {
            agent: self,
            pending: FixedText::default(),
        }
    }

    fn send_text(
        &mut self,
        kind: Kind,
        exit_code: u32,
        text: &str,
    ) -> Result<(u64, u64), ToolError<'static>> {
        let (gpa, l) = self.layout()?;
        let text = truncate_utf8(text, l.args_cap.min(MAX_TEXT_LEN as usize));
        let (_, buf) = self.transport.staging();
        buf[l.args..l.args + text.len()].copy_from_slice(text.as_bytes());
        let mut request = Request::new(kind);
        request.exit_code = exit_code;
        if !text.is_empty() {
            (request.args_gpa, request.args_len) = (gpa + l.args as u64, text.len() as u64);
        }
        buf[..REQUEST_SIZE].copy_from_slice(&request.to_bytes());
        Ok(self.transport.hypercall(kind as u64, gpa))
    }

    /// Ask the hypervisor to stop the agent; returns only if the hypervisor resumes it anyway.
    /// The message is cut to [`MAX_TEXT_LEN`] bytes.
    pub fn send_exit(&mut self, code: u32, message: &str) -> Status {
        match self.send_text(Kind::Exit, code, message) {
            Ok((status, _)) => Status::from_u64(status).unwrap_or(Status::InternalError),
            Err(e) => e.code(),
        }
    }

    /// Stop the agent with `code` (the hypervisor logs `message`).
    pub fn exit(&mut self, code: u32, message: &str) -> ! {
        self.send_exit(code, message);
        self.transport.halt()
    }

    /// Copy `request` verbatim (pointers unchecked) to the start of the staging buffer and return its
    /// address. For agents that probe the hypervisor's validation (see agents/misbehaving).
    pub fn stage_request(&mut self, request: &Request) -> u64 {
        let (gpa, buf) = self.transport.staging();
        if let Some(dst) = buf.get_mut(..REQUEST_SIZE) {
            dst.copy_from_slice(&request.to_bytes());
        }
        gpa
    }

    /// Copy `bytes` into the argument area of the staging buffer; their address, or `None` if too long.
    pub fn stage_bytes(&mut self, bytes: &[u8]) -> Option<u64> {
        let (gpa, l) = self.layout().ok()?;
        if bytes.len() > l.args_cap {
            return None;
        }
        let (_, buf) = self.transport.staging();
        buf[l.args..l.args + bytes.len()].copy_from_slice(bytes);
        Some(gpa + l.args as u64)
    }

    /// Issue a hypercall with any number and request address; returns the raw `(RAX, RDX)`.
    pub fn raw_hypercall(&mut self, number: u64, request_gpa: u64) -> (u64, u64) {
        self.transport.hypercall(number, request_gpa)
    }
}

/// Turn `(RAX, RDX)` of a tool call into a result, reading text from the result buffer.
fn interpret(status: u64, len: u64, result: &[u8]) -> Result<ToolResult<'_>, ToolError<'_>> {
    let Some(status) = Status::from_u64(status) else {
        return Err(local_error(
            Status::InternalError,
            "hypervisor returned an unknown status",
        ));
    };
    if status == Status::TooLarge {
        return Err(local_error(
            Status::TooLarge,
            "result larger than the staging buffer",
        ));
    }
    let Some(text) = usize::try_from(len).ok().and_then(|n| result.get(..n)) else {
        return Err(local_error(
            Status::InternalError,
            "hypervisor returned a result length beyond the buffer",
        ));
    };
    match status {
        Status::Ok => Ok(ToolResult { output: text }),
        Status::Denied => Err(ToolError::Denied {
            reason: utf8_prefix(text),
        }),
        code => {
            let message = if text.is_empty() {
                code.name()
            } else {
                utf8_prefix(text)
            };
            Err(ToolError::Error { code, message })
        }
    }
}

/// Line-buffered [`core::fmt::Write`] over the console hypercall (see [`Agent::console`]).
pub struct Console<'a, T: Transport> {
    agent: &'a mut Agent<T>,
    pending: FixedText<CONSOLE_LINE>,
}

/// Bytes a [`Console`] collects before it sends.
pub const CONSOLE_LINE: usize = 256;

impl<T: Transport> Console<'_, T> {
    /// Send what is buffered.
    pub fn flush(&mut self) -> core::fmt::Result {
        let result = self
            .agent
            .console_write(self.pending.as_str())
            .map_err(|_| core::fmt::Error);
        self.pending.clear();
        result
    }
}

impl<T: Transport> core::fmt::Write for Console<'_, T> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        if self.pending.len() + s.len() > CONSOLE_LINE {
            self.flush()?;
        }
        if s.len() > CONSOLE_LINE {
            return self.agent.console_write(s).map_err(|_| core::fmt::Error);
        }
        self.pending.write_str(s)?;
        if s.contains('\n') {
            self.flush()?;
        }
        Ok(())
    }
}

impl<T: Transport> Drop for Console<'_, T> {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            let _ = self.flush();
        }
    }
}

/// A fixed-capacity text buffer for formatting without allocation (panic messages); text that does
/// not fit is dropped at a character boundary.
pub struct FixedText<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Default for FixedText<N> {
    fn default() -> Self {
        FixedText {
            buf: [0; N],
            len: 0,
        }
    }
}

impl<const N: usize> core::fmt::Debug for FixedText<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> FixedText<N> {
    pub fn as_str(&self) -> &str {
        utf8_prefix(&self.buf[..self.len])
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl<const N: usize> core::fmt::Write for FixedText<N> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let part = truncate_utf8(s, N - self.len);
        self.buf[self.len..self.len + part.len()].copy_from_slice(part.as_bytes());
        self.len += part.len();
        if part.len() < s.len() {
            return Err(core::fmt::Error);
        }
        Ok(())
    }
}
