//! A JSON object writer into a fixed byte buffer (no allocation), with correct string escaping.

use core::fmt::Write as _;

/// Builds `{"key":value,...}` into `buf`. Running out of room is remembered and reported by
/// [`JsonObject::finish`]; nothing past the buffer is ever written.
pub struct JsonObject<'b> {
    buf: &'b mut [u8],
    len: usize,
    overflow: bool,
    fields: usize,
}

impl<'b> JsonObject<'b> {
    pub fn new(buf: &'b mut [u8]) -> JsonObject<'b> {
        let mut o = JsonObject {
            buf,
            len: 0,
            overflow: false,
            fields: 0,
        };
        o.raw("{");
        o
    }

    fn raw(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    fn bytes(&mut self, b: &[u8]) {
        match self.buf.get_mut(self.len..self.len + b.len()) {
            Some(dst) if !self.overflow => {
                dst.copy_from_slice(b);
                self.len += b.len();
            }
            _ => self.overflow = true,
        }
    }

    fn key(&mut self, key: &str) {
        if self.fields > 0 {
            self.raw(",");
        }
        self.fields += 1;
        self.string(key);
        self.raw(":");
    }

    /// A JSON string literal: `"` and `\` escaped, control characters as `\n`, `\t`, ... or `\u00XX`.
    fn string(&mut self, s: &str) {
        self.raw("\"");
        let mut start = 0;
        for (i, c) in s.char_indices() {
            let escape: Option<&str> = match c {
                '"' => Some("\\\""),
                '\\' => Some("\\\\"),
                '\n' => Some("\\n"),
                '\r' => Some("\\r"),
                '\t' => Some("\\t"),
                '\u{8}' => Some("\\b"),
                '\u{c}' => Some("\\f"),
                c if (c as u32) < 0x20 => Some(""),
                _ => None,
            };
            if let Some(esc) = escape {
                self.raw(&s[start..i]);
                if esc.is_empty() {
                    let mut hex = HexEscape::default();
                    let _ = write!(hex, "\\u{:04x}", c as u32);
                    self.bytes(&hex.buf[..hex.len]);
                } else {
                    self.raw(esc);
                }
                start = i + c.len_utf8();
            }
        }
        self.raw(&s[start..]);
        self.raw("\"");
    }

    pub fn str_field(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        self.string(value);
        self
    }

    pub fn bool_field(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key);
        self.raw(if value { "true" } else { "false" });
        self
    }

    pub fn u64_field(&mut self, key: &str, value: u64) -> &mut Self {
        self.key(key);
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut v = value;
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.bytes(&digits[i..]);
        self
    }

    /// Close the object; the length written, or `None` when the buffer was too small.
    pub fn finish(mut self) -> Option<usize> {
        self.raw("}");
        (!self.overflow).then_some(self.len)
    }
}

#[derive(Default)]
struct HexEscape {
    buf: [u8; 6],
    len: usize,
}

impl core::fmt::Write for HexEscape {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let dst = self
            .buf
            .get_mut(self.len..self.len + s.len())
            .ok_or(core::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len += s.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(f: impl FnOnce(&mut JsonObject)) -> String {
        let mut buf = [0u8; 256];
        let mut o = JsonObject::new(&mut buf);
        f(&mut o);
        let n = o.finish().unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn escapes_strings() {
        let s = build(|o| {
            o.str_field("path", "a\"b\\c\nd\te\u{1}f\u{7f}é\u{8}\u{c}\r");
        });
        assert_eq!(
            s,
            "{\"path\":\"a\\\"b\\\\c\\nd\\te\\u0001f\u{7f}é\\b\\f\\r\"}"
        );
    }

    #[test]
    fn writes_all_field_kinds() {
        let s = build(|o| {
            o.str_field("host", "h")
                .u64_field("port", 443)
                .u64_field("zero", 0)
                .bool_field("r", true);
            o.bool_field("q", false).u64_field("max", u64::MAX);
        });
        assert_eq!(
            s,
            r#"{"host":"h","port":443,"zero":0,"r":true,"q":false,"max":18446744073709551615}"#
        );
        assert_eq!(build(|_| {}), "{}");
    }

    #[test]
    fn reports_overflow_without_writing_past_the_buffer() {
        let mut buf = [0u8; 12];
        let mut o = JsonObject::new(&mut buf[..10]);
        o.str_field("path", "/a/long/path");
        assert_eq!(o.finish(), None);
        assert_eq!(&buf[10..], &[0, 0]);
        let mut exact = [0u8; 11];
        let mut o = JsonObject::new(&mut exact);
        o.str_field("a", "bc");
        assert_eq!(o.finish(), Some(10));
    }
}
