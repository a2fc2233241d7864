//! MCP client over a child process's stdio: newline-delimited JSON-RPC 2.0 (initialize,
//! notifications/initialized, tools/list, tools/call). Reads and writes run on their own threads so a silent or
//! stuck server costs at most the per-call timeout, never a hang.

use crate::frame::MAX_PAYLOAD;
use crate::json::Json;
use crate::mapping::{self, ResultShape, ServerCall};
use crate::wire_error::{BridgeError, ErrorCode};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub const PROTOCOL_VERSION: &str = "2024-11-05";
const STDERR_TAIL: usize = 2048;
const TRUNCATED_PREVIEW: usize = 64 * 1024;
/// Server messages held until a call reads them; when full the reader stops and the server's
/// writes wait in the pipe (a server that talks between calls costs bounded memory).
const INCOMING_QUEUE: usize = 16;
/// Messages held for a server that does not read its input; more are refused, never queued.
const OUTGOING_QUEUE: usize = 16;

#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Longest wait for each handshake answer (initialize, tools/list): node takes a while to start.
    pub start_timeout: Duration,
    /// Longest wait for the answer to one tools/call.
    pub call_timeout: Duration,
    /// Largest result (bytes of text) passed back; larger ones become `too_large` errors. At most `MAX_PAYLOAD`.
    pub max_result: usize,
    /// Longest JSON-RPC line accepted from the server.
    pub max_line: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            start_timeout: Duration::from_secs(15),
            call_timeout: Duration::from_secs(10),
            max_result: MAX_PAYLOAD,
            max_line: 16 << 20,
        }
    }
}

enum Incoming {
    Line(String),
    TooLong(usize),
    Closed(String),
}

pub struct McpClient {
    child: Child,
    outgoing: Option<SyncSender<Vec<u8>>>,
    incoming: Receiver<Incoming>,
    stderr_tail: Arc<Mutex<Vec<u8>>>,
    next_id: u64,
    tools: Vec<String>,
    scratch: String,
    opts: ClientOptions,
    dead: Option<String>,
    protocol_version: String,
}

fn err(code: ErrorCode, msg: impl Into<String>) -> BridgeError {
    BridgeError::new(code, msg)
}

/// Reads newline-delimited messages, refusing lines longer than `max_line` (drained, not buffered).
fn read_lines(out: impl Read, max_line: usize, tx: SyncSender<Incoming>) {
    let mut r = BufReader::new(out);
    let mut line: Vec<u8> = Vec::new();
    let mut overflow = 0usize;
    loop {
        let (consumed, done) = match r.fill_buf() {
            Ok([]) => {
                let _ = tx.send(Incoming::Closed("server closed its output".into()));
                return;
            }
            Ok(buf) => match buf.iter().position(|&b| b == b'\n') {
                Some(p) => {
                    if overflow == 0 && line.len() + p <= max_line {
                        line.extend_from_slice(&buf[..p]);
                    } else {
                        overflow += line.len() + p;
                    }
                    (p + 1, true)
                }
                None => {
                    if overflow == 0 && line.len() + buf.len() <= max_line {
                        line.extend_from_slice(buf);
                    } else {
                        overflow += line.len() + buf.len();
                        line.clear();
                    }
                    (buf.len(), false)
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = tx.send(Incoming::Closed(format!(
                    "reading the server's output failed: {e}"
                )));
                return;
            }
        };
        r.consume(consumed);
        if done {
            let msg = if overflow > 0 {
                Incoming::TooLong(overflow)
            } else {
                Incoming::Line(String::from_utf8_lossy(&line).into_owned())
            };
            line.clear();
            overflow = 0;
            if tx.send(msg).is_err() {
                return;
            }
        }
    }
}

impl McpClient {
    /// Starts the reference filesystem server: `node ENTRY SCRATCH`.
    pub fn spawn_filesystem(
        node: &str,
        entry: &Path,
        scratch: &Path,
        opts: ClientOptions,
    ) -> Result<Self, BridgeError> {
        Self::spawn(node, &[entry.display().to_string()], scratch, opts)
    }

    /// Starts `program args... SCRATCH` (the scratch directory, made canonical, is the last argument) and runs the
    /// MCP handshake.
    pub fn spawn(
        program: &str,
        args: &[String],
        scratch: &Path,
        mut opts: ClientOptions,
    ) -> Result<Self, BridgeError> {
        opts.max_result = opts.max_result.min(MAX_PAYLOAD);
        let scratch = scratch.canonicalize().map_err(|e| {
            err(
                ErrorCode::ServerError,
                format!("scratch directory {}: {e}", scratch.display()),
            )
        })?;
        let scratch_text = scratch
            .to_str()
            .ok_or_else(|| {
                err(
                    ErrorCode::ServerError,
                    "scratch directory path is not UTF-8",
                )
            })?
            .to_string();
        let mut child = Command::new(program)
            .args(args)
            .arg(&scratch)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                err(
                    ErrorCode::ServerExited,
                    format!("cannot start {program}: {e}"),
                )
            })?;
        let (in_tx, in_rx) = mpsc::sync_channel(INCOMING_QUEUE);
        let stdout = child.stdout.take().expect("stdout is piped");
        let max_line = opts.max_line;
        let tx = in_tx.clone();
        thread::spawn(move || read_lines(stdout, max_line, tx));
        let stderr_tail = Arc::new(Mutex::new(Vec::new()));
        let tail = Arc::clone(&stderr_tail);
        let mut stderr = child.stderr.take().expect("stderr is piped");
        thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n @ 1..) = stderr.read(&mut buf) {
                if let Ok(mut t) = tail.lock() {
                    t.extend_from_slice(&buf[..n]);
                    let excess = t.len().saturating_sub(STDERR_TAIL);
                    t.drain(..excess);
                }
            }
        });
        let stdin = child.stdin.take().expect("stdin is piped");
        let (out_tx, out_rx) = outgoing_channel();
        thread::spawn(move || write_messages(stdin, out_rx, in_tx));
        let mut client = McpClient {
            child,
            outgoing: Some(out_tx),
            incoming: in_rx,
            stderr_tail,
            next_id: 1,
            tools: Vec::new(),
            scratch: scratch_text,
            opts,
            dead: None,
            protocol_version: String::new(),
        };
        client.handshake()?;
        Ok(client)
    }

    fn handshake(&mut self) -> Result<(), BridgeError> {
        let params = Json::object([
            ("protocolVersion", Json::str(PROTOCOL_VERSION)),
            ("capabilities", Json::Object(Vec::new())),
            (
                "clientInfo",
                Json::object([
                    ("name", Json::str("probevisor-bridge")),
                    ("version", Json::str(env!("CARGO_PKG_VERSION"))),
                ]),
            ),
        ]);
        let wait = self.opts.start_timeout;
        let init = self.request_within("initialize", params, wait)?;
        self.protocol_version = init
            .get("protocolVersion")
            .and_then(Json::as_str)
            .unwrap_or(PROTOCOL_VERSION)
            .to_string();
        self.send(&Json::object([
            ("jsonrpc", Json::str("2.0")),
            ("method", Json::str("notifications/initialized")),
        ]))?;
        let list = self.request_within("tools/list", Json::Object(Vec::new()), wait)?;
        let tools = list
            .get("tools")
            .and_then(Json::as_array)
            .ok_or_else(|| err(ErrorCode::ServerError, "tools/list: no \"tools\" array"))?;
        self.tools = tools
            .iter()
            .filter_map(|t| t.get("name").and_then(Json::as_str).map(String::from))
            .collect();
        Ok(())
    }

    /// Tool names from the server's `tools/list`.
    pub fn tools(&self) -> &[String] {
        &self.tools
    }

    /// The canonical scratch directory the server is confined to.
    pub fn scratch(&self) -> &str {
        &self.scratch
    }

    pub fn protocol_version(&self) -> &str {
        &self.protocol_version
    }

    pub fn server_pid(&self) -> u32 {
        self.child.id()
    }

    /// Maps a probevisor tool call onto the server's tools (nothing is sent).
    pub fn map(&self, tool: &str, args: &Json) -> Result<ServerCall, BridgeError> {
        mapping::map_call(tool, args, &self.tools, &self.scratch)
    }

    /// Maps and runs one tool call; the result text, reshaped for the guest.
    pub fn call_tool(&mut self, tool: &str, args: &Json) -> Result<String, BridgeError> {
        let call = self.map(tool, args)?;
        self.call_mapped(&call)
    }

    /// Runs an already mapped call (`tools/call`).
    pub fn call_mapped(&mut self, call: &ServerCall) -> Result<String, BridgeError> {
        let params = Json::object([
            ("name", Json::str(&call.name)),
            ("arguments", call.arguments.clone()),
        ]);
        // Guests see their own paths, not the host's scratch directory (server errors, stderr).
        let result = self.request("tools/call", params).map_err(|mut e| {
            e.message = e.message.replace(&self.scratch, "");
            e
        })?;
        let mut text = String::new();
        for item in result
            .get("content")
            .and_then(Json::as_array)
            .unwrap_or(&[])
        {
            if let Some(t) = item.get("text").and_then(Json::as_str) {
                text.push_str(t);
            }
        }
        if result.get("isError").and_then(Json::as_bool) == Some(true) {
            // Guests see their own paths, not the host's scratch directory.
            let text = text.replace(&self.scratch, "");
            return Err(err(ErrorCode::ToolFailed, truncate_utf8(&text, 4096)));
        }
        if call.shape == ResultShape::Status {
            text = text.replace(&self.scratch, "");
        }
        let text = mapping::shape_result(call.shape, &text);
        if text.len() > self.opts.max_result {
            let mut e = err(
                ErrorCode::TooLarge,
                format!(
                    "result of {} bytes exceeds the limit of {} bytes",
                    text.len(),
                    self.opts.max_result
                ),
            );
            e.truncated =
                Some(truncate_utf8(&text, self.opts.max_result.min(TRUNCATED_PREVIEW)).to_string());
            return Err(e);
        }
        Ok(text)
    }

    fn send(&mut self, msg: &Json) -> Result<(), BridgeError> {
        if let Some(why) = &self.dead {
            return Err(err(ErrorCode::ServerExited, why.clone()));
        }
        let mut line = msg.to_string().into_bytes();
        line.push(b'\n');
        match self.outgoing.as_ref().map(|tx| tx.try_send(line)) {
            Some(Ok(())) => Ok(()),
            Some(Err(TrySendError::Full(_))) => Err(err(
                ErrorCode::ServerError,
                "the server is not reading its input",
            )),
            _ => Err(self.mark_dead("the server's input is closed".into())),
        }
    }

    /// Sends one request and waits, at most the call timeout, for the response with its id.
    pub fn request(&mut self, method: &str, params: Json) -> Result<Json, BridgeError> {
        let wait = self.opts.call_timeout;
        self.request_within(method, params, wait)
    }

    fn request_within(
        &mut self,
        method: &str,
        params: Json,
        wait: Duration,
    ) -> Result<Json, BridgeError> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&Json::object([
            ("jsonrpc", Json::str("2.0")),
            ("id", Json::Number(id as f64)),
            ("method", Json::str(method)),
            ("params", params),
        ]))?;
        let deadline = Instant::now() + wait;
        let timeout = || {
            err(
                ErrorCode::Timeout,
                format!("{method}: no answer within {} ms", wait.as_millis()),
            )
        };
        loop {
            // Checked before each message: a server that never stops talking still gets its deadline
            // (`recv_timeout` returns a waiting message even when no time is left).
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timeout());
            }
            let msg = match self.incoming.recv_timeout(left) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => return Err(timeout()),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.mark_dead("server output closed".into()))
                }
            };
            let line = match msg {
                Incoming::Line(l) => l,
                Incoming::TooLong(n) => {
                    // The oversized line is most likely our answer; it cannot be parsed, so it is refused.
                    return Err(err(
                        ErrorCode::TooLarge,
                        format!(
                            "{method}: server message of {n} bytes exceeds the limit of {} bytes",
                            self.opts.max_line
                        ),
                    ));
                }
                Incoming::Closed(why) => return Err(self.mark_dead(why)),
            };
            if line.trim().is_empty() {
                continue;
            }
            let Ok(v) = Json::parse(&line) else {
                continue; // not JSON-RPC (a stray log line); ignore
            };
            if v.get("method").is_some() {
                if let Some(req_id) = v.get("id") {
                    // A request from the server (we declared no capabilities): refuse it.
                    let reply = Json::object([
                        ("jsonrpc", Json::str("2.0")),
                        ("id", req_id.clone()),
                        (
                            "error",
                            Json::object([
                                ("code", Json::Number(-32601.0)),
                                ("message", Json::str("method not found")),
                            ]),
                        ),
                    ]);
                    // Best effort: a server that does not read its input gets no reply.
                    match self.send(&reply) {
                        Err(e) if e.code == ErrorCode::ServerExited => return Err(e),
                        _ => {}
                    }
                }
                continue; // notifications (logging, progress) are ignored
            }
            if v.get("id").and_then(Json::as_f64) != Some(id as f64) {
                continue; // a late answer to a request that timed out
            }
            if let Some(e) = v.get("error") {
                let msg = e
                    .get("message")
                    .and_then(Json::as_str)
                    .unwrap_or("(no message)");
                return Err(err(ErrorCode::ServerError, format!("{method}: {msg}")));
            }
            return v.get("result").cloned().ok_or_else(|| {
                err(
                    ErrorCode::ServerError,
                    format!("{method}: response without result"),
                )
            });
        }
    }

    /// The end of what the server wrote to stderr (at most 512 bytes), for the host's log.
    pub fn stderr_excerpt(&self) -> String {
        let tail = self
            .stderr_tail
            .lock()
            .map(|t| String::from_utf8_lossy(&t).trim().to_string())
            .unwrap_or_default();
        tail_utf8(&tail, 512).to_string()
    }

    fn mark_dead(&mut self, why: String) -> BridgeError {
        self.outgoing = None;
        let mut status = None;
        for _ in 0..50 {
            if let Ok(Some(s)) = self.child.try_wait() {
                status = Some(s);
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        // The server's stderr stays on the host (the bridge log: `stderr_excerpt`): it names host
        // paths (the scratch directory, caches under $HOME) the guest has no business seeing.
        let msg = match status {
            Some(s) => format!("MCP server exited ({s}): {why}"),
            None => format!("MCP server stopped answering: {why}"),
        };
        self.dead = Some(msg.clone());
        err(ErrorCode::ServerExited, msg)
    }
}

fn outgoing_channel() -> (SyncSender<Vec<u8>>, Receiver<Vec<u8>>) {
    mpsc::sync_channel(OUTGOING_QUEUE)
}

fn write_messages(mut stdin: ChildStdin, rx: Receiver<Vec<u8>>, closed: SyncSender<Incoming>) {
    for msg in rx {
        if let Err(e) = stdin.write_all(&msg).and_then(|_| stdin.flush()) {
            let _ = closed.send(Incoming::Closed(format!(
                "writing to the server failed: {e}"
            )));
            return;
        }
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The longest suffix of `s` of at most `max` bytes that starts on a char boundary.
fn tail_utf8(s: &str, max: usize) -> &str {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

impl Drop for McpClient {
    fn drop(&mut self) {
        self.outgoing = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
