//! Zero-copy GGUF (v2, v3) reader. Every offset, size, count and type is checked:
//! malformed input yields a [`GgufError`], never a panic or an out-of-bounds read.

mod meta;
mod reader;
mod types;

pub use meta::{MetaArray, MetaType, MetaValue, StrIter};
pub use types::GgmlType;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// The GGUF magic, "GGUF" as bytes.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of the data section and tensor offsets when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Highest tensor rank GGUF (ggml) allows.
pub const MAX_DIMS: usize = 4;

/// Why a GGUF file could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GgufError {
    /// The file ended before `what` could be read (at byte `offset`).
    Truncated {
        what: String,
        offset: usize,
    },
    BadMagic([u8; 4]),
    UnsupportedVersion(u32),
    /// A metadata entry is malformed.
    Metadata {
        key: String,
        reason: String,
    },
    /// A tensor info is malformed or its data is out of bounds.
    Tensor {
        name: String,
        reason: String,
    },
    /// A tensor has a type id ggml does not define.
    UnknownTensorType {
        name: String,
        type_id: u32,
    },
}

impl fmt::Display for GgufError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GgufError::Truncated { what, offset } => {
                write!(
                    f,
                    "gguf: truncated file: {what} at byte {offset} runs past the end"
                )
            }
            GgufError::BadMagic(m) => write!(f, "gguf: bad magic {m:02x?}, expected \"GGUF\""),
            GgufError::UnsupportedVersion(v) => {
                write!(f, "gguf: unsupported version {v} (supported: 2, 3)")
            }
            GgufError::Metadata { key, reason } => {
                write!(f, "gguf: metadata key '{key}': {reason}")
            }
            GgufError::Tensor { name, reason } => write!(f, "gguf: tensor '{name}': {reason}"),
            GgufError::UnknownTensorType { name, type_id } => {
                write!(f, "gguf: tensor '{name}': unknown ggml type id {type_id}")
            }
        }
    }
}

/// One tensor: name, shape (`shape[0]` = row length, unused dims are 1), type and its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorInfo<'a> {
    pub name: &'a str,
    pub shape: [u64; 4],
    pub n_dims: u32,
    pub ty: GgmlType,
    pub data: &'a [u8],
    /// Offset of the data relative to the start of the data section.
    pub offset: u64,
}

impl<'a> TensorInfo<'a> {
    /// Total number of elements.
    pub fn n_elements(&self) -> u64 {
        self.shape.iter().product()
    }

    /// Elements per row (`shape[0]`).
    pub fn row_len(&self) -> usize {
        self.shape[0] as usize
    }

    /// Number of rows (product of `shape[1..]`).
    pub fn n_rows(&self) -> usize {
        (self.shape[1] * self.shape[2] * self.shape[3]) as usize
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.data.len() / self.n_rows().max(1)
    }

    /// The bytes of row `i`, or None when out of range.
    pub fn row(&self, i: usize) -> Option<&'a [u8]> {
        let rb = self.row_bytes();
        self.data
            .get(i.checked_mul(rb)?..i.checked_add(1)?.checked_mul(rb)?)
    }
}

/// A parsed GGUF file borrowing from its bytes.
#[derive(Clone, Debug)]
pub struct Gguf<'a> {
    pub version: u32,
    pub alignment: u64,
    /// Byte offset of the (aligned) data section in the file.
    pub data_offset: usize,
    metadata: Vec<(&'a str, MetaValue<'a>)>,
    tensors: Vec<TensorInfo<'a>>,
}

impl<'a> Gguf<'a> {
    /// Parses and validates a whole GGUF file.
    pub fn parse(bytes: &'a [u8]) -> Result<Gguf<'a>, GgufError> {
        reader::parse(bytes)
    }

    /// All metadata entries in file order.
    pub fn metadata(&self) -> &[(&'a str, MetaValue<'a>)] {
        &self.metadata
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&MetaValue<'a>> {
        self.metadata
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    pub fn get_str(&self, key: &str) -> Option<&'a str> {
        match self.get(key)? {
            MetaValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Any integer type whose value fits in u32.
    pub fn get_u32(&self, key: &str) -> Option<u32> {
        u32::try_from(self.get(key)?.as_integer()?).ok()
    }

    /// Any integer type whose value fits in u64.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        u64::try_from(self.get(key)?.as_integer()?).ok()
    }

    /// Any integer type whose value fits in i32.
    pub fn get_i32(&self, key: &str) -> Option<i32> {
        i32::try_from(self.get(key)?.as_integer()?).ok()
    }

    /// F32 values, or F64 values converted to f32.
    pub fn get_f32(&self, key: &str) -> Option<f32> {
        match *self.get(key)? {
            MetaValue::F32(v) => Some(v),
            MetaValue::F64(v) => Some(v as f32),
            _ => None,
        }
    }

    pub fn get_bool(&self, key: &str) -> Option<bool> {
        match *self.get(key)? {
            MetaValue::Bool(v) => Some(v),
            _ => None,
        }
    }

    pub fn get_array(&self, key: &str) -> Option<MetaArray<'a>> {
        match *self.get(key)? {
            MetaValue::Array(a) => Some(a),
            _ => None,
        }
    }

    /// All tensors in file order.
    pub fn tensors(&self) -> &[TensorInfo<'a>] {
        &self.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo<'a>> {
        self.tensors.iter().find(|t| t.name == name)
    }
}
