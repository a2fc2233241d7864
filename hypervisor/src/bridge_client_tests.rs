use super::*;
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec;
use core::cell::Cell;
use mcp_bridge::frame::{encode, Frame};

std::thread_local! {
    static NOW: Cell<u64> = const { Cell::new(0) };
}

/// A clock that advances one millisecond each time it is read (per test thread).
fn ticking_clock() -> u64 {
    NOW.with(|now| {
        let t = now.get();
        now.set(t + 1);
        t
    })
}

/// A clock that never moves: only the poll backstop can end a wait.
fn stopped_clock() -> u64 {
    0
}

type Script = Box<dyn FnMut(&Frame) -> Vec<u8>>;

/// A UART whose far end decodes each request frame and answers with what the script returns.
struct FakeUart {
    rx: VecDeque<u8>,
    sent: FrameDecoder,
    requests: Vec<Frame>,
    script: Script,
    /// The transmitter refuses every byte (a port that never drains).
    stuck: bool,
}

impl FakeUart {
    fn new(script: impl FnMut(&Frame) -> Vec<u8> + 'static) -> Self {
        Self {
            rx: VecDeque::new(),
            sent: FrameDecoder::new(),
            requests: Vec::new(),
            script: Box::new(script),
            stuck: false,
        }
    }
}

impl Uart for FakeUart {
    fn try_read(&mut self) -> Option<u8> {
        self.rx.pop_front()
    }

    fn try_write(&mut self, byte: u8) -> bool {
        if self.stuck {
            return false;
        }
        self.sent.push(&[byte]);
        if let Some(frame) = self.sent.next_frame() {
            let frame = frame.expect("the client sends valid frames");
            let answer = (self.script)(&frame);
            self.rx.extend(answer);
            self.requests.push(frame);
        }
        true
    }
}

fn client(script: impl FnMut(&Frame) -> Vec<u8> + 'static) -> BridgeClient<FakeUart> {
    BridgeClient::with_limits(FakeUart::new(script), ticking_clock, 1_000, 1_000_000)
}

fn response(id: u32, payload: &[u8]) -> Vec<u8> {
    encode(FrameKind::Response, id, payload).unwrap()
}

fn error_frame(id: u32, code: ErrorCode, message: &str) -> Vec<u8> {
    encode(
        FrameKind::Error,
        id,
        &BridgeError::new(code, message).to_payload(),
    )
    .unwrap()
}

#[test]
fn ok_path_sends_the_request_and_returns_the_payload() {
    let mut bridge = client(|f| response(f.id, b"# Demo\n"));
    let call = bridge.call("read_file", r#"{"path":"/project/README.md"}"#);
    assert_eq!(call.id, 1);
    assert_eq!(call.result.unwrap(), b"# Demo\n");
    let sent = &bridge.uart_mut().requests[0];
    assert_eq!(sent.kind, FrameKind::Request);
    assert_eq!(sent.id, 1);
    assert_eq!(
        sent.payload,
        br#"{"tool":"read_file","args":{"path":"/project/README.md"}}"#
    );
    // Ids count up, one per call.
    let second = bridge.call("list_dir", r#"{"path":"/project"}"#);
    assert_eq!(second.id, 2);
    assert!(second.result.is_ok());
}

#[test]
fn error_frames_map_to_abi_statuses() {
    let cases = [
        (ErrorCode::ToolFailed, Status::ToolFailed),
        (ErrorCode::BadPath, Status::ToolFailed),
        (ErrorCode::Unsupported, Status::ToolFailed),
        (ErrorCode::Timeout, Status::ToolFailed),
        (ErrorCode::ServerExited, Status::ToolFailed),
        (ErrorCode::ServerError, Status::ToolFailed),
        (ErrorCode::UnknownTool, Status::UnknownTool),
        (ErrorCode::TooLarge, Status::TooLarge),
        (ErrorCode::BadRequest, Status::InternalError),
        (ErrorCode::BadFrame, Status::InternalError),
    ];
    for (code, status) in cases {
        let mut bridge = client(move |f| error_frame(f.id, code, "ENOENT: /missing.txt"));
        let failure = bridge
            .call("read_file", r#"{"path":"/missing.txt"}"#)
            .result
            .unwrap_err();
        assert_eq!(failure.kind, FailureKind::Remote(code), "{code:?}");
        assert_eq!(failure.status, status, "{code:?}");
        assert!(failure.message.contains(code.as_str()), "{failure}");
        assert!(
            failure.message.contains("ENOENT: /missing.txt"),
            "{failure}"
        );
    }
    // The bridge's id-0 refusal of an undecodable request frame is an answer to this call.
    let mut bridge = client(|_| error_frame(0, ErrorCode::BadFrame, "checksum mismatch"));
    let failure = bridge.call("list_dir", "{}").result.unwrap_err();
    assert_eq!(failure.kind, FailureKind::Remote(ErrorCode::BadFrame));
    assert_eq!(failure.status, Status::InternalError);
    // An error frame whose payload is not an error object.
    let mut bridge = client(|f| encode(FrameKind::Error, f.id, b"not json").unwrap());
    let failure = bridge.call("list_dir", "{}").result.unwrap_err();
    assert_eq!(failure.kind, FailureKind::Garbled);
    assert_eq!(failure.status, Status::InternalError);
}

#[test]
fn garbled_frames_are_refused() {
    // Noise instead of a frame.
    let mut bridge = client(|_| b"hello from the wrong program\n".to_vec());
    let failure = bridge.call("read_file", "{}").result.unwrap_err();
    assert_eq!(failure.kind, FailureKind::Garbled);
    assert_eq!(failure.status, Status::InternalError);
    assert!(failure.message.contains("bad magic"), "{failure}");
    // A flipped payload byte: the CRC catches it.
    let mut bridge = client(|f| {
        let mut bytes = response(f.id, b"secret-free output");
        bytes[14] ^= 0x20;
        bytes
    });
    let failure = bridge.call("read_file", "{}").result.unwrap_err();
    assert_eq!(failure.kind, FailureKind::Garbled);
    assert!(failure.message.contains("checksum"), "{failure}");
    // A header that claims more than the codec allows: refused before waiting for the bytes.
    let mut bridge = client(|f| {
        let mut bytes = response(f.id, b"x");
        bytes[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        bytes
    });
    let failure = bridge.call("read_file", "{}").result.unwrap_err();
    assert_eq!(failure.kind, FailureKind::Garbled);
    assert!(failure.message.contains("exceeds the limit"), "{failure}");
}

#[test]
fn frames_for_another_id_or_of_the_wrong_kind_are_refused() {
    let mut bridge = client(|f| response(f.id + 7, b"someone else's answer"));
    let call = bridge.call("read_file", "{}");
    let failure = call.result.unwrap_err();
    assert_eq!(failure.kind, FailureKind::Unexpected);
    assert_eq!(failure.status, Status::InternalError);
    assert!(failure.message.contains("id 8"), "{failure}");
    let mut bridge = client(|f| encode(FrameKind::Request, f.id, b"{}").unwrap());
    let failure = bridge.call("read_file", "{}").result.unwrap_err();
    assert_eq!(failure.kind, FailureKind::Unexpected);
    // An error frame for another (non-zero) id is not this call's error either.
    let mut bridge = client(|f| error_frame(f.id + 1, ErrorCode::ToolFailed, "x"));
    let failure = bridge.call("read_file", "{}").result.unwrap_err();
    assert_eq!(failure.kind, FailureKind::Unexpected);
}

#[test]
fn silence_and_cut_answers_time_out() {
    let mut bridge = client(|_| Vec::new());
    let failure = bridge.call("read_file", "{}").result.unwrap_err();
    assert_eq!(failure.kind, FailureKind::Timeout);
    assert_eq!(failure.status, Status::InternalError);
    assert!(failure.message.contains("no answer"), "{failure}");
    // Half a frame, then nothing.
    let mut bridge = client(|f| {
        let bytes = response(f.id, b"0123456789");
        bytes[..bytes.len() / 2].to_vec()
    });
    let failure = bridge.call("read_file", "{}").result.unwrap_err();
    assert_eq!(failure.kind, FailureKind::Timeout);
    assert!(failure.message.contains("stopped after"), "{failure}");
    // A transmitter that never takes a byte.
    let mut bridge = client(|_| Vec::new());
    bridge.uart_mut().stuck = true;
    let failure = bridge.call("read_file", "{}").result.unwrap_err();
    assert_eq!(failure.kind, FailureKind::Timeout);
    assert!(failure.message.contains("did not take"), "{failure}");
    // A clock that never moves: the poll backstop ends the wait.
    let mut bridge =
        BridgeClient::with_limits(FakeUart::new(|_| Vec::new()), stopped_clock, 1, 500);
    let failure = bridge.call("read_file", "{}").result.unwrap_err();
    assert_eq!(failure.kind, FailureKind::Timeout);
}

/// A header for the largest payload, then its bytes: the UART always has one waiting.
fn endless_answer(f: &Frame) -> Vec<u8> {
    let mut bytes = response(f.id, &[]);
    bytes.truncate(frame::HEADER_LEN);
    bytes[8..12].copy_from_slice(&(frame::MAX_PAYLOAD as u32).to_le_bytes());
    bytes.resize(
        frame::HEADER_LEN + frame::MAX_PAYLOAD + frame::TRAILER_LEN,
        b'a',
    );
    bytes
}

#[test]
fn the_deadline_holds_while_an_answer_keeps_arriving() {
    // The wait never goes idle. The call must end at its deadline (1000 ticks of the clock, one
    // per look), not when the 1 MiB has been read.
    let mut bridge = client(endless_answer);
    let failure = bridge.call("read_file", "{}").result.unwrap_err();
    assert_eq!(failure.kind, FailureKind::Timeout, "{failure}");
    assert!(failure.message.contains("stopped after"), "{failure}");
    assert!(
        bridge.uart_mut().rx.len() > frame::MAX_PAYLOAD / 2,
        "read past the deadline"
    );
}

#[test]
fn the_poll_backstop_holds_while_an_answer_keeps_arriving_on_a_stopped_clock() {
    // As above, but the clock never moves: only the poll backstop (1000 looks) can end the wait.
    let mut bridge =
        BridgeClient::with_limits(FakeUart::new(endless_answer), stopped_clock, 1_000, 1_000);
    let failure = bridge.call("read_file", "{}").result.unwrap_err();
    assert_eq!(failure.kind, FailureKind::Timeout, "{failure}");
    assert!(
        bridge.uart_mut().rx.len() > frame::MAX_PAYLOAD / 2,
        "read past the backstop"
    );
}

#[test]
fn a_late_answer_is_drained_before_the_next_request() {
    // The first answer never comes in time; the second request must not take it for its own.
    let mut calls = 0;
    let mut bridge = client(move |f| {
        calls += 1;
        if calls == 1 {
            Vec::new()
        } else {
            response(f.id, b"fresh")
        }
    });
    assert!(bridge.call("read_file", "{}").result.is_err());
    // The late answer to id 1 arrives between the calls.
    bridge.uart_mut().rx.extend(response(1, b"stale"));
    let call = bridge.call("read_file", "{}");
    assert_eq!(call.id, 2);
    assert_eq!(call.result.unwrap(), b"fresh");
}

#[test]
fn a_late_answer_arriving_during_the_next_call_is_skipped() {
    // The answer to id 1 comes only after request 2 went out, right before request 2's answer
    // (before: request 2 failed as `Unexpected`, and its own answer was drained at request 3).
    let mut calls = 0;
    let mut bridge = client(move |f| {
        calls += 1;
        match calls {
            1 => Vec::new(),
            2 => {
                let mut late = error_frame(1, ErrorCode::Timeout, "late");
                late.extend(response(1, b"stale"));
                late.extend(response(f.id, b"fresh"));
                late
            }
            _ => response(f.id, b"third"),
        }
    });
    assert!(bridge.call("read_file", "{}").result.is_err());
    let call = bridge.call("read_file", "{}");
    assert_eq!((call.id, call.result), (2, Ok(b"fresh".to_vec())));
    let call = bridge.call("read_file", "{}");
    assert_eq!((call.id, call.result), (3, Ok(b"third".to_vec())));
    // A later id than the one waiting is still refused.
    let mut bridge = client(|f| response(f.id + 1, b"future"));
    let failure = bridge.call("read_file", "{}").result.unwrap_err();
    assert_eq!(failure.kind, FailureKind::Unexpected, "{failure}");
}

#[test]
fn large_answers_pass_whole() {
    let big = vec![b'a'; 200_000];
    let expected = big.clone();
    let mut bridge = client(move |f| response(f.id, &big));
    assert_eq!(bridge.call("read_file", "{}").result.unwrap(), expected);
}

#[test]
fn unavailable_bridge_fails_closed() {
    let call = Unavailable("COM2 not present").call("read_file", "{}");
    assert_eq!(call.id, 0);
    let failure = call.result.unwrap_err();
    assert_eq!(failure.status, Status::InternalError);
    assert!(failure.message.contains("COM2 not present"));
}

#[test]
fn command_line_word() {
    assert_eq!(requested(""), Ok(false));
    assert_eq!(requested("log=debug bridge=com2"), Ok(true));
    assert_eq!(requested("bridge=com2 bridge=off"), Ok(false));
    assert!(requested("bridge=com3")
        .unwrap_err()
        .contains("bridge=com2"));
}
