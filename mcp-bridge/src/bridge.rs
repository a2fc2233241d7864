//! The bridge loop: request frames in from COM2, MCP `tools/call`s out, response frames back.

use crate::client::{truncate_utf8, McpClient};
use crate::frame::{encode, Frame, FrameDecoder, FrameError, FrameKind, FRAMING_ERROR_ID};
use crate::json::Json;
use crate::wire_error::{BridgeError, ErrorCode};
use std::io::{self, ErrorKind, Read, Write};

/// Counters of one bridge run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BridgeStats {
    /// Request frames decoded.
    pub requests: u64,
    /// Calls sent to the MCP server.
    pub forwarded: u64,
    /// Response frames written.
    pub responses: u64,
    /// Error frames written (framing errors included).
    pub errors: u64,
    /// Refused frames (bad magic/version/kind/length/checksum, truncated).
    pub framing_errors: u64,
}

/// A reader and a writer as one `Read + Write` (stdin/stdout, a FIFO pair, in-memory buffers in tests).
pub struct Duplex<R, W> {
    pub reader: R,
    pub writer: W,
}

impl<R: Read, W> Read for Duplex<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

impl<R, W: Write> Write for Duplex<R, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

const LOG_ARGS_MAX: usize = 200;
/// Longest error message (and `truncated` preview) sent in an Error frame; the log keeps the whole
/// message. A server's error text or a guest's path may be megabytes, and JSON escaping can grow a
/// byte sixfold: these bounds keep every error payload far below `MAX_PAYLOAD`.
const ERROR_MESSAGE_MAX: usize = 4096;
const ERROR_PREVIEW_MAX: usize = 64 * 1024;

/// Serves frames from `io` until it reaches end of stream. Every forwarded call is logged to `log` with its request
/// id. A read that times out (`WouldBlock`/`TimedOut`, e.g. a socket read timeout) inside a frame abandons that
/// frame as truncated. Returns the counters, or the I/O error that stopped it.
pub fn run_bridge(
    mut io: impl Read + Write,
    server: &mut McpClient,
    log: &mut impl Write,
) -> io::Result<BridgeStats> {
    let mut stats = BridgeStats::default();
    let mut decoder = FrameDecoder::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let (n, eof) = match io.read(&mut buf) {
            Ok(0) => (0, true),
            Ok(n) => (n, false),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if let Some(fe) = decoder.abandon_partial() {
                    refuse_frame(&mut io, log, &mut stats, fe)?;
                    serve_decoded(&mut io, &mut decoder, server, log, &mut stats)?;
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        decoder.push(&buf[..n]);
        serve_decoded(&mut io, &mut decoder, server, log, &mut stats)?;
        if eof {
            while let Some(fe) = decoder.abandon_partial() {
                // The peer may be gone (its side closed): answers are best effort, refusals still logged.
                let _ = refuse_frame(&mut io, log, &mut stats, fe);
                if serve_decoded(&mut io, &mut decoder, server, log, &mut stats).is_err() {
                    break;
                }
            }
            writeln!(
                log,
                "bridge: end of stream: {} request(s), {} forwarded, {} response(s), {} error frame(s), {} refused frame(s)",
                stats.requests, stats.forwarded, stats.responses, stats.errors, stats.framing_errors
            )?;
            return Ok(stats);
        }
    }
}

fn serve_decoded(
    io: &mut impl Write,
    decoder: &mut FrameDecoder,
    server: &mut McpClient,
    log: &mut impl Write,
    stats: &mut BridgeStats,
) -> io::Result<()> {
    while let Some(r) = decoder.next_frame() {
        match r {
            Ok(frame) => serve_frame(io, frame, server, log, stats)?,
            Err(fe) => refuse_frame(io, log, stats, fe)?,
        }
    }
    Ok(())
}

fn refuse_frame(
    io: &mut impl Write,
    log: &mut impl Write,
    stats: &mut BridgeStats,
    fe: FrameError,
) -> io::Result<()> {
    stats.framing_errors += 1;
    writeln!(log, "bridge: frame refused: {fe}")?;
    send_error(
        io,
        stats,
        FRAMING_ERROR_ID,
        &BridgeError::new(ErrorCode::BadFrame, fe.to_string()),
    )
}

fn send_error(
    io: &mut impl Write,
    stats: &mut BridgeStats,
    id: u32,
    e: &BridgeError,
) -> io::Result<()> {
    stats.errors += 1;
    let bounded = BridgeError {
        code: e.code,
        message: truncate_utf8(&e.message, ERROR_MESSAGE_MAX).to_string(),
        truncated: e
            .truncated
            .as_deref()
            .map(|t| truncate_utf8(t, ERROR_PREVIEW_MAX).to_string()),
    };
    write_frame(io, FrameKind::Error, id, &bounded.to_payload())
}

fn write_frame(io: &mut impl Write, kind: FrameKind, id: u32, payload: &[u8]) -> io::Result<()> {
    let bytes = encode(kind, id, payload)
        .map_err(|e| io::Error::new(ErrorKind::InvalidData, e.to_string()))?;
    io.write_all(&bytes)?;
    io.flush()
}

/// `{"tool": NAME, "args": {...}}` from a request payload.
pub fn parse_request(payload: &[u8]) -> Result<(String, Json), BridgeError> {
    let bad = |why: String| BridgeError::new(ErrorCode::BadRequest, why);
    let text =
        std::str::from_utf8(payload).map_err(|_| bad("request payload is not UTF-8".into()))?;
    let v = Json::parse(text).map_err(|e| bad(format!("request payload: {e}")))?;
    let tool = v
        .get("tool")
        .and_then(Json::as_str)
        .ok_or_else(|| bad("request lacks a string \"tool\"".into()))?;
    let args = v.get("args").cloned().unwrap_or(Json::Object(Vec::new()));
    Ok((tool.to_string(), args))
}

fn serve_frame(
    io: &mut impl Write,
    frame: Frame,
    server: &mut McpClient,
    log: &mut impl Write,
    stats: &mut BridgeStats,
) -> io::Result<()> {
    let id = frame.id;
    if frame.kind != FrameKind::Request {
        writeln!(
            log,
            "bridge: id={id} refused: a {:?} frame where a request was expected",
            frame.kind
        )?;
        let e = BridgeError::new(
            ErrorCode::BadFrame,
            format!("expected a request frame, got {:?}", frame.kind),
        );
        return send_error(io, stats, id, &e);
    }
    stats.requests += 1;
    let (tool, args) = match parse_request(&frame.payload) {
        Ok(r) => r,
        Err(e) => {
            writeln!(log, "bridge: id={id} refused: {e}")?;
            return send_error(io, stats, id, &e);
        }
    };
    let call = match server.map(&tool, &args) {
        Ok(c) => c,
        Err(e) => {
            writeln!(log, "bridge: id={id} tool={tool} not forwarded: {e}")?;
            return send_error(io, stats, id, &e);
        }
    };
    let shown = call.arguments.to_string();
    writeln!(
        log,
        "bridge: id={id} tool={tool} -> server {} {}",
        call.name,
        truncate_utf8(&shown, LOG_ARGS_MAX)
    )?;
    stats.forwarded += 1;
    match server.call_mapped(&call) {
        Ok(text) => {
            writeln!(log, "bridge: id={id} <- ok ({} bytes)", text.len())?;
            stats.responses += 1;
            write_frame(io, FrameKind::Response, id, text.as_bytes())
        }
        Err(e) => {
            writeln!(log, "bridge: id={id} <- error {e}")?;
            let stderr = server.stderr_excerpt();
            if e.code == ErrorCode::ServerExited && !stderr.is_empty() {
                writeln!(log, "bridge: id={id} server stderr: {stderr}")?;
            }
            send_error(io, stats, id, &e)
        }
    }
}
