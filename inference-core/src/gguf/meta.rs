//! GGUF metadata values; arrays are kept as raw byte ranges and decoded lazily.

/// GGUF metadata value type ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl MetaType {
    pub fn from_u32(v: u32) -> Option<MetaType> {
        use MetaType::*;
        Some(match v {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// Fixed byte size of a scalar of this type (None for strings and arrays).
    pub fn fixed_size(self) -> Option<usize> {
        use MetaType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }
}

/// One metadata value. Strings borrow from the file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MetaValue<'a> {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(&'a str),
    Array(MetaArray<'a>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl MetaValue<'_> {
    /// The value as a signed 128-bit integer when it is of an integer type.
    pub fn as_integer(&self) -> Option<i128> {
        Some(match *self {
            MetaValue::U8(v) => v as i128,
            MetaValue::I8(v) => v as i128,
            MetaValue::U16(v) => v as i128,
            MetaValue::I16(v) => v as i128,
            MetaValue::U32(v) => v as i128,
            MetaValue::I32(v) => v as i128,
            MetaValue::U64(v) => v as i128,
            MetaValue::I64(v) => v as i128,
            _ => return None,
        })
    }
}

/// An array value: element type, element count and the raw little-endian bytes of the
/// elements (for strings: the u64-length-prefixed strings, already validated as UTF-8).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetaArray<'a> {
    pub elem_type: MetaType,
    pub len: usize,
    pub raw: &'a [u8],
}

macro_rules! fixed_iter {
    ($name:ident, $variant:ident, $t:ty, $n:expr) => {
        /// Elements of this type; None when the array holds another element type.
        pub fn $name(&self) -> Option<impl Iterator<Item = $t> + 'a> {
            if self.elem_type != MetaType::$variant {
                return None;
            }
            Some(self.raw.chunks_exact($n).map(|c| {
                let mut b = [0u8; $n];
                b.copy_from_slice(c);
                <$t>::from_le_bytes(b)
            }))
        }
    };
}

impl<'a> MetaArray<'a> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fixed_iter!(u8s, U8, u8, 1);
    fixed_iter!(i8s, I8, i8, 1);
    fixed_iter!(u16s, U16, u16, 2);
    fixed_iter!(i16s, I16, i16, 2);
    fixed_iter!(u32s, U32, u32, 4);
    fixed_iter!(i32s, I32, i32, 4);
    fixed_iter!(f32s, F32, f32, 4);
    fixed_iter!(u64s, U64, u64, 8);
    fixed_iter!(i64s, I64, i64, 8);
    fixed_iter!(f64s, F64, f64, 8);

    /// Boolean elements; None when the array holds another element type.
    pub fn bools(&self) -> Option<impl Iterator<Item = bool> + 'a> {
        if self.elem_type != MetaType::Bool {
            return None;
        }
        Some(self.raw.iter().map(|&b| b != 0))
    }

    /// String elements; None when the array holds another element type.
    pub fn strings(&self) -> Option<StrIter<'a>> {
        if self.elem_type != MetaType::String {
            return None;
        }
        Some(StrIter {
            rest: self.raw,
            left: self.len,
        })
    }
}

/// Iterator over the strings of a validated string array.
#[derive(Clone, Debug)]
pub struct StrIter<'a> {
    rest: &'a [u8],
    left: usize,
}

impl<'a> Iterator for StrIter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.left == 0 || self.rest.len() < 8 {
            return None;
        }
        let mut lb = [0u8; 8];
        lb.copy_from_slice(&self.rest[..8]);
        let n = usize::try_from(u64::from_le_bytes(lb)).ok()?;
        let body = self.rest.get(8..8usize.checked_add(n)?)?;
        self.rest = &self.rest[8 + n..];
        self.left -= 1;
        // The parser validated every element as UTF-8; a failure here cannot happen.
        core::str::from_utf8(body).ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}
