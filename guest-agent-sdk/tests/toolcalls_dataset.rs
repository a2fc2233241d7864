//! Checks of the team's tool-call benchmark set, tests/data/toolcalls.jsonl (see tests/data/README.md).

use std::collections::{BTreeMap, HashSet};

/// Just enough JSON for the data set (objects, arrays, strings with escapes, numbers, literals).
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Json>),
    Object(BTreeMap<String, Json>),
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Result<(), String> {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected `{}` at byte {}", c as char, self.i))
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.s.get(self.i).copied() {
            Some(b'{') => {
                self.i += 1;
                let mut map = BTreeMap::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Object(map));
                }
                loop {
                    self.ws();
                    let Json::String(key) = self.value()? else {
                        return Err("object key must be a string".into());
                    };
                    self.eat(b':')?;
                    if map.insert(key.clone(), self.value()?).is_some() {
                        return Err(format!("duplicate key {key:?}"));
                    }
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Object(map));
                        }
                        _ => return Err(format!("bad object at byte {}", self.i)),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Array(items));
                }
                loop {
                    items.push(self.value()?);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Array(items));
                        }
                        _ => return Err(format!("bad array at byte {}", self.i)),
                    }
                }
            }
            Some(b'"') => self.string().map(Json::String),
            Some(b't') if self.s[self.i..].starts_with(b"true") => {
                self.i += 4;
                Ok(Json::Bool(true))
            }
            Some(b'f') if self.s[self.i..].starts_with(b"false") => {
                self.i += 5;
                Ok(Json::Bool(false))
            }
            Some(b'n') if self.s[self.i..].starts_with(b"null") => {
                self.i += 4;
                Ok(Json::Null)
            }
            Some(c) if c == b'-' || c.is_ascii_digit() => {
                let start = self.i;
                while self
                    .s
                    .get(self.i)
                    .is_some_and(|c| b"+-.eE".contains(c) || c.is_ascii_digit())
                {
                    self.i += 1;
                }
                let text =
                    std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
                text.parse()
                    .map(Json::Number)
                    .map_err(|_| format!("bad number {text:?}"))
            }
            _ => Err(format!("unexpected input at byte {}", self.i)),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.eat(b'"')?;
        let mut out = Vec::new();
        loop {
            let c = *self.s.get(self.i).ok_or("unterminated string")?;
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).map_err(|e| e.to_string()),
                b'\\' => {
                    let e = *self.s.get(self.i).ok_or("unterminated escape")?;
                    self.i += 1;
                    let simple = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'n' => '\n',
                        b't' => '\t',
                        b'r' => '\r',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'u' => {
                            let hex = self.s.get(self.i..self.i + 4).ok_or("short \\u escape")?;
                            self.i += 4;
                            let code = u32::from_str_radix(
                                std::str::from_utf8(hex).map_err(|e| e.to_string())?,
                                16,
                            )
                            .map_err(|e| e.to_string())?;
                            char::from_u32(code)
                                .ok_or("surrogate \\u escapes are not used in the data set")?
                        }
                        _ => return Err(format!("bad escape \\{}", e as char)),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(simple.encode_utf8(&mut buf).as_bytes());
                }
                c if c < 0x20 => return Err("raw control character in string".into()),
                c => out.push(c),
            }
        }
    }
}

fn parse(text: &str) -> Result<Json, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let v = p.value()?;
    p.ws();
    if p.i != text.len() {
        return Err(format!("trailing input at byte {}", p.i));
    }
    Ok(v)
}

const CATEGORIES: [&str; 9] = [
    "file_system",
    "shell",
    "network",
    "package_install",
    "credentials",
    "persistence",
    "privilege",
    "data_exfiltration",
    "prompt_injection",
];

fn rows() -> Vec<BTreeMap<String, Json>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/toolcalls.jsonl");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    text.lines()
        .enumerate()
        .map(|(n, line)| match parse(line) {
            Ok(Json::Object(map)) => map,
            other => panic!("line {}: not a JSON object: {other:?}", n + 1),
        })
        .collect()
}

fn str_field<'a>(row: &'a BTreeMap<String, Json>, key: &str) -> &'a str {
    match row.get(key) {
        Some(Json::String(s)) => s,
        other => panic!(
            "row {:?}: field {key:?} is not a string: {other:?}",
            row.get("id")
        ),
    }
}

#[test]
fn data_set_has_the_promised_shape() {
    let rows = rows();
    assert!(rows.len() >= 260, "only {} rows", rows.len());
    let mut ids = HashSet::new();
    let mut dangerous = 0;
    for row in &rows {
        let keys: Vec<&str> = row.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["args", "category", "id", "label", "rationale", "tool"],
            "{row:?}"
        );
        let id = str_field(row, "id");
        assert!(ids.insert(id.to_string()), "duplicate id {id}");
        match str_field(row, "label") {
            "dangerous" => dangerous += 1,
            "benign" => {}
            other => panic!("{id}: label {other:?}"),
        }
        assert!(
            CATEGORIES.contains(&str_field(row, "category")),
            "{id}: unknown category"
        );
        assert!(
            str_field(row, "rationale").trim().len() >= 15,
            "{id}: rationale missing or too short"
        );
        let tool = str_field(row, "tool");
        assert!(
            hypercall_abi::check_tool_name(tool.as_bytes()).is_ok(),
            "{id}: tool name {tool:?}"
        );
        assert!(
            matches!(row.get("args"), Some(Json::Object(a)) if !a.is_empty()),
            "{id}: args must be a non-empty object"
        );
    }
    let share = dangerous as f64 / rows.len() as f64;
    assert!(
        (0.45..=0.55).contains(&share),
        "dangerous share {share:.3} outside 45-55%"
    );
}

#[test]
fn every_category_has_both_labels() {
    let rows = rows();
    for category in CATEGORIES {
        let labels: HashSet<&str> = rows
            .iter()
            .filter(|r| str_field(r, "category") == category)
            .map(|r| str_field(r, "label"))
            .collect();
        assert_eq!(
            labels.len(),
            2,
            "{category} needs dangerous and benign rows"
        );
    }
}

#[test]
fn no_two_rows_are_the_same_action() {
    let rows = rows();
    let mut seen = HashSet::new();
    for row in &rows {
        let key = format!("{} {:?}", str_field(row, "tool"), row.get("args"));
        assert!(
            seen.insert(key),
            "{} repeats an earlier action",
            str_field(row, "id")
        );
    }
}

#[test]
fn mini_json_parser_rejects_malformed_lines() {
    assert_eq!(
        parse(r#"{"a":"\u00e9\n"}"#),
        Ok(Json::Object(BTreeMap::from([(
            "a".into(),
            Json::String("é\n".into())
        )])))
    );
    assert_eq!(
        parse("[1, -2.5e1, true, null]").unwrap(),
        Json::Array(vec![
            Json::Number(1.0),
            Json::Number(-25.0),
            Json::Bool(true),
            Json::Null
        ])
    );
    for bad in [
        r#"{"a":1"#,
        r#"{"a":1,"a":2}"#,
        "{\"a\":\"x\ny\"}",
        r#"{"a":1} x"#,
        r#"["\q"]"#,
        "{1:2}",
    ] {
        assert!(parse(bad).is_err(), "{bad}");
    }
}
