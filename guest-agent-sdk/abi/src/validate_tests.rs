use super::*;

const MEM: u64 = 0x1_0000;

#[test]
fn range_inside_memory_is_accepted() {
    assert_eq!(validate_range(0x1000, 0x100, MEM, 8), Ok(0x1000..0x1100));
    assert_eq!(validate_range(MEM - 1, 1, MEM, 1), Ok(MEM - 1..MEM));
}

#[test]
fn empty_range_touches_nothing() {
    assert_eq!(validate_range(0, 0, MEM, 1), Ok(0..0));
    assert_eq!(validate_range(u64::MAX, 0, MEM, 1), Ok(0..0));
}

#[test]
fn range_rejects_bad_alignment_argument() {
    assert_eq!(
        validate_range(0x1000, 8, MEM, 0),
        Err(AbiError::InvalidAlignment { align: 0 })
    );
    assert_eq!(
        validate_range(0x1000, 8, MEM, 6),
        Err(AbiError::InvalidAlignment { align: 6 })
    );
}

#[test]
fn range_rejects_null() {
    assert_eq!(
        validate_range(0, 8, MEM, 1),
        Err(AbiError::NullPointer(Field::Range))
    );
}

#[test]
fn range_rejects_misaligned() {
    assert_eq!(
        validate_range(0x1004, 8, MEM, 8),
        Err(AbiError::Misaligned {
            field: Field::Range,
            align: 8
        })
    );
    assert_eq!(
        AbiError::Misaligned {
            field: Field::Range,
            align: 8
        }
        .status(),
        Status::BadAlignment
    );
}

#[test]
fn range_rejects_wrap_around() {
    assert_eq!(
        validate_range(u64::MAX - 7, 16, u64::MAX, 8),
        Err(AbiError::Overflow(Field::Range))
    );
    assert_eq!(
        validate_range(8, u64::MAX, MEM, 8),
        Err(AbiError::Overflow(Field::Range))
    );
}

#[test]
fn range_rejects_out_of_bounds() {
    assert_eq!(
        validate_range(MEM, 1, MEM, 1),
        Err(AbiError::OutOfBounds(Field::Range))
    );
    assert_eq!(
        validate_range(MEM - 4, 8, MEM, 4),
        Err(AbiError::OutOfBounds(Field::Range))
    );
    assert_eq!(
        AbiError::OutOfBounds(Field::Range).status(),
        Status::BadPointer
    );
}

fn good_request() -> Request {
    Request::new(Kind::ToolCall)
}

#[test]
fn parse_round_trips_to_bytes() {
    let mut r = good_request();
    r.name_gpa = 0x2000;
    r.name_len = 9;
    r.args_gpa = 0x3000;
    r.args_len = 2;
    r.result_gpa = 0x4000;
    r.result_cap = 0x100;
    assert_eq!(parse_request(&r.to_bytes()), Ok(r));
}

#[test]
fn parse_rejects_short_input() {
    assert_eq!(
        parse_request(&[0u8; 63]),
        Err(AbiError::ShortRequest { len: 63 })
    );
    assert_eq!(
        AbiError::ShortRequest { len: 63 }.status(),
        Status::BadLength
    );
}

#[test]
fn parse_rejects_bad_magic() {
    let mut b = good_request().to_bytes();
    b[0] = b'X';
    assert!(matches!(parse_request(&b), Err(AbiError::BadMagic { .. })));
}

#[test]
fn parse_rejects_other_versions() {
    let mut r = good_request();
    r.version = 2;
    assert_eq!(
        parse_request(&r.to_bytes()),
        Err(AbiError::BadVersion { found: 2 })
    );
    assert_eq!(
        AbiError::BadVersion { found: 2 }.status(),
        Status::BadVersion
    );
}

#[test]
fn parse_rejects_unknown_kind() {
    let mut r = good_request();
    r.kind = 77;
    assert_eq!(
        parse_request(&r.to_bytes()),
        Err(AbiError::UnknownCall { number: 77 })
    );
}

#[test]
fn parse_rejects_reserved_flags() {
    let mut r = good_request();
    r.flags = 1;
    assert_eq!(
        parse_request(&r.to_bytes()),
        Err(AbiError::ReservedNotZero(Field::Request))
    );
}

#[test]
fn tool_names_are_checked() {
    assert_eq!(check_tool_name(b"read_file"), Ok("read_file"));
    assert_eq!(check_tool_name(b"http2_fetch"), Ok("http2_fetch"));
    for bad in [
        &b""[..],
        b"Read",
        b"1tool",
        b"rm -rf",
        b"a/b",
        b"caf\xc3\xa9",
        &[b'a'; 65][..],
    ] {
        assert_eq!(check_tool_name(bad), Err(AbiError::BadToolName), "{bad:?}");
    }
}

#[test]
fn args_must_be_object_text() {
    assert!(check_args_json(b" {\"path\": \"/tmp\"}\n").is_ok());
    for bad in [&b"[]"[..], b"{", b"\"x\"", b"", b"{\xff}"] {
        assert_eq!(
            check_args_json(bad),
            Err(AbiError::ArgsNotObject),
            "{bad:?}"
        );
    }
}

/// Guest memory with a tool call laid out at 0x100 (request), 0x200 (name), 0x300 (args), 0x800 (result).
struct Guest {
    mem: Vec<u8>,
    req: Request,
}

impl Guest {
    fn tool_call(name: &[u8], args: &[u8]) -> Guest {
        let mut mem = vec![0u8; 0x1000];
        mem[0x200..0x200 + name.len()].copy_from_slice(name);
        mem[0x300..0x300 + args.len()].copy_from_slice(args);
        let mut req = Request::new(Kind::ToolCall);
        (req.name_gpa, req.name_len) = (0x200, name.len() as u64);
        (req.args_gpa, req.args_len) = (0x300, args.len() as u64);
        (req.result_gpa, req.result_cap) = (0x800, 0x100);
        Guest { mem, req }
    }

    fn text(kind: Kind, text: &[u8]) -> Guest {
        let mut g = Guest::tool_call(b"x", text);
        g.req = Request::new(kind);
        (g.req.args_gpa, g.req.args_len) = (0x300, text.len() as u64);
        g
    }

    fn decode(&mut self, number: u64) -> Result<Call<'_>, AbiError> {
        self.mem[0x100..0x140].copy_from_slice(&self.req.to_bytes());
        decode_call(number, 0x100, &self.mem)
    }
}

#[test]
fn decodes_a_tool_call() {
    let mut g = Guest::tool_call(b"read_file", br#"{"path":"README.md"}"#);
    let call = g.decode(1).unwrap();
    assert_eq!(
        call,
        Call::ToolCall {
            name: "read_file",
            args: r#"{"path":"README.md"}"#,
            result: 0x800..0x900
        }
    );
}

#[test]
fn decodes_console_and_exit() {
    let mut g = Guest::text(Kind::ConsoleWrite, b"hello");
    assert_eq!(g.decode(2), Ok(Call::ConsoleWrite { text: "hello" }));
    let mut g = Guest::text(Kind::Exit, b"bye");
    g.req.exit_code = 7;
    assert_eq!(
        g.decode(3),
        Ok(Call::Exit {
            code: 7,
            message: "bye"
        })
    );
}

#[test]
fn decode_rejects_unknown_number_and_mismatch() {
    let mut g = Guest::tool_call(b"read_file", b"{}");
    assert_eq!(g.decode(9), Err(AbiError::UnknownCall { number: 9 }));
    assert_eq!(
        g.decode(2),
        Err(AbiError::KindMismatch { number: 2, kind: 1 })
    );
    assert_eq!(
        AbiError::KindMismatch { number: 2, kind: 1 }.status(),
        Status::BadRequest
    );
}

#[test]
fn decode_rejects_bad_request_address() {
    let g = Guest::tool_call(b"read_file", b"{}");
    assert_eq!(
        decode_call(1, 0, &g.mem),
        Err(AbiError::NullPointer(Field::Request))
    );
    assert_eq!(
        decode_call(1, 0x104, &g.mem),
        Err(AbiError::Misaligned {
            field: Field::Request,
            align: 8
        })
    );
    assert_eq!(
        decode_call(1, 0xFF8, &g.mem),
        Err(AbiError::OutOfBounds(Field::Request))
    );
    assert_eq!(
        decode_call(1, u64::MAX - 7, &g.mem),
        Err(AbiError::Overflow(Field::Request))
    );
}

#[test]
fn decode_rejects_bad_name() {
    let mut g = Guest::tool_call(b"read_file", b"{}");
    g.req.name_len = 0;
    assert_eq!(g.decode(1), Err(AbiError::Empty(Field::Name)));
    g.req.name_len = 65;
    assert_eq!(
        g.decode(1),
        Err(AbiError::TooLarge {
            field: Field::Name,
            len: 65,
            max: 64
        })
    );
    g.req.name_len = 9;
    g.req.name_gpa = 0xFFC;
    assert_eq!(g.decode(1), Err(AbiError::OutOfBounds(Field::Name)));
    g.req.name_gpa = 0;
    assert_eq!(g.decode(1), Err(AbiError::NullPointer(Field::Name)));
    let mut g = Guest::tool_call(b"Read File", b"{}");
    assert_eq!(g.decode(1), Err(AbiError::BadToolName));
}

#[test]
fn decode_rejects_bad_args() {
    let mut g = Guest::tool_call(b"read_file", b"[1]");
    assert_eq!(g.decode(1), Err(AbiError::ArgsNotObject));
    g.req.args_len = 0;
    assert_eq!(g.decode(1), Err(AbiError::Empty(Field::Args)));
    g.req.args_len = MAX_ARGS_LEN + 1;
    assert!(matches!(
        g.decode(1),
        Err(AbiError::TooLarge {
            field: Field::Args,
            ..
        })
    ));
    g.req.args_len = 0x2000;
    assert_eq!(g.decode(1), Err(AbiError::OutOfBounds(Field::Args)));
    g.req.args_gpa = u64::MAX;
    assert_eq!(g.decode(1), Err(AbiError::Overflow(Field::Args)));
}

#[test]
fn decode_checks_result_buffer() {
    let mut g = Guest::tool_call(b"read_file", b"{}");
    g.req.result_cap = 0x900;
    assert_eq!(g.decode(1), Err(AbiError::OutOfBounds(Field::Result)));
    g.req.result_gpa = 0;
    assert_eq!(g.decode(1), Err(AbiError::NullPointer(Field::Result)));
    // A huge capacity is clamped, then bounds-checked.
    g.req.result_gpa = 0x800;
    g.req.result_cap = u64::MAX;
    assert_eq!(g.decode(1), Err(AbiError::OutOfBounds(Field::Result)));
    g.req.result_cap = 0;
    assert!(matches!(g.decode(1), Ok(Call::ToolCall { result, .. }) if result.is_empty()));
}

#[test]
fn pointers_are_checked_before_contents() {
    // Args that are not a JSON object and a null result buffer: the bad pointer wins.
    let mut g = Guest::tool_call(b"read_file", b"ng");
    g.req.result_gpa = 0;
    g.req.result_cap = 4096;
    assert_eq!(g.decode(1), Err(AbiError::NullPointer(Field::Result)));
    assert_eq!(
        AbiError::NullPointer(Field::Result).status(),
        Status::BadPointer
    );
    // A bad tool name and args outside memory: also a bad pointer.
    let mut g = Guest::tool_call(b"Bad!", b"{}");
    g.req.args_gpa = 0x8000_0000;
    assert_eq!(g.decode(1), Err(AbiError::OutOfBounds(Field::Args)));
    // With every pointer good, the contents are judged.
    let mut g = Guest::tool_call(b"read_file", b"ng");
    assert_eq!(g.decode(1), Err(AbiError::ArgsNotObject));
}

#[test]
fn decode_rejects_reserved_fields() {
    let mut g = Guest::tool_call(b"read_file", b"{}");
    g.req.exit_code = 1;
    assert_eq!(g.decode(1), Err(AbiError::ReservedNotZero(Field::Request)));
    let mut g = Guest::text(Kind::ConsoleWrite, b"hi");
    g.req.name_len = 1;
    assert_eq!(g.decode(2), Err(AbiError::ReservedNotZero(Field::Name)));
    let mut g = Guest::text(Kind::ConsoleWrite, b"hi");
    g.req.result_gpa = 0x800;
    assert_eq!(g.decode(2), Err(AbiError::ReservedNotZero(Field::Result)));
    let mut g = Guest::text(Kind::ConsoleWrite, b"hi");
    g.req.exit_code = 3;
    assert_eq!(g.decode(2), Err(AbiError::ReservedNotZero(Field::Request)));
}

#[test]
fn decode_rejects_bad_text() {
    let mut g = Guest::text(Kind::ConsoleWrite, b"\xff\xfe");
    assert_eq!(g.decode(2), Err(AbiError::TextNotUtf8));
    g.req.args_len = MAX_TEXT_LEN + 1;
    assert!(matches!(
        g.decode(2),
        Err(AbiError::TooLarge {
            field: Field::Args,
            ..
        })
    ));
    assert_eq!(AbiError::TextNotUtf8.status(), Status::BadRequest);
}

#[test]
fn write_result_fits_truncates_and_reports() {
    let mut mem = vec![0u8; 64];
    assert_eq!(
        write_result(&mut mem, 8..16, Status::Ok, b"abc"),
        Response {
            status: Status::Ok,
            len: 3
        }
    );
    assert_eq!(&mem[8..11], b"abc");
    let r = write_result(&mut mem, 8..12, Status::Ok, b"0123456789");
    assert_eq!(
        r,
        Response {
            status: Status::TooLarge,
            len: 10
        }
    );
    assert_eq!(&mem[8..12], b"0123");
    // A reason text is cut at a character boundary and keeps its status.
    let r = write_result(&mut mem, 8..12, Status::Denied, "abcé!".as_bytes());
    assert_eq!(
        r,
        Response {
            status: Status::Denied,
            len: 3
        }
    );
    assert_eq!(
        write_result(&mut mem, 60..70, Status::Ok, b"x").status,
        Status::InternalError
    );
    assert_eq!(r.registers(), (1, 3));
    assert_eq!(
        Response::error(AbiError::BadToolName).registers(),
        (Status::BadRequest as u64, 0)
    );
}

#[test]
fn every_error_has_a_message_and_keeps_its_field() {
    let e = AbiError::Overflow(Field::Range).in_field(Field::Args);
    assert_eq!(e, AbiError::Overflow(Field::Args));
    assert_eq!(format!("{e}"), "args: address range wraps around");
    assert_eq!(
        AbiError::BadMagic { found: 1 }.in_field(Field::Name),
        AbiError::BadMagic { found: 1 }
    );
}
