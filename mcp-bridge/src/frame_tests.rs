use super::*;
use alloc::vec;

fn req(id: u32, payload: &[u8]) -> Vec<u8> {
    encode(FrameKind::Request, id, payload).unwrap()
}

fn drain(d: &mut FrameDecoder) -> Vec<Result<Frame, FrameError>> {
    let mut out = Vec::new();
    while let Some(r) = d.next_frame() {
        out.push(r);
    }
    out
}

#[test]
fn round_trip_byte_by_byte() {
    let bytes = req(7, br#"{"tool":"read_file","args":{"path":"a"}}"#);
    let mut d = FrameDecoder::new();
    let mut got = Vec::new();
    for b in &bytes {
        d.push(&[*b]);
        got.extend(drain(&mut d));
    }
    assert_eq!(got.len(), 1);
    let f = got.pop().unwrap().unwrap();
    assert_eq!((f.kind, f.id), (FrameKind::Request, 7));
    assert_eq!(f.payload, br#"{"tool":"read_file","args":{"path":"a"}}"#);
    assert_eq!(d.pending(), 0);
}

#[test]
fn two_frames_in_one_push_and_empty_payload() {
    let mut bytes = req(1, b"x");
    bytes.extend(encode(FrameKind::Error, 2, b"").unwrap());
    let mut d = FrameDecoder::new();
    d.push(&bytes);
    let got = drain(&mut d);
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].as_ref().unwrap().kind, FrameKind::Error);
    assert!(got[1].as_ref().unwrap().payload.is_empty());
}

#[test]
fn garbage_before_frame_is_bad_magic_then_resync() {
    let mut bytes = b"hello\x00P".to_vec(); // 'P' not followed by 'B' is garbage too
    bytes.extend(req(3, b"{}"));
    let mut d = FrameDecoder::new();
    d.push(&bytes);
    let got = drain(&mut d);
    assert_eq!(got[0], Err(FrameError::BadMagic { skipped: 7 }));
    assert_eq!(got[1].as_ref().unwrap().id, 3);
    assert_eq!(got.len(), 2);
}

#[test]
fn bad_checksum_refused_and_next_frame_recovered() {
    let mut bad = req(4, b"payload");
    let n = bad.len();
    bad[n - 5] ^= 0x01; // flip a payload bit
    bad.extend(req(5, b"ok"));
    let mut d = FrameDecoder::new();
    d.push(&bad);
    let got = drain(&mut d);
    assert!(
        matches!(got[0], Err(FrameError::BadChecksum { id: 4, .. })),
        "{got:?}"
    );
    // the rest of the bad frame is skipped as garbage, then frame 5 decodes
    assert!(got[1..].iter().any(|r| matches!(r, Ok(f) if f.id == 5)));
    assert!(got[1..]
        .iter()
        .all(|r| r.is_ok() || matches!(r, Err(FrameError::BadMagic { .. }))));
}

#[test]
fn corrupted_length_does_not_swallow_following_frames() {
    let mut bad = req(6, b"abc");
    bad[8] = 40; // claims 40 bytes, which spills into the next frame
    let mut bytes = bad;
    bytes.extend(req(7, b"0123456789012345678901234567890123456789"));
    let mut d = FrameDecoder::new();
    d.push(&bytes);
    let got = drain(&mut d);
    assert!(matches!(got[0], Err(FrameError::BadChecksum { id: 6, .. })));
    assert!(got.iter().any(|r| matches!(r, Ok(f) if f.id == 7)));
}

#[test]
fn bad_version_refused() {
    let mut b = req(1, b"");
    b[2] = 9;
    let mut d = FrameDecoder::new();
    d.push(&b);
    assert_eq!(
        d.next_frame(),
        Some(Err(FrameError::BadVersion { version: 9 }))
    );
}

#[test]
fn bad_kind_refused() {
    let mut b = req(1, b"");
    b[3] = 0;
    let mut d = FrameDecoder::new();
    d.push(&b);
    assert_eq!(d.next_frame(), Some(Err(FrameError::BadKind { kind: 0 })));
}

#[test]
fn oversized_length_refused_before_waiting_for_it() {
    let mut h = vec![b'P', b'B', VERSION, 1, 1, 0, 0, 0];
    h.extend(((MAX_PAYLOAD + 1) as u32).to_le_bytes());
    let mut d = FrameDecoder::new();
    d.push(&h);
    assert_eq!(
        d.next_frame(),
        Some(Err(FrameError::Oversized {
            len: MAX_PAYLOAD as u32 + 1
        }))
    );
    assert_eq!(
        d.next_frame(),
        Some(Err(FrameError::BadMagic { skipped: 10 }))
    );
}

#[test]
fn truncated_frame_reported_on_abandon() {
    let b = req(9, b"0123456789");
    let mut d = FrameDecoder::new();
    d.push(&b[..15]);
    assert_eq!(d.next_frame(), None);
    assert_eq!(
        d.abandon_partial(),
        Some(FrameError::Truncated {
            have: 15,
            need: b.len()
        })
    );
    // the remaining 13 bytes hold no magic: refused as garbage, nothing guessed
    assert_eq!(
        d.next_frame(),
        Some(Err(FrameError::BadMagic { skipped: 13 }))
    );
    assert_eq!(d.next_frame(), None);
    assert_eq!(d.abandon_partial(), None);
}

#[test]
fn truncated_header_and_half_magic() {
    let mut d = FrameDecoder::new();
    d.push(b"P");
    assert_eq!(d.next_frame(), None);
    d.push(b"B\x01");
    assert_eq!(d.next_frame(), None);
    assert_eq!(
        d.abandon_partial(),
        Some(FrameError::Truncated { have: 3, need: 16 })
    );
}

#[test]
fn encode_refuses_oversized_payload() {
    let big = vec![0u8; MAX_PAYLOAD + 1];
    assert_eq!(
        encode(FrameKind::Response, 1, &big),
        Err(EncodeError::PayloadTooLarge {
            len: MAX_PAYLOAD + 1
        })
    );
    assert!(encode(FrameKind::Response, 1, &big[..MAX_PAYLOAD]).is_ok());
}

#[test]
fn errors_have_precise_messages() {
    let e = FrameError::BadChecksum {
        id: 3,
        expected: 1,
        found: 2,
    };
    assert_eq!(
        alloc::format!("{e}"),
        "checksum mismatch in frame id 3: computed 0x00000001, frame says 0x00000002"
    );
}
