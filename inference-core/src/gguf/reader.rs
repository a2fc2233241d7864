//! The bounds-checked GGUF byte parser.

use super::{
    GgmlType, Gguf, GgufError, MetaArray, MetaType, MetaValue, TensorInfo, DEFAULT_ALIGNMENT,
    GGUF_MAGIC, MAX_DIMS,
};
use alloc::borrow::ToOwned;
use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// A forward-only cursor over the file bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8], GgufError> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n))
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| GgufError::Truncated {
                what: what(),
                offset: self.pos,
            })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], GgufError> {
        let s = self.take(N as u64, what)?;
        let mut b = [0u8; N];
        b.copy_from_slice(s);
        Ok(b)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A u64-length-prefixed UTF-8 string.
    fn string(&mut self, what: &dyn Fn() -> String) -> Result<&'a str, GgufError> {
        let len = self.u64(what)?;
        let body = self.take(len, what)?;
        core::str::from_utf8(body).map_err(|_| GgufError::Truncated {
            what: format!("{} (invalid UTF-8)", what()),
            offset: self.pos - body.len(),
        })
    }
}

fn meta_err(key: &str, reason: impl Into<String>) -> GgufError {
    GgufError::Metadata {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

fn tensor_err(name: &str, reason: impl Into<String>) -> GgufError {
    GgufError::Tensor {
        name: name.to_owned(),
        reason: reason.into(),
    }
}

fn read_value<'a>(c: &mut Cursor<'a>, key: &str, ty: MetaType) -> Result<MetaValue<'a>, GgufError> {
    let what = || format!("value of metadata key '{key}'");
    Ok(match ty {
        MetaType::U8 => MetaValue::U8(c.array::<1>(&what)?[0]),
        MetaType::I8 => MetaValue::I8(c.array::<1>(&what)?[0] as i8),
        MetaType::U16 => MetaValue::U16(u16::from_le_bytes(c.array(&what)?)),
        MetaType::I16 => MetaValue::I16(i16::from_le_bytes(c.array(&what)?)),
        MetaType::U32 => MetaValue::U32(c.u32(&what)?),
        MetaType::I32 => MetaValue::I32(i32::from_le_bytes(c.array(&what)?)),
        MetaType::F32 => MetaValue::F32(f32::from_le_bytes(c.array(&what)?)),
        MetaType::Bool => match c.array::<1>(&what)?[0] {
            0 => MetaValue::Bool(false),
            1 => MetaValue::Bool(true),
            b => return Err(meta_err(key, format!("bool value {b} is neither 0 nor 1"))),
        },
        MetaType::String => MetaValue::Str(c.string(&what)?),
        MetaType::U64 => MetaValue::U64(c.u64(&what)?),
        MetaType::I64 => MetaValue::I64(i64::from_le_bytes(c.array(&what)?)),
        MetaType::F64 => MetaValue::F64(f64::from_le_bytes(c.array(&what)?)),
        MetaType::Array => MetaValue::Array(read_array(c, key)?),
    })
}

fn read_array<'a>(c: &mut Cursor<'a>, key: &str) -> Result<MetaArray<'a>, GgufError> {
    let what = || format!("array header of metadata key '{key}'");
    let et_id = c.u32(&what)?;
    let elem_type = MetaType::from_u32(et_id)
        .ok_or_else(|| meta_err(key, format!("unknown array element type {et_id}")))?;
    let count = c.u64(&what)?;
    let len = usize::try_from(count)
        .map_err(|_| meta_err(key, format!("array count {count} too large")))?;
    let start = c.pos;
    match elem_type {
        MetaType::Array => return Err(meta_err(key, "nested arrays are not supported")),
        MetaType::String => {
            for i in 0..len {
                let what = || format!("string {i} of array '{key}' (count {count})");
                c.string(&what)?;
            }
        }
        _ => {
            let size = elem_type.fixed_size().unwrap_or(1) as u64;
            let total = count
                .checked_mul(size)
                .ok_or_else(|| meta_err(key, format!("array count {count} overflows")))?;
            let body = c.take(total, &|| {
                format!("elements of array '{key}' (count {count})")
            })?;
            if elem_type == MetaType::Bool {
                if let Some(i) = body.iter().position(|&b| b > 1) {
                    return Err(meta_err(
                        key,
                        format!("bool element {i} is neither 0 nor 1"),
                    ));
                }
            }
        }
    }
    Ok(MetaArray {
        elem_type,
        len,
        raw: &c.bytes[start..c.pos],
    })
}

/// Parses one tensor info record (without its data, which comes after the header).
fn read_tensor_info<'a>(
    c: &mut Cursor<'a>,
    index: u64,
) -> Result<(&'a str, [u64; 4], u32, GgmlType, u64), GgufError> {
    let name = c.string(&|| format!("name of tensor {index}"))?;
    let what = || format!("info of tensor '{name}'");
    let n_dims = c.u32(&what)?;
    if n_dims == 0 || n_dims as usize > MAX_DIMS {
        return Err(tensor_err(
            name,
            format!("n_dims {n_dims} not in 1..={MAX_DIMS}"),
        ));
    }
    let mut shape = [1u64; 4];
    for d in shape.iter_mut().take(n_dims as usize) {
        *d = c.u64(&what)?;
    }
    let type_id = c.u32(&what)?;
    let ty = GgmlType::from_u32(type_id).ok_or_else(|| GgufError::UnknownTensorType {
        name: name.to_owned(),
        type_id,
    })?;
    let offset = c.u64(&what)?;
    Ok((name, shape, n_dims, ty, offset))
}

fn tensor_byte_size(name: &str, shape: &[u64; 4], ty: GgmlType) -> Result<u64, GgufError> {
    let mut n: u64 = 1;
    for &d in shape {
        n = n.checked_mul(d).ok_or_else(|| {
            tensor_err(name, format!("element count of shape {shape:?} overflows"))
        })?;
    }
    if !shape[0].is_multiple_of(ty.block_size() as u64) {
        return Err(tensor_err(
            name,
            format!(
                "row length {} is not a multiple of the {} block size {}",
                shape[0],
                ty,
                ty.block_size()
            ),
        ));
    }
    (n / ty.block_size() as u64)
        .checked_mul(ty.type_size() as u64)
        .ok_or_else(|| tensor_err(name, "byte size overflows"))
}

pub(super) fn parse(bytes: &[u8]) -> Result<Gguf<'_>, GgufError> {
    let mut c = Cursor { bytes, pos: 0 };
    let magic: [u8; 4] = c.array(&|| "magic".to_string())?;
    if magic != GGUF_MAGIC {
        return Err(GgufError::BadMagic(magic));
    }
    let version = c.u32(&|| "version".to_string())?;
    if version != 2 && version != 3 {
        return Err(GgufError::UnsupportedVersion(version));
    }
    let n_tensors = c.u64(&|| "tensor count".to_string())?;
    let n_kv = c.u64(&|| "metadata count".to_string())?;

    let mut metadata: Vec<(&str, MetaValue)> = Vec::new();
    let mut seen = BTreeSet::new();
    for i in 0..n_kv {
        let key = c.string(&|| format!("key of metadata entry {i} (of {n_kv})"))?;
        if !seen.insert(key) {
            return Err(meta_err(key, "duplicate key"));
        }
        let ty_id = c.u32(&|| format!("type of metadata key '{key}'"))?;
        let ty = MetaType::from_u32(ty_id)
            .ok_or_else(|| meta_err(key, format!("unknown value type {ty_id}")))?;
        let value = read_value(&mut c, key, ty)?;
        metadata.push((key, value));
    }

    let alignment = match metadata.iter().find(|(k, _)| *k == "general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some((_, MetaValue::U32(a))) if a.is_power_of_two() => *a as u64,
        Some((_, v)) => {
            return Err(meta_err(
                "general.alignment",
                format!("must be a u32 power of two, got {v:?}"),
            ))
        }
    };

    let mut raw_infos = Vec::new();
    let mut names = BTreeSet::new();
    for i in 0..n_tensors {
        let info = read_tensor_info(&mut c, i)?;
        if !names.insert(info.0) {
            return Err(tensor_err(info.0, "duplicate tensor name"));
        }
        raw_infos.push(info);
    }

    let data_offset = (c.pos as u64)
        .checked_next_multiple_of(alignment)
        .and_then(|d| usize::try_from(d).ok())
        .filter(|&d| d <= bytes.len())
        .ok_or_else(|| GgufError::Truncated {
            what: "padding before the data section".to_string(),
            offset: c.pos,
        })?;
    let data = &bytes[data_offset..];

    let mut tensors = Vec::with_capacity(raw_infos.len());
    for (name, shape, n_dims, ty, offset) in raw_infos {
        let size = tensor_byte_size(name, &shape, ty)?;
        if offset % alignment != 0 {
            return Err(tensor_err(
                name,
                format!("offset {offset} is not a multiple of the alignment {alignment}"),
            ));
        }
        let end = offset
            .checked_add(size)
            .filter(|&e| e <= data.len() as u64)
            .ok_or_else(|| {
                tensor_err(
                    name,
                    format!(
                        "data [{offset}, +{size}) runs past the end of the data section ({} bytes)",
                        data.len()
                    ),
                )
            })?;
        tensors.push(TensorInfo {
            name,
            shape,
            n_dims,
            ty,
            data: &data[offset as usize..end as usize],
            offset,
        });
    }

    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by_key(|&i| tensors[i].offset);
    for w in order.windows(2) {
        let (a, b) = (&tensors[w[0]], &tensors[w[1]]);
        if a.offset + a.data.len() as u64 > b.offset {
            return Err(tensor_err(
                b.name,
                format!("data overlaps tensor '{}'", a.name),
            ));
        }
    }

    Ok(Gguf {
        version,
        alignment,
        data_offset,
        metadata,
        tensors,
    })
}
