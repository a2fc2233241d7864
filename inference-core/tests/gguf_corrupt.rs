//! Corrupted GGUF files built from a valid small one: every one must give Err, never panic.

use inference_core::gguf::{GgmlType, Gguf, GgufError};
use inference_core::synthetic::{tiny_llama_gguf, ArrayValue, GgufWriter, Value};

/// A small valid file with a known layout: header, one u32 kv, one tensor.
fn small_file() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.add_u32("k", 5);
    w.add_tensor_f32("t", &[32, 2], GgmlType::Q8_0, &[1.0; 64])
        .unwrap();
    w.to_bytes()
}

// Layout of small_file: magic 0..4, version 4..8, n_tensors 8..16, n_kv 16..24,
// key len 24..32, "k" 32, type 33..37, value 37..41, name len 41..49, "t" 49,
// n_dims 50..54, dims 54..70, type 70..74, offset 74..82, data at 96.
const N_TENSORS: usize = 8;
const N_KV: usize = 16;
const KEY_LEN: usize = 24;
const KV_TYPE: usize = 33;
const NAME_LEN: usize = 41;
const N_DIMS: usize = 50;
const DIM0: usize = 54;
const T_TYPE: usize = 70;
const T_OFFSET: usize = 74;

fn patch(mut b: Vec<u8>, at: usize, bytes: &[u8]) -> Vec<u8> {
    b[at..at + bytes.len()].copy_from_slice(bytes);
    b
}

#[test]
fn the_base_files_are_valid() {
    let b = small_file();
    let g = Gguf::parse(&b).unwrap();
    assert_eq!(g.tensor("t").unwrap().data.len(), 68);
    assert_eq!(g.data_offset, 96);
    Gguf::parse(&tiny_llama_gguf(1)).unwrap();
}

#[test]
fn every_truncation_fails() {
    let b = small_file();
    for len in 0..b.len() - 28 {
        assert!(Gguf::parse(&b[..len]).is_err(), "truncated at {len} parsed");
    }
    let big = tiny_llama_gguf(1);
    for len in (0..big.len()).step_by(97) {
        assert!(
            Gguf::parse(&big[..len]).is_err(),
            "truncated at {len} parsed"
        );
    }
}

#[test]
fn bad_header_fields() {
    let b = small_file();
    assert!(matches!(
        Gguf::parse(&patch(b.clone(), 0, b"GGUG")),
        Err(GgufError::BadMagic(_))
    ));
    for v in [0u32, 1, 4, u32::MAX] {
        let e = Gguf::parse(&patch(b.clone(), 4, &v.to_le_bytes())).unwrap_err();
        assert_eq!(e, GgufError::UnsupportedVersion(v));
    }
    assert!(
        Gguf::parse(&patch(b.clone(), 4, &2u32.to_le_bytes())).is_ok(),
        "v2 has the v3 layout"
    );
    for huge in [2u64, 1 << 40, u64::MAX] {
        assert!(Gguf::parse(&patch(b.clone(), N_TENSORS, &huge.to_le_bytes())).is_err());
        assert!(Gguf::parse(&patch(b.clone(), N_KV, &huge.to_le_bytes())).is_err());
    }
}

#[test]
fn bad_strings_and_value_types() {
    let b = small_file();
    for len in [2u64, 1000, u64::MAX, u64::MAX - 7] {
        assert!(Gguf::parse(&patch(b.clone(), KEY_LEN, &len.to_le_bytes())).is_err());
        assert!(Gguf::parse(&patch(b.clone(), NAME_LEN, &len.to_le_bytes())).is_err());
    }
    assert!(
        Gguf::parse(&patch(b.clone(), 32, &[0xff])).is_err(),
        "invalid UTF-8 key"
    );
    for ty in [13u32, 99, u32::MAX] {
        let e = Gguf::parse(&patch(b.clone(), KV_TYPE, &ty.to_le_bytes())).unwrap_err();
        assert!(e.to_string().contains("'k'"), "{e}");
    }
    // Type changed to string: the u32 value becomes a length prefix that runs off the end.
    assert!(Gguf::parse(&patch(b.clone(), KV_TYPE, &8u32.to_le_bytes())).is_err());
    // Type changed to array: element type 5 then a count read from the following bytes.
    assert!(Gguf::parse(&patch(b.clone(), KV_TYPE, &9u32.to_le_bytes())).is_err());
}

fn file_with(key: &str, v: Value) -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.add(key, v);
    w.to_bytes()
}

#[test]
fn bad_arrays() {
    // Nested array: element type 9.
    let mut b = file_with("a", Value::Array(ArrayValue::U32(vec![1, 2])));
    let et = 24 + 8 + 1 + 4;
    b[et..et + 4].copy_from_slice(&9u32.to_le_bytes());
    let e = Gguf::parse(&b).unwrap_err();
    assert!(e.to_string().contains("nested"), "{e}");
    // Huge counts overflowing count * size, and counts past the end.
    let b = file_with("a", Value::Array(ArrayValue::U64(vec![1, 2])));
    for count in [10u64, 1 << 61, u64::MAX] {
        assert!(Gguf::parse(&patch(b.clone(), et + 4, &count.to_le_bytes())).is_err());
    }
    let b = file_with(
        "a",
        Value::Array(ArrayValue::Str(vec!["x".into(), "yz".into()])),
    );
    assert!(Gguf::parse(&patch(b.clone(), et + 4, &1000u64.to_le_bytes())).is_err());
    // The second string's length prefix made huge.
    assert!(Gguf::parse(&patch(b.clone(), et + 12 + 9, &u64::MAX.to_le_bytes())).is_err());
    let b = file_with("a", Value::Array(ArrayValue::Bool(vec![true])));
    assert!(Gguf::parse(&patch(b, et + 12, &[7])).is_err(), "bool 7");
    let b = file_with("a", Value::Bool(true));
    assert!(Gguf::parse(&patch(b, et, &[2])).is_err(), "bool 2");
}

#[test]
fn bad_tensor_infos() {
    let b = small_file();
    for n in [0u32, 5, u32::MAX] {
        assert!(
            Gguf::parse(&patch(b.clone(), N_DIMS, &n.to_le_bytes())).is_err(),
            "n_dims {n}"
        );
    }
    // Row length not a multiple of the Q8_0 block; dims overflowing the element count.
    assert!(Gguf::parse(&patch(b.clone(), DIM0, &33u64.to_le_bytes())).is_err());
    assert!(Gguf::parse(&patch(b.clone(), DIM0, &(1u64 << 63).to_le_bytes())).is_err());
    assert!(Gguf::parse(&patch(b.clone(), DIM0 + 8, &u64::MAX.to_le_bytes())).is_err());
    // Larger than the data section.
    assert!(Gguf::parse(&patch(b.clone(), DIM0 + 8, &3u64.to_le_bytes())).is_err());
    let e = Gguf::parse(&patch(b.clone(), T_TYPE, &4u32.to_le_bytes())).unwrap_err();
    assert_eq!(
        e,
        GgufError::UnknownTensorType {
            name: "t".into(),
            type_id: 4
        }
    );
    assert!(e.to_string().contains("type id 4"));
    // Misaligned, out of range, overflowing offsets.
    for off in [1u64, 16, 32, 64, u64::MAX - 31] {
        assert!(
            Gguf::parse(&patch(b.clone(), T_OFFSET, &off.to_le_bytes())).is_err(),
            "offset {off}"
        );
    }
}

#[test]
fn bad_alignment_and_overlaps() {
    for a in [0u32, 3, 48] {
        let mut w = GgufWriter::new();
        w.add("general.alignment", Value::U32(a));
        assert!(Gguf::parse(&w.to_bytes()).is_err(), "alignment {a}");
    }
    let mut w = GgufWriter::new();
    w.add("general.alignment", Value::U64(32));
    assert!(Gguf::parse(&w.to_bytes()).is_err(), "alignment must be u32");
    // Two tensors at the same offset overlap; duplicate names; duplicate keys.
    let mut w = GgufWriter::new();
    w.add_tensor_bytes("a", &[32], GgmlType::F32, vec![0; 128]);
    w.add_tensor_bytes("b", &[32], GgmlType::F32, vec![0; 128]);
    let b = w.to_bytes();
    let name_b = b
        .windows(9)
        .position(|p| p == [1, 0, 0, 0, 0, 0, 0, 0, b'b'])
        .unwrap()
        + 8;
    let off_b = name_b + 1 + 4 + 8 + 4;
    let e = Gguf::parse(&patch(b.clone(), off_b, &0u64.to_le_bytes())).unwrap_err();
    assert!(e.to_string().contains("overlaps"), "{e}");
    let dup = patch(b, name_b, b"a");
    assert!(Gguf::parse(&dup)
        .unwrap_err()
        .to_string()
        .contains("duplicate"));
    let mut w = GgufWriter::new();
    w.add_u32("x", 1).add_u32("y", 2);
    let b = w.to_bytes();
    let y = b.iter().rposition(|&c| c == b'y').unwrap();
    assert!(Gguf::parse(&patch(b, y, b"x")).is_err());
}

/// Every single-byte corruption of the header region of the tiny model must not panic.
#[test]
fn byte_flips_never_panic() {
    let b = tiny_llama_gguf(2);
    let g = Gguf::parse(&b).unwrap();
    let end = g.data_offset;
    for i in (0..end).step_by(7) {
        for v in [0u8, 0xff, b[i] ^ 0x80] {
            let mut c = b.clone();
            c[i] = v;
            let _ = Gguf::parse(&c);
        }
    }
}
