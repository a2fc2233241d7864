//! A TOML subset parser: `[tables]`, `[[arrays of tables]]` (dotted names allowed), `key = value`
//! with basic and literal strings, integers, floats, booleans and (multi-line) arrays, `#` comments.
//! Errors carry the 1-based line number and a reason.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Toml {
    String(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
    Array(Vec<Toml>),
    Table(BTreeMap<String, Toml>),
}

pub type Table = BTreeMap<String, Toml>;

#[derive(Debug, Clone, PartialEq)]
pub struct TomlError {
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for TomlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl Toml {
    pub fn type_name(&self) -> &'static str {
        match self {
            Toml::String(_) => "string",
            Toml::Integer(_) => "integer",
            Toml::Float(_) => "float",
            Toml::Bool(_) => "boolean",
            Toml::Array(_) => "array",
            Toml::Table(_) => "table",
        }
    }
}

/// Parse a document into its root table.
pub fn parse(text: &str) -> Result<Table, TomlError> {
    parse_document(text).map(|d| d.root)
}

/// A parsed document and the line where each key and table was defined, by path
/// (`tools.read_file.args[0].type`), so later checks can name a line too.
#[derive(Debug, Clone)]
pub struct Document {
    pub root: Table,
    pub lines: BTreeMap<String, usize>,
}

impl Document {
    /// The line of `path`, or of its nearest defined parent, or 0.
    pub fn line_of(&self, path: &str) -> usize {
        let mut p = path;
        loop {
            if let Some(&l) = self.lines.get(p) {
                return l;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return 0,
            }
        }
    }
}

/// The current table's path with array-of-table indices resolved.
fn resolved_path(root: &Table, path: &[String]) -> String {
    let mut out = String::new();
    let mut t = Some(root);
    for name in path {
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(name);
        t = match t.and_then(|t| t.get(name)) {
            Some(Toml::Table(inner)) => Some(inner),
            Some(Toml::Array(items)) => {
                out.push_str(&format!("[{}]", items.len().saturating_sub(1)));
                match items.last() {
                    Some(Toml::Table(inner)) => Some(inner),
                    _ => None,
                }
            }
            _ => None,
        };
    }
    out
}

/// Parse a document, keeping the line of every key and table.
pub fn parse_document(text: &str) -> Result<Document, TomlError> {
    let mut lines = BTreeMap::new();
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
        line: 1,
    };
    let mut root = Table::new();
    let mut current: Vec<String> = Vec::new();
    loop {
        p.skip_blank_lines();
        let Some(c) = p.peek() else { break };
        let line = p.line;
        if c == b'[' {
            let array = p.s.get(p.i + 1) == Some(&b'[');
            p.i += if array { 2 } else { 1 };
            let path = p.dotted_name()?;
            p.inline_ws();
            let close = if array { "]]" } else { "]" };
            if !p.s[p.i..].starts_with(close.as_bytes()) {
                return Err(p.error(format!("expected {close} after table name")));
            }
            p.i += close.len();
            p.end_of_line()?;
            open_table(&mut root, &path, array).map_err(|reason| TomlError { line, reason })?;
            lines.insert(resolved_path(&root, &path), line);
            current = path;
        } else {
            let key = p.key()?;
            p.inline_ws();
            if p.peek() != Some(b'=') {
                return Err(p.error(format!("expected = after key {key:?}")));
            }
            p.i += 1;
            p.inline_ws();
            let value = p.value(0)?;
            p.end_of_line()?;
            let table =
                table_at(&mut root, &current).map_err(|reason| TomlError { line, reason })?;
            if table.contains_key(&key) {
                return Err(TomlError {
                    line,
                    reason: format!("duplicate key {key:?}"),
                });
            }
            table.insert(key.clone(), value);
            let base = resolved_path(&root, &current);
            lines.insert(
                if base.is_empty() {
                    key
                } else {
                    format!("{base}.{key}")
                },
                line,
            );
        }
    }
    Ok(Document { root, lines })
}

fn open_table(root: &mut Table, path: &[String], array: bool) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty table name")?;
    let parent = table_at(root, parents)?;
    if array {
        match parent
            .entry(last.clone())
            .or_insert_with(|| Toml::Array(Vec::new()))
        {
            Toml::Array(items) if items.iter().all(|t| matches!(t, Toml::Table(_))) => {
                items.push(Toml::Table(Table::new()));
                Ok(())
            }
            _ => Err(format!(
                "{last:?} is already defined and is not an array of tables"
            )),
        }
    } else {
        match parent.get(last) {
            None => {
                parent.insert(last.clone(), Toml::Table(Table::new()));
                Ok(())
            }
            Some(Toml::Table(t)) if t.is_empty() => Err(format!("table [{last}] defined twice")),
            Some(_) => Err(format!(
                "table [{last}] defined twice or clashes with a key"
            )),
        }
    }
}

/// The table at `path`, following the last element of arrays of tables.
fn table_at<'t>(root: &'t mut Table, path: &[String]) -> Result<&'t mut Table, String> {
    let mut t = root;
    for name in path {
        let entry = t
            .entry(name.clone())
            .or_insert_with(|| Toml::Table(Table::new()));
        t = match entry {
            Toml::Table(inner) => inner,
            Toml::Array(items) => match items.last_mut() {
                Some(Toml::Table(inner)) => inner,
                _ => return Err(format!("{name:?} is not a table")),
            },
            _ => return Err(format!("{name:?} is not a table")),
        };
    }
    Ok(t)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    line: usize,
}

impl Parser<'_> {
    fn error(&self, reason: String) -> TomlError {
        TomlError {
            line: self.line,
            reason,
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn inline_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }
    fn comment(&mut self) {
        if self.peek() == Some(b'#') {
            while !matches!(self.peek(), None | Some(b'\n')) {
                self.i += 1;
            }
        }
    }
    /// Whitespace, comments and newlines (also inside arrays).
    fn skip_blank_lines(&mut self) {
        loop {
            self.inline_ws();
            self.comment();
            match self.peek() {
                Some(b'\n') => {
                    self.i += 1;
                    self.line += 1;
                }
                Some(b'\r') if self.s.get(self.i + 1) == Some(&b'\n') => self.i += 1,
                _ => return,
            }
        }
    }
    fn end_of_line(&mut self) -> Result<(), TomlError> {
        self.inline_ws();
        self.comment();
        if self.peek() == Some(b'\r') {
            self.i += 1;
        }
        match self.peek() {
            None => Ok(()),
            Some(b'\n') => {
                self.i += 1;
                self.line += 1;
                Ok(())
            }
            Some(c) => Err(self.error(format!("unexpected {:?} after value", c as char))),
        }
    }
    fn key(&mut self) -> Result<String, TomlError> {
        match self.peek() {
            Some(b'"') => self.basic_string(),
            Some(b'\'') => self.literal_string(),
            _ => {
                let start = self.i;
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
                {
                    self.i += 1;
                }
                if start == self.i {
                    return Err(self.error("expected a key".to_string()));
                }
                Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
            }
        }
    }
    fn dotted_name(&mut self) -> Result<Vec<String>, TomlError> {
        let mut parts = Vec::new();
        loop {
            self.inline_ws();
            parts.push(self.key()?);
            self.inline_ws();
            if self.peek() == Some(b'.') {
                self.i += 1;
            } else {
                return Ok(parts);
            }
        }
    }
    fn value(&mut self, depth: usize) -> Result<Toml, TomlError> {
        if depth > 16 {
            return Err(self.error("arrays nested too deep".to_string()));
        }
        match self.peek() {
            Some(b'"') => self.basic_string().map(Toml::String),
            Some(b'\'') => self.literal_string().map(Toml::String),
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_blank_lines();
                    if self.peek() == Some(b']') {
                        self.i += 1;
                        return Ok(Toml::Array(items));
                    }
                    items.push(self.value(depth + 1)?);
                    self.skip_blank_lines();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Toml::Array(items));
                        }
                        _ => return Err(self.error("expected , or ] in array".to_string())),
                    }
                }
            }
            Some(b'{') => {
                Err(self.error("inline tables are not supported; use a [table]".to_string()))
            }
            Some(b't') if self.s[self.i..].starts_with(b"true") => {
                self.i += 4;
                Ok(Toml::Bool(true))
            }
            Some(b'f') if self.s[self.i..].starts_with(b"false") => {
                self.i += 5;
                Ok(Toml::Bool(false))
            }
            Some(c) if c == b'-' || c == b'+' || c.is_ascii_digit() => self.number(),
            None => Err(self.error("missing value".to_string())),
            Some(_) => {
                Err(self.error("expected a value (string, number, boolean or array)".to_string()))
            }
        }
    }
    fn number(&mut self) -> Result<Toml, TomlError> {
        let start = self.i;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.' | b'_'))
        {
            self.i += 1;
        }
        let text: String = String::from_utf8_lossy(&self.s[start..self.i])
            .chars()
            .filter(|&c| c != '_')
            .collect();
        if let Ok(n) = text.parse::<i64>() {
            return Ok(Toml::Integer(n));
        }
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() && text.bytes().any(|b| b.is_ascii_digit()) => {
                Ok(Toml::Float(f))
            }
            _ => Err(self.error(format!("bad number {text:?}"))),
        }
    }
    fn literal_string(&mut self) -> Result<String, TomlError> {
        self.i += 1;
        let start = self.i;
        while !matches!(self.peek(), None | Some(b'\'') | Some(b'\n')) {
            self.i += 1;
        }
        if self.peek() != Some(b'\'') {
            return Err(self.error("unterminated string".to_string()));
        }
        let s = core::str::from_utf8(&self.s[start..self.i])
            .map_err(|_| self.error("invalid UTF-8".to_string()))?;
        self.i += 1;
        Ok(s.to_string())
    }
    fn basic_string(&mut self) -> Result<String, TomlError> {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\n') => return Err(self.error("unterminated string".to_string())),
                Some(b'"') => {
                    self.i += 1;
                    return String::from_utf8(out)
                        .map_err(|_| self.error("invalid UTF-8".to_string()));
                }
                Some(b'\\') => {
                    let esc = self.s.get(self.i + 1).copied();
                    self.i += 2;
                    let c = match esc {
                        Some(b'n') => '\n',
                        Some(b't') => '\t',
                        Some(b'r') => '\r',
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'u') => {
                            let hex = self
                                .s
                                .get(self.i..self.i + 4)
                                .and_then(|h| core::str::from_utf8(h).ok());
                            let code = hex
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .and_then(char::from_u32);
                            self.i += 4;
                            code.ok_or_else(|| self.error("bad \\u escape".to_string()))?
                        }
                        _ => return Err(self.error("unknown escape in string".to_string())),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_subset() {
        let doc = "# policy\ntitle = \"t\\\"x\" # trailing\n[gate]\nalpha = 0.5\nmax = 1_000\non = true\n\
                   [tools.read_file]\nrequired = ['path', \"mode\",\n  ]\n[[rules]]\nid = 1\n[[rules]]\nid = -2\n\
                   nested = [[1, 2], []]\n";
        let t = parse(doc).unwrap();
        assert_eq!(t["title"], Toml::String("t\"x".into()));
        let Toml::Table(g) = &t["gate"] else { panic!() };
        assert_eq!(
            (g["alpha"].clone(), g["max"].clone(), g["on"].clone()),
            (Toml::Float(0.5), Toml::Integer(1000), Toml::Bool(true))
        );
        let Toml::Table(tools) = &t["tools"] else {
            panic!()
        };
        let Toml::Table(rf) = &tools["read_file"] else {
            panic!()
        };
        assert_eq!(
            rf["required"],
            Toml::Array(alloc::vec![
                Toml::String("path".into()),
                Toml::String("mode".into())
            ])
        );
        let Toml::Array(rules) = &t["rules"] else {
            panic!()
        };
        assert_eq!(rules.len(), 2);
        let Toml::Table(r2) = &rules[1] else { panic!() };
        assert_eq!(r2["id"], Toml::Integer(-2));
    }

    #[test]
    fn document_remembers_lines() {
        let d = parse_document("a = 1\n[[r]]\nx = 1\n[[r]]\nx = 2\n[t.u]\ny = 3\n").unwrap();
        assert_eq!(d.line_of("a"), 1);
        assert_eq!(d.line_of("r[1].x"), 5);
        assert_eq!(d.line_of("r[1]"), 4);
        assert_eq!(d.line_of("t.u.y"), 7);
        assert_eq!(d.line_of("t.u.missing"), 6);
    }

    #[test]
    fn errors_carry_line_and_reason() {
        let cases = [
            ("a = 1\nb = \n", 2, "expected a value"),
            ("a = 1\n\n[t]\nx = \"open\n", 4, "unterminated"),
            ("a = 1\na = 2\n", 2, "duplicate key"),
            ("[t]\n[t]\n", 2, "defined twice"),
            ("x = 1 2\n", 1, "after value"),
            ("x = {a = 1}\n", 1, "inline tables"),
            ("a = 1\n[[a]]\n", 2, "not an array of tables"),
            ("x = [1,\n2\n3]\n", 3, "expected , or ]"),
            ("x = 1.2.3\n", 1, "bad number"),
            ("= 3\n", 1, "expected a key"),
        ];
        for (doc, line, reason) in cases {
            let e = parse(doc).unwrap_err();
            assert_eq!(e.line, line, "{doc:?}: {e}");
            assert!(e.reason.contains(reason), "{doc:?}: {e}");
        }
    }
}
