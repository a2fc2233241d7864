use super::*;
use crate::fake_vcpu::Lines;
use alloc::vec;
use hypercall_abi::Request;

/// A tool call `name(args)` staged in a fresh guest memory: request at 0x8000.
fn staged(name: &[u8], args: &[u8]) -> Vec<u8> {
    let mut mem = vec![0u8; 0x2_0000];
    let mut r = Request::new(Kind::ToolCall);
    (r.name_gpa, r.name_len) = (0xA000, name.len() as u64);
    (r.args_gpa, r.args_len) = (0x9000, args.len() as u64);
    (r.result_gpa, r.result_cap) = (0xC000, 256);
    mem[0x8000..0x8040].copy_from_slice(&r.to_bytes());
    mem[0xA000..0xA000 + name.len()].copy_from_slice(name);
    mem[0x9000..0x9000 + args.len()].copy_from_slice(args);
    mem
}

/// The tool call staged in `mem` (request at 0x8000), from guest `g`, handled by `services`.
fn tool_call(mem: &mut [u8], log: &mut Lines, services: &mut dyn ToolService) -> HypercallResult {
    let mut guest = GuestState::new("g");
    handle(
        Kind::ToolCall as u64,
        0x8000,
        Transport::Hypercall,
        mem,
        &mut guest,
        log,
        services,
    )
}

/// The tool call staged in `mem`, with a service that refuses every call with `reason`.
fn call(mem: &mut [u8], log: &mut Lines, reason: &str) -> HypercallResult {
    tool_call(
        mem,
        log,
        &mut crate::host_services::fail_closed(reason, || 0),
    )
}

#[test]
fn guest_text_cannot_forge_log_lines() {
    let forged = b"{\"path\":\"/x\",\"n\":\"\nAUDIT-FINAL 0000\nPROBEVISOR-DONE status=ok\n\"}";
    for name in [&b"read_file"[..], b"read\nAUDIT {}"] {
        let mut mem = staged(name, forged);
        let mut log = Lines::default();
        let result = call(&mut mem, &mut log, "no policy\nAUDIT-FINAL 1");
        assert!(matches!(result, HypercallResult::Reply(_)));
        for line in &log.0 {
            assert!(
                !line.contains('\n') && !line.contains('\r'),
                "a log line carries a line break: {line:?}"
            );
        }
        if name == b"read_file" {
            // Decided (refused: no policy) and logged with the arguments escaped.
            assert!(log.has("audit: guest g tool call read_file"), "{:?}", log.0);
            assert!(log.has("\\nAUDIT-FINAL 0000\\n"), "{:?}", log.0);
        } else {
            // The ABI refuses a name outside [a-z0-9_] before anything is logged of it.
            assert!(log.has("refused (bad request): tool name"), "{:?}", log.0);
        }
    }
}

#[test]
fn long_arguments_are_cut_in_the_log() {
    let args = alloc::format!("{{\"path\":\"/{}\"}}", "a".repeat(60_000));
    let mut mem = staged(b"read_file", args.as_bytes());
    let mut log = Lines::default();
    call(&mut mem, &mut log, "no policy");
    let line = log
        .0
        .iter()
        .find(|l| l.starts_with("audit: guest g"))
        .unwrap();
    assert!(line.len() < 600, "{} bytes", line.len());
    assert!(line.contains("(60012 bytes in all)"), "{line}");
}

/// Answers every tool call with `outcome`; records nothing.
struct Answers {
    outcome: ToolOutcome,
}

impl ToolService for Answers {
    fn tool_call(&mut self, _: &str, _: &ToolRequest, _: &mut dyn LogSink) -> ToolOutcome {
        self.outcome.clone()
    }
    fn violation(&mut self, _: &str, _: &str, _: &str, _: &mut dyn LogSink) {}
    fn audit_head(&self) -> [u8; 32] {
        [0; 32]
    }
}

/// The tool call staged in `mem` (result buffer 0xC000, 256 bytes), answered with `outcome`.
fn answered(mem: &mut [u8], log: &mut Lines, outcome: ToolOutcome) -> Response {
    let result = tool_call(mem, log, &mut Answers { outcome });
    let HypercallResult::Reply(response) = result else {
        panic!("a tool call stopped the guest: {result:?}")
    };
    response
}

/// An output larger than the buffer is TooLarge to the guest; the `audit:` line said `ok`.
#[test]
fn the_audit_line_names_the_status_the_guest_got() {
    let mut mem = staged(b"read_file", br#"{"path":"/big"}"#);
    let mut log = Lines::default();
    let output = "r".repeat(300);
    let response = answered(&mut mem, &mut log, ToolOutcome::Completed { output });
    assert_eq!((response.status, response.len), (Status::TooLarge, 300));
    assert!(mem[0xC000..0xC100].iter().all(|&b| b == b'r'));
    assert_eq!(mem[0xC100], 0, "wrote past the buffer");
    let line = log.0.iter().find(|l| l.starts_with("audit: guest g"));
    let line = line.expect("an audit: line");
    assert!(line.contains("-> too large: rrr"), "{line}");
}

/// A bridged `too_large` failure: TooLarge with RDX = 0 and the buffer untouched, as for every
/// request error; it was the message's length, which the guest reads as the bytes needed.
#[test]
fn a_too_large_failure_writes_no_message_and_no_length() {
    let mut mem = staged(b"read_file", br#"{"path":"/big"}"#);
    let mut log = Lines::default();
    let failure = ToolOutcome::Failed {
        status: Status::TooLarge,
        error: "bridge error too_large: result of 2000000 bytes".into(),
    };
    let response = answered(&mut mem, &mut log, failure);
    assert_eq!((response.status, response.len), (Status::TooLarge, 0));
    assert!(mem[0xC000..0xC100].iter().all(|&b| b == 0));
    assert!(
        log.has("-> too large: bridge error too_large"),
        "{:?}",
        log.0
    );
}
