//! SDK tests against the mock hypervisor (which validates every request with hypercall-abi).

use crate::mock::{MockHypervisor, MEM_SIZE, STAGING_GPA};
use crate::*;
use core::fmt::Write as _;
use hypercall_abi::{EXIT_CODE_PANIC, MAX_TEXT_LEN, VERSION};

fn agent(mock: MockHypervisor) -> Agent<MockHypervisor> {
    Agent::new(mock)
}

fn default_agent() -> Agent<MockHypervisor> {
    agent(MockHypervisor::new(0x4000))
}

#[test]
fn layout_splits_the_staging_buffer() {
    let l = Layout::for_len(0x4000).unwrap();
    assert_eq!((l.name, l.args), (64, 128));
    assert_eq!(l.args_cap, ((0x4000 - 128) / 4) & !7);
    assert_eq!(l.result, 128 + l.args_cap);
    assert_eq!(l.result + l.result_cap, 0x4000);
    assert_eq!(Layout::for_len(128 + 63), None);
    assert!(Layout::for_len(128 + 64).is_some());
}

#[test]
fn tool_call_succeeds_and_returns_output() {
    let mut a =
        agent(MockHypervisor::new(0x4000).answer("read_file", Status::Ok, "# probevisor\n"));
    let r = a.read_file("/project/README.md").unwrap();
    assert_eq!(r.text(), "# probevisor\n");
    let calls = &a.transport_mut().calls;
    assert_eq!(
        calls,
        &[(
            "read_file".to_string(),
            r#"{"path":"/project/README.md"}"#.to_string()
        )]
    );
}

#[test]
fn helpers_build_escaped_json_arguments() {
    let mut mock = MockHypervisor::new(0x4000);
    for tool in names::ALL {
        mock = mock.answer(tool, Status::Ok, "ok");
    }
    let mut a = agent(mock);
    a.write_file("/tmp/a \"b\".txt", "line1\nline2\t\\end\u{1}")
        .unwrap();
    a.list_dir("/srv/app").unwrap();
    a.delete_file("/srv/app/build", true).unwrap();
    a.run_command("grep -r \"TODO\" src | wc -l", Some("/srv/app"))
        .unwrap();
    a.run_command("ls", None).unwrap();
    a.net_send("198.51.100.7", 4444, "key=é").unwrap();
    a.http_fetch("GET", "https://docs.rs/", None).unwrap();
    a.http_fetch("POST", "https://x.test/up", Some("{\"k\":1}"))
        .unwrap();
    a.call_tool("custom_tool", r#"{"n": 1}"#).unwrap_err();
    let args: Vec<&str> = a
        .transport_mut()
        .calls
        .iter()
        .map(|(_, args)| args.as_str())
        .collect();
    assert_eq!(
        args,
        [
            r#"{"path":"/tmp/a \"b\".txt","content":"line1\nline2\t\\end\u0001"}"#,
            r#"{"path":"/srv/app"}"#,
            r#"{"path":"/srv/app/build","recursive":true}"#,
            r#"{"cmd":"grep -r \"TODO\" src | wc -l","cwd":"/srv/app"}"#,
            r#"{"cmd":"ls"}"#,
            r#"{"host":"198.51.100.7","port":4444,"data":"key=é"}"#,
            r#"{"method":"GET","url":"https://docs.rs/"}"#,
            r#"{"method":"POST","url":"https://x.test/up","body":"{\"k\":1}"}"#,
            r#"{"n": 1}"#,
        ]
    );
}

#[test]
fn denied_calls_carry_the_reason() {
    let reason = "deletes the user's home directory";
    let mut a = agent(MockHypervisor::new(0x4000).answer("delete_file", Status::Denied, reason));
    assert_eq!(
        a.delete_file("/home/user", true),
        Err(ToolError::Denied { reason })
    );
}

#[test]
fn tool_failures_carry_code_and_message() {
    let mut a =
        agent(MockHypervisor::new(0x4000).answer("read_file", Status::ToolFailed, "no such file"));
    let e = a.read_file("/nope").unwrap_err();
    assert_eq!(
        e,
        ToolError::Error {
            code: Status::ToolFailed,
            message: "no such file"
        }
    );
    assert_eq!(e.code(), Status::ToolFailed);
    let owned = e.detach();
    assert_eq!(format!("{owned}"), "tool failed: no such file");
    assert_eq!(
        ToolError::Denied { reason: "r" }.detach().code,
        Status::Denied
    );
    let e = a.call_tool("no_such_tool", "{}").unwrap_err();
    assert_eq!(
        e,
        ToolError::Error {
            code: Status::UnknownTool,
            message: "unknown tool"
        }
    );
}

#[test]
fn oversized_results_are_reported() {
    let big = "x".repeat(0x4000);
    let mut a = agent(MockHypervisor::new(0x4000).answer("read_file", Status::Ok, &big));
    let e = a.read_file("/big").unwrap_err();
    assert_eq!(e.code(), Status::TooLarge);
    assert_eq!(a.transport_mut().last_status, Some(Status::TooLarge));
}

#[test]
fn misbehaving_hypervisor_answers_are_caught() {
    let mut mock = MockHypervisor::new(0x4000).answer("read_file", Status::Ok, "x");
    mock.forced = Some((99, 0));
    let mut a = agent(mock);
    assert_eq!(a.read_file("/a").unwrap_err().code(), Status::InternalError);
    a.transport_mut().forced = Some((0, 0x10_0000));
    let e = a.read_file("/a").unwrap_err();
    assert_eq!(
        e,
        ToolError::Error {
            code: Status::InternalError,
            message: "hypervisor returned a result length beyond the buffer"
        }
    );
}

#[test]
fn local_limits_fail_before_any_hypercall() {
    let mut a = agent(MockHypervisor::new(0x400));
    let long = "a".repeat(0x400);
    assert_eq!(
        a.write_file("/f", &long).unwrap_err().code(),
        Status::TooLarge
    );
    assert_eq!(
        a.call_tool("x", &long).unwrap_err().code(),
        Status::TooLarge
    );
    assert_eq!(
        a.call_tool("Bad Name", "{}").unwrap_err().code(),
        Status::BadRequest
    );
    assert_eq!(a.transport_mut().hypercalls, 0);
    let mut tiny = agent(MockHypervisor::new(64));
    assert_eq!(
        tiny.read_file("/a").unwrap_err().code(),
        Status::InternalError
    );
    assert_eq!(
        tiny.console_write("hi").unwrap_err().code(),
        Status::InternalError
    );
}

#[test]
fn hypervisor_rejects_arguments_that_are_not_an_object() {
    let mut a = default_agent();
    let e = a.call_tool("read_file", "[\"/etc/passwd\"]").unwrap_err();
    assert_eq!(
        e,
        ToolError::Error {
            code: Status::BadRequest,
            message: "bad request"
        }
    );
    assert!(a.transport_mut().calls.is_empty());
}

#[test]
fn console_writes_in_chunks_at_char_boundaries() {
    let mut a = agent(MockHypervisor::new(0x1000));
    let text = "é".repeat(1500) + "end";
    write!(a.console(), "{text}").unwrap();
    writeln!(a.console(), " n={}", 42).unwrap();
    assert_eq!(a.transport_mut().console, text + " n=42\n");
    assert!(a.transport_mut().hypercalls > 3);
}

#[test]
fn console_sends_one_hypercall_per_line() {
    let mut a = default_agent();
    let two = "two";
    writeln!(a.console(), "a={} b={two} c={:?}", 1, [3]).unwrap();
    assert_eq!(a.transport_mut().hypercalls, 1);
    {
        let mut c = a.console();
        write!(c, "no newline {}", 5).unwrap();
    }
    assert_eq!(a.transport_mut().hypercalls, 2);
    assert_eq!(a.transport_mut().console, "a=1 b=two c=[3]\nno newline 5");
    let long = "x".repeat(CONSOLE_LINE - 3);
    let tail = "yyyy";
    write!(a.console(), "{long}{tail}").unwrap();
    assert_eq!(a.transport_mut().hypercalls, 4);
    assert!(a.transport_mut().console.ends_with("xxyyyy"));
}

#[test]
fn exit_reports_code_and_message() {
    let mut a = agent(MockHypervisor::new(0x8000));
    assert_eq!(a.send_exit(3, "done"), Status::Ok);
    let long = "z".repeat(MAX_TEXT_LEN as usize + 10);
    assert_eq!(a.send_exit(EXIT_CODE_PANIC, &long), Status::Ok);
    let exits = &a.transport_mut().exits;
    assert_eq!(exits[0], (3, "done".to_string()));
    assert_eq!(exits[1].1.len(), MAX_TEXT_LEN as usize);
}

#[test]
#[should_panic(expected = "agent halted")]
fn exit_halts_after_reporting() {
    default_agent().exit(0, "bye");
}

/// Hand-built requests through the raw path: each is refused with the matching status.
#[test]
fn raw_requests_hit_every_validation_error() {
    let mut a = default_agent();
    let name = a.stage_bytes(b"read_file{}").unwrap();
    let good = {
        let mut r = Request::new(Kind::ToolCall);
        (r.name_gpa, r.name_len) = (name, 9);
        (r.args_gpa, r.args_len) = (name + 9, 2);
        r
    };
    let status_of = |a: &mut Agent<MockHypervisor>, number: u64, r: Request| {
        let gpa = a.stage_request(&r);
        Status::from_u64(a.raw_hypercall(number, gpa).0).unwrap()
    };
    let cases: Vec<(Request, u64, Status)> = vec![
        (good, 1, Status::UnknownTool),
        (
            Request {
                args_gpa: name,
                args_len: 9,
                ..good
            },
            1,
            Status::BadRequest,
        ),
        (Request { magic: 0, ..good }, 1, Status::BadMagic),
        (
            Request {
                version: VERSION + 1,
                ..good
            },
            1,
            Status::BadVersion,
        ),
        (Request { kind: 9, ..good }, 1, Status::UnknownCall),
        (good, 7, Status::UnknownCall),
        (good, 2, Status::BadRequest),
        (Request { flags: 4, ..good }, 1, Status::BadRequest),
        (
            Request {
                name_gpa: MEM_SIZE as u64,
                ..good
            },
            1,
            Status::BadPointer,
        ),
        (
            Request {
                name_gpa: 0,
                ..good
            },
            1,
            Status::BadPointer,
        ),
        (
            Request {
                args_gpa: u64::MAX - 2,
                ..good
            },
            1,
            Status::BadPointer,
        ),
        (
            Request {
                name_len: 0,
                ..good
            },
            1,
            Status::BadLength,
        ),
        (
            Request {
                args_len: 1 << 40,
                ..good
            },
            1,
            Status::TooLarge,
        ),
        (
            Request {
                result_gpa: 0,
                result_cap: 8,
                ..good
            },
            1,
            Status::BadPointer,
        ),
    ];
    for (r, number, want) in cases {
        assert_eq!(status_of(&mut a, number, r), want, "{r:?} as call {number}");
    }
    let (rax, rdx) = a.raw_hypercall(1, STAGING_GPA + 4);
    assert_eq!(
        (Status::from_u64(rax), rdx),
        (Some(Status::BadAlignment), 0)
    );
    assert_eq!(
        Status::from_u64(a.raw_hypercall(1, 0).0),
        Some(Status::BadPointer)
    );
    assert_eq!(
        Status::from_u64(a.raw_hypercall(1, MEM_SIZE as u64).0),
        Some(Status::BadPointer)
    );
    assert_eq!(
        a.transport_mut().calls,
        [("read_file".to_string(), "{}".to_string())]
    );
    assert_eq!(a.stage_bytes(&[0; 0x4000]), None);
}

#[test]
fn fixed_text_truncates_at_char_boundaries() {
    let mut t = FixedText::<8>::default();
    assert!(write!(t, "abéééé").is_err());
    assert_eq!(t.as_str(), "abééé");
    let mut t = FixedText::<4>::default();
    assert!(write!(t, "aé€").is_err());
    assert_eq!(t.as_str(), "aé");
    assert_eq!(truncate_utf8("héllo", 2), "h");
    assert_eq!(truncate_utf8("héllo", 10), "héllo");
}

#[test]
fn result_text_stops_at_invalid_utf8() {
    let r = ToolResult {
        output: b"ok\xffrest",
    };
    assert_eq!(r.text(), "ok");
}
