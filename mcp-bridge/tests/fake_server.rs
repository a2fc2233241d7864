//! Bridge behaviour against scripted servers: framing errors, timeouts, crashes, oversized messages.

mod common;

use common::*;
use mcp_bridge::bridge::Duplex;
use mcp_bridge::frame::{encode, FrameKind, FRAMING_ERROR_ID};
use mcp_bridge::wire_error::ErrorCode;
use mcp_bridge::{run_bridge, ClientOptions, McpClient};
use std::io::Cursor;
use std::time::{Duration, Instant};

fn fake(mode: &str, name: &str, opts: ClientOptions) -> Option<McpClient> {
    if !have_node() {
        println!("SKIP {name}: node is not installed");
        return None;
    }
    Some(
        McpClient::spawn("node", &fake_args(mode), &scratch(name), opts)
            .expect("fake server starts"),
    )
}

#[test]
fn bad_frames_are_refused_and_good_ones_still_served() {
    let Some(mut client) = fake("echo", "badframes", ClientOptions::default()) else {
        return;
    };
    let scratch = client.scratch().to_string();
    let mut input = b"line noise\r\n".to_vec();
    let mut corrupt = request(1, "read_file", r#"{"path":"/a"}"#);
    let n = corrupt.len();
    corrupt[n - 6] ^= 0x20;
    input.extend(corrupt);
    input.extend(encode(FrameKind::Response, 2, b"not a request").unwrap());
    input.extend(encode(FrameKind::Request, 3, b"{not json").unwrap());
    input.extend(request(4, "read_file", r#"{"path":"/docs/a.txt"}"#));
    input.extend(&request(5, "read_file", r#"{"path":"/b"}"#)[..10]); // cut off by end of stream
    let (out, log) = bridge(&mut client, Cursor::new(input));
    let frames = frames(&out);

    let framing: Vec<_> = frames.iter().filter(|f| f.id == FRAMING_ERROR_ID).collect();
    let messages: Vec<String> = framing
        .iter()
        .map(|f| {
            mcp_bridge::wire_error::BridgeError::from_payload(&f.payload)
                .unwrap()
                .message
        })
        .collect();
    assert!(
        messages.iter().any(|m| m.starts_with("bad magic")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("checksum mismatch in frame id 1")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("truncated frame: 10 of")),
        "{messages:?}"
    );
    assert!(
        frames.iter().all(|f| f.id != 1 && f.id != 5),
        "garbled requests must not be answered"
    );
    assert_eq!(error_of(&frames, 2).code, ErrorCode::BadFrame);
    assert_eq!(error_of(&frames, 3).code, ErrorCode::BadRequest);
    // The notification and the server's own request are skipped; the echo is our mapped call.
    assert_eq!(
        ok_text(&frames, 4),
        format!(r#"{{"path":"{scratch}/docs/a.txt"}}"#)
    );
    assert!(
        log.contains("bridge: id=4 tool=read_file -> server read_text_file"),
        "{log}"
    );
    assert_eq!(log.matches(" -> server ").count(), 1, "{log}");
}

#[test]
fn silent_server_times_out_per_call() {
    let opts = ClientOptions {
        call_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let Some(mut client) = fake("hang", "hang", opts) else {
        return;
    };
    let start = Instant::now();
    let mut input = request(1, "list_dir", r#"{"path":"/"}"#);
    input.extend(request(2, "list_dir", r#"{"path":"/"}"#));
    let (out, log) = bridge(&mut client, Cursor::new(input));
    let elapsed = start.elapsed();
    let frames = frames(&out);
    for id in [1, 2] {
        let e = error_of(&frames, id);
        assert_eq!(e.code, ErrorCode::Timeout);
        assert_eq!(e.message, "tools/call: no answer within 300 ms");
    }
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    assert!(log.contains("id=2 <- error timeout"), "{log}");
}

#[test]
fn server_that_never_initializes_is_refused_in_bounded_time() {
    let opts = ClientOptions {
        start_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let start = Instant::now();
    let r = McpClient::spawn(
        "sh",
        &["-c".into(), "sleep 30".into()],
        &scratch("sleep"),
        opts,
    );
    let e = r.err().expect("a server that never answers cannot be used");
    assert_eq!(e.code, ErrorCode::Timeout);
    assert!(e.message.starts_with("initialize:"), "{}", e.message);
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[test]
fn server_exiting_on_call_is_reported_not_hung() {
    let Some(mut client) = fake("crash", "crash", ClientOptions::default()) else {
        return;
    };
    let mut input = request(1, "read_file", r#"{"path":"/x"}"#);
    input.extend(request(2, "read_file", r#"{"path":"/y"}"#));
    let start = Instant::now();
    let (out, log) = bridge(&mut client, Cursor::new(input));
    let frames = frames(&out);
    let first = error_of(&frames, 1);
    assert_eq!(first.code, ErrorCode::ServerExited);
    assert!(
        first.message.contains("exit status: 3"),
        "{}",
        first.message
    );
    // What the server wrote to stderr goes to the host's log, not to the guest.
    assert!(
        !first.message.contains("crashing on purpose") && log.contains("crashing on purpose"),
        "{}\n{log}",
        first.message
    );
    assert_eq!(error_of(&frames, 2).code, ErrorCode::ServerExited);
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn oversized_server_message_is_refused() {
    let opts = ClientOptions {
        max_line: 100_000,
        ..Default::default()
    };
    let Some(mut client) = fake("huge", "huge", opts) else {
        return;
    };
    let (out, _) = bridge(
        &mut client,
        Cursor::new(request(1, "read_file", r#"{"path":"/big"}"#)),
    );
    let e = error_of(&frames(&out), 1);
    assert_eq!(e.code, ErrorCode::TooLarge);
    assert!(
        e.message.contains("exceeds the limit of 100000 bytes"),
        "{}",
        e.message
    );
}

#[test]
fn oversized_result_is_truncated_with_an_error() {
    let opts = ClientOptions {
        max_result: 1000,
        ..Default::default()
    };
    let Some(mut client) = fake("huge", "hugeresult", opts) else {
        return;
    };
    let (out, _) = bridge(
        &mut client,
        Cursor::new(request(7, "read_file", r#"{"path":"/big"}"#)),
    );
    let e = error_of(&frames(&out), 7);
    assert_eq!(e.code, ErrorCode::TooLarge);
    assert_eq!(
        e.message,
        "result of 300000 bytes exceeds the limit of 1000 bytes"
    );
    assert_eq!(e.truncated.as_deref(), Some("x".repeat(1000).as_str()));
}

/// Chunks, with `None` read as a timed-out read (`WouldBlock`), as a socket with a read timeout gives.
struct Scripted(std::collections::VecDeque<Option<Vec<u8>>>);

impl std::io::Read for Scripted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.0.pop_front() {
            None => Ok(0),
            Some(None) => Err(std::io::ErrorKind::WouldBlock.into()),
            Some(Some(chunk)) => {
                buf[..chunk.len()].copy_from_slice(&chunk);
                Ok(chunk.len())
            }
        }
    }
}

#[test]
fn frame_left_incomplete_across_a_read_timeout_is_truncated() {
    let Some(mut client) = fake("echo", "gap", ClientOptions::default()) else {
        return;
    };
    let whole = request(1, "list_dir", r#"{"path":"/"}"#);
    let chunks = [
        Some(whole[..20].to_vec()),
        None,
        Some(request(2, "list_dir", r#"{"path":"/d"}"#)),
    ];
    let mut io = Duplex {
        reader: Scripted(chunks.into_iter().collect()),
        writer: Vec::new(),
    };
    let mut log = Vec::new();
    let stats = run_bridge(&mut io, &mut client, &mut log).unwrap();
    let frames = frames(&io.writer);
    let first = error_of(&frames, FRAMING_ERROR_ID);
    assert_eq!(
        first.message,
        format!("truncated frame: 20 of {} bytes arrived", whole.len())
    );
    let text = ok_text(&frames, 2);
    assert_eq!(text, format!("{{\"path\":\"{}/d\"}}\n", client.scratch()));
    assert!(frames.iter().all(|f| f.id != 1));
    assert_eq!(
        (stats.requests, stats.forwarded, stats.responses),
        (1, 1, 1)
    );
}
