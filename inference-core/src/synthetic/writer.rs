//! A deterministic GGUF writer (the inverse of `gguf::Gguf::parse`).

use super::weights::quantize_row;
use crate::gguf::{GgmlType, MetaType, DEFAULT_ALIGNMENT};
use crate::quant::QuantError;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// An owned metadata value to write.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    U64(u64),
    I64(i64),
    F64(f64),
    Array(ArrayValue),
}

/// An owned array value (GGUF arrays are homogeneous and, here, never nested).
#[derive(Clone, Debug, PartialEq)]
pub enum ArrayValue {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    Str(Vec<String>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}

struct TensorEntry {
    name: String,
    shape: Vec<u64>,
    ty: GgmlType,
    data: Vec<u8>,
}

/// Builds a GGUF file in memory: metadata in insertion order, then tensor infos, then the
/// aligned tensor data.
pub struct GgufWriter {
    version: u32,
    alignment: u64,
    metadata: Vec<(String, Value)>,
    tensors: Vec<TensorEntry>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        Self::new()
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn value_type(v: &Value) -> MetaType {
    match v {
        Value::U8(_) => MetaType::U8,
        Value::I8(_) => MetaType::I8,
        Value::U16(_) => MetaType::U16,
        Value::I16(_) => MetaType::I16,
        Value::U32(_) => MetaType::U32,
        Value::I32(_) => MetaType::I32,
        Value::F32(_) => MetaType::F32,
        Value::Bool(_) => MetaType::Bool,
        Value::Str(_) => MetaType::String,
        Value::U64(_) => MetaType::U64,
        Value::I64(_) => MetaType::I64,
        Value::F64(_) => MetaType::F64,
        Value::Array(_) => MetaType::Array,
    }
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.push(*x as u8),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(*x as u8),
        Value::Str(s) => put_str(out, s),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Array(a) => put_array(out, a),
    }
}

fn put_array(out: &mut Vec<u8>, a: &ArrayValue) {
    macro_rules! fixed {
        ($t:expr, $v:expr) => {{
            out.extend_from_slice(&($t as u32).to_le_bytes());
            out.extend_from_slice(&($v.len() as u64).to_le_bytes());
            for x in $v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }};
    }
    match a {
        ArrayValue::U8(v) => fixed!(MetaType::U8, v),
        ArrayValue::I8(v) => fixed!(MetaType::I8, v),
        ArrayValue::U16(v) => fixed!(MetaType::U16, v),
        ArrayValue::I16(v) => fixed!(MetaType::I16, v),
        ArrayValue::U32(v) => fixed!(MetaType::U32, v),
        ArrayValue::I32(v) => fixed!(MetaType::I32, v),
        ArrayValue::F32(v) => fixed!(MetaType::F32, v),
        ArrayValue::U64(v) => fixed!(MetaType::U64, v),
        ArrayValue::I64(v) => fixed!(MetaType::I64, v),
        ArrayValue::F64(v) => fixed!(MetaType::F64, v),
        ArrayValue::Bool(v) => {
            out.extend_from_slice(&(MetaType::Bool as u32).to_le_bytes());
            out.extend_from_slice(&(v.len() as u64).to_le_bytes());
            out.extend(v.iter().map(|&b| b as u8));
        }
        ArrayValue::Str(v) => {
            out.extend_from_slice(&(MetaType::String as u32).to_le_bytes());
            out.extend_from_slice(&(v.len() as u64).to_le_bytes());
            for s in v {
                put_str(out, s);
            }
        }
    }
}

impl GgufWriter {
    /// An empty GGUF v3 file with the default alignment (32).
    pub fn new() -> GgufWriter {
        GgufWriter {
            version: 3,
            alignment: DEFAULT_ALIGNMENT,
            metadata: Vec::new(),
            tensors: Vec::new(),
        }
    }

    /// Writes this GGUF version number (the layout is the same for 2 and 3).
    pub fn set_version(&mut self, version: u32) -> &mut Self {
        self.version = version;
        self
    }

    /// Sets the data alignment (a power of two) and records it as `general.alignment`.
    pub fn set_alignment(&mut self, alignment: u32) -> &mut Self {
        self.alignment = alignment.max(1) as u64;
        self.add("general.alignment", Value::U32(alignment))
    }

    /// Adds (or replaces) a metadata entry.
    pub fn add(&mut self, key: &str, value: Value) -> &mut Self {
        match self.metadata.iter_mut().find(|(k, _)| k == key) {
            Some(e) => e.1 = value,
            None => self.metadata.push((key.to_string(), value)),
        }
        self
    }

    pub fn add_str(&mut self, key: &str, v: &str) -> &mut Self {
        self.add(key, Value::Str(v.to_string()))
    }

    pub fn add_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.add(key, Value::U32(v))
    }

    pub fn add_f32(&mut self, key: &str, v: f32) -> &mut Self {
        self.add(key, Value::F32(v))
    }

    pub fn add_bool(&mut self, key: &str, v: bool) -> &mut Self {
        self.add(key, Value::Bool(v))
    }

    /// Adds a tensor from already encoded bytes (not checked: lets tests write bad files).
    pub fn add_tensor_bytes(
        &mut self,
        name: &str,
        shape: &[u64],
        ty: GgmlType,
        data: Vec<u8>,
    ) -> &mut Self {
        self.tensors.push(TensorEntry {
            name: name.to_string(),
            shape: shape.to_vec(),
            ty,
            data,
        });
        self
    }

    /// Adds a tensor from f32 values (row-major, `shape[0]` per row), encoded as `ty`.
    pub fn add_tensor_f32(
        &mut self,
        name: &str,
        shape: &[u64],
        ty: GgmlType,
        values: &[f32],
    ) -> Result<&mut Self, QuantError> {
        let row = shape.first().copied().unwrap_or(1).max(1) as usize;
        let total: u64 = shape.iter().product();
        if values.len() as u64 != total || !values.len().is_multiple_of(row) {
            return Err(QuantError::BadLength {
                ty,
                expected: total as usize,
                got: values.len(),
            });
        }
        let mut data = Vec::new();
        for r in values.chunks_exact(row) {
            quantize_row(ty, r, &mut data)?;
        }
        Ok(self.add_tensor_bytes(name, shape, ty, data))
    }

    /// The file bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (k, v) in &self.metadata {
            put_str(&mut out, k);
            out.extend_from_slice(&(value_type(v) as u32).to_le_bytes());
            put_value(&mut out, v);
        }
        let align = self.alignment.max(1) as usize;
        let mut offset = 0usize;
        for t in &self.tensors {
            put_str(&mut out, &t.name);
            out.extend_from_slice(&(t.shape.len() as u32).to_le_bytes());
            for d in &t.shape {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.ty.id().to_le_bytes());
            out.extend_from_slice(&(offset as u64).to_le_bytes());
            offset = (offset + t.data.len()).next_multiple_of(align);
        }
        out.resize(out.len().next_multiple_of(align), 0);
        for t in &self.tensors {
            out.extend_from_slice(&t.data);
            out.resize(out.len().next_multiple_of(align), 0);
        }
        out
    }
}
