//! Labelled evaluation data: CSV (RFC 4180 quoting) or JSON Lines, to (text, harmful) rows.

use crate::json::{self, Value};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// Parse CSV into records of fields: quoted fields may hold commas, newlines and `""`.
pub fn parse_csv(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    let mut quoted_start = None;
    let mut at_field_start = true;
    while let Some(c) = chars.next() {
        if let Some(start) = quoted_start {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => {
                    quoted_start = None;
                    if !matches!(chars.peek(), None | Some(',') | Some('\n') | Some('\r')) {
                        return Err(format!("CSV line {line}: text after a closing quote (field opened on line {start})"));
                    }
                }
                c => {
                    if c == '\n' {
                        line += 1;
                    }
                    field.push(c);
                }
            }
            continue;
        }
        match c {
            '"' if at_field_start => {
                quoted_start = Some(line);
                at_field_start = false;
            }
            ',' => {
                record.push(core::mem::take(&mut field));
                at_field_start = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                record.push(core::mem::take(&mut field));
                records.push(core::mem::take(&mut record));
                at_field_start = true;
                line += 1;
            }
            c => {
                field.push(c);
                at_field_start = false;
            }
        }
    }
    if let Some(start) = quoted_start {
        return Err(format!(
            "CSV: quoted field opened on line {start} is never closed"
        ));
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    Ok(records)
}

/// Which column is the text and how a row's label reads.
#[derive(Debug, Clone)]
pub struct Columns {
    pub text: String,
    /// `None`: every row is harmful (HarmBench).
    pub label: Option<String>,
    /// The label value meaning harmful.
    pub positive: String,
}

/// Rows of (text, harmful) from CSV with a header line.
pub fn rows_from_csv(text: &str, cols: &Columns) -> Result<Vec<(String, bool)>, String> {
    let records = parse_csv(text)?;
    let (header, body) = records.split_first().ok_or("empty CSV")?;
    let find = |name: &str| {
        header
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| format!("no column {name:?} (columns: {})", header.join(", ")))
    };
    let ti = find(&cols.text)?;
    let li = cols.label.as_deref().map(find).transpose()?;
    let mut rows = Vec::new();
    for (n, r) in body.iter().enumerate() {
        if r.len() == 1 && r[0].is_empty() {
            continue;
        }
        let get = |i: usize| {
            r.get(i).ok_or_else(|| {
                format!(
                    "CSV record {}: {} fields, header has {}",
                    n + 2,
                    r.len(),
                    header.len()
                )
            })
        };
        let harmful = match li {
            Some(i) => get(i)?.trim() == cols.positive,
            None => true,
        };
        rows.push((get(ti)?.clone(), harmful));
    }
    Ok(rows)
}

/// Rows of (text, harmful) from JSON Lines (one object per line).
pub fn rows_from_jsonl(text: &str, cols: &Columns) -> Result<Vec<(String, bool)>, String> {
    let mut rows = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v = json::parse(line).map_err(|e| format!("JSONL line {}: {e}", n + 1))?;
        let t = v
            .get(&cols.text)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("JSONL line {}: no string {:?}", n + 1, cols.text))?;
        let harmful = match &cols.label {
            None => true,
            Some(l) => match v.get(l) {
                Some(Value::String(s)) => *s == cols.positive,
                Some(Value::Bool(b)) => (*b).to_string() == cols.positive,
                Some(Value::Number(x)) => {
                    json::parse(&cols.positive).ok().and_then(|p| p.as_f64()) == Some(*x)
                }
                _ => return Err(format!("JSONL line {}: no label {l:?}", n + 1)),
            },
        };
        rows.push((t.to_string(), harmful));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4180_quoting() {
        let r =
            parse_csv("a,b,c\r\n\"x, y\",\"he said \"\"hi\"\"\",\"two\nlines\"\n,,\nlast,row,end")
                .unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(r[1], ["x, y", "he said \"hi\"", "two\nlines"]);
        assert_eq!(r[2], ["", "", ""]);
        assert_eq!(r[3], ["last", "row", "end"]);
        assert!(parse_csv("a\n\"open").unwrap_err().contains("never closed"));
        assert!(parse_csv("\"a\"b,c\n")
            .unwrap_err()
            .contains("after a closing quote"));
    }

    #[test]
    fn csv_rows_with_and_without_labels() {
        let text = "id,prompt,label\n1,\"How do I kill, a process?\",safe\n2,make a bomb,unsafe\n";
        let cols = Columns {
            text: "prompt".into(),
            label: Some("label".into()),
            positive: "unsafe".into(),
        };
        let rows = rows_from_csv(text, &cols).unwrap();
        assert_eq!(
            rows,
            [
                ("How do I kill, a process?".to_string(), false),
                ("make a bomb".to_string(), true)
            ]
        );
        let all = Columns {
            text: "prompt".into(),
            label: None,
            positive: String::new(),
        };
        assert!(rows_from_csv(text, &all).unwrap().iter().all(|r| r.1));
        let missing = Columns {
            text: "Behavior".into(),
            label: None,
            positive: String::new(),
        };
        assert!(rows_from_csv(text, &missing)
            .unwrap_err()
            .contains("no column \"Behavior\""));
    }

    #[test]
    fn jsonl_rows() {
        let text = "{\"t\":\"a\",\"y\":1}\n\n{\"t\":\"b\",\"y\":0}\n";
        let cols = Columns {
            text: "t".into(),
            label: Some("y".into()),
            positive: "1".into(),
        };
        assert_eq!(
            rows_from_jsonl(text, &cols).unwrap(),
            [("a".to_string(), true), ("b".to_string(), false)]
        );
        assert!(rows_from_jsonl("{\"t\":1}", &cols).is_err());
    }
}
