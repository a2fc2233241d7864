//! What the guest sees of a tool's answer: status, `RDX` and the result buffer agree.

use super::*;

/// A failure carrying a request-error status (a bridged `too_large` is `TooLarge`) used to write its
/// message into the buffer with `RDX` = the message's length, which the guest reads as "bytes
/// needed" (less than its buffer) and the message as the start of the output.
#[test]
fn a_request_error_status_writes_nothing_and_reports_no_length() {
    let message = b"bridge error too_large: result of 2000000 bytes";
    for status in Status::ALL.into_iter().filter(|s| s.is_abi_error()) {
        let mut mem = vec![0u8; 256];
        let reply = write_result(&mut mem, 16..200, status, message);
        assert_eq!(reply, Response { status, len: 0 }, "{status:?}");
        assert!(mem.iter().all(|&b| b == 0), "{status:?} wrote its message");
        // Cut to fit it also wrote, with a length the guest could not tell from a real one.
        let reply = write_result(&mut mem, 16..24, status, message);
        assert_eq!(reply, Response { status, len: 0 }, "{status:?}");
        assert!(mem.iter().all(|&b| b == 0), "{status:?} wrote its message");
    }
}

#[test]
fn request_errors_are_exactly_statuses_two_to_nine() {
    let abi: Vec<u64> = Status::ALL
        .into_iter()
        .filter(|s| s.is_abi_error())
        .map(|s| s as u64)
        .collect();
    assert_eq!(abi, (2..=9).collect::<Vec<u64>>());
}

#[test]
fn texts_of_the_other_statuses_still_reach_the_buffer() {
    for status in [
        Status::Denied,
        Status::ToolFailed,
        Status::UnknownTool,
        Status::InternalError,
    ] {
        let mut mem = vec![0u8; 64];
        let reply = write_result(&mut mem, 8..40, status, b"why");
        assert_eq!(reply, Response { status, len: 3 });
        assert_eq!(&mem[8..11], b"why");
    }
}
