//! Evaluation rows as actions: the team's tool-call set (JSON Lines of `{"tool","args","label"}`),
//! HarmBench (behaviours, with the context string of the contextual ones) and plain text sets.

use crate::action::Action;
use crate::dataset::{parse_csv, rows_from_csv, rows_from_jsonl, Columns};
use crate::json::{self, Value};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// One labelled row: the action as the pipeline sees it, and whether it is harmful.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalRow {
    pub action: Action,
    pub harmful: bool,
    /// Where the row came from (its `id` field, or `row N`).
    pub id: String,
}

/// The format of an evaluation file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFormat {
    /// JSON Lines with `tool`, `args` and a `label` of `dangerous` or `benign`.
    ToolCalls,
    /// HarmBench's behaviours CSV: every row harmful; contextual rows carry a context string.
    HarmBench,
    /// CSV or JSON Lines with a text column and a label column ([`Columns`]).
    Text,
}

impl DataFormat {
    /// Guess from the file name and its first line.
    pub fn detect(path: &str, text: &str) -> DataFormat {
        let lower = path.to_ascii_lowercase();
        if lower.contains("harmbench") {
            return DataFormat::HarmBench;
        }
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        if lower.ends_with(".jsonl") {
            if let Ok(v) = json::parse(first) {
                if v.get("tool").is_some() && v.get("args").is_some() {
                    return DataFormat::ToolCalls;
                }
            }
        }
        DataFormat::Text
    }
}

/// Rows of the tool-call set; `positive` is the label value meaning harmful (`dangerous`).
pub fn toolcall_rows(text: &str, positive: &str) -> Result<Vec<EvalRow>, String> {
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v = json::parse(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        let tool = v
            .get("tool")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("line {}: no string \"tool\"", n + 1))?;
        let args = match v.get("args") {
            Some(a @ Value::Object(_)) => a.clone(),
            _ => return Err(format!("line {}: \"args\" is not an object", n + 1)),
        };
        let label = v
            .get("label")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("line {}: no string \"label\"", n + 1))?;
        let id = v
            .get("id")
            .and_then(Value::as_str)
            .map_or_else(|| format!("row {}", n + 1), ToString::to_string);
        rows.push(EvalRow {
            action: Action::new(tool, args),
            harmful: label == positive,
            id,
        });
    }
    Ok(rows)
}

/// HarmBench behaviours whose `FunctionalCategory` is one of `categories` (all when empty). A
/// contextual behaviour is shown with its context first, as HarmBench's own prompts do.
pub fn harmbench_rows(text: &str, categories: &[&str]) -> Result<Vec<EvalRow>, String> {
    let records = parse_csv(text)?;
    let (header, body) = records.split_first().ok_or("empty CSV")?;
    let col = |name: &str| header.iter().position(|h| h.trim() == name);
    let behavior = col("Behavior").ok_or("HarmBench CSV: no Behavior column")?;
    let category = col("FunctionalCategory");
    let context = col("ContextString");
    let id_col = col("BehaviorID");
    let mut rows = Vec::new();
    for (n, r) in body.iter().enumerate() {
        if r.len() == 1 && r[0].is_empty() {
            continue;
        }
        let field = |i: Option<usize>| i.and_then(|i| r.get(i)).map_or("", |s| s.trim());
        let b = r
            .get(behavior)
            .ok_or_else(|| format!("record {}: no Behavior field", n + 2))?;
        let cat = field(category);
        if !categories.is_empty() && !categories.contains(&cat) {
            continue;
        }
        let ctx = field(context);
        let text = if ctx.is_empty() {
            b.clone()
        } else {
            format!("{ctx}\n\n---\n\n{b}")
        };
        let id = field(id_col);
        rows.push(EvalRow {
            action: Action::text(&text),
            harmful: true,
            id: if id.is_empty() {
                format!("record {}", n + 2)
            } else {
                id.to_string()
            },
        });
    }
    Ok(rows)
}

/// Rows of a text set (CSV or JSON Lines by `jsonl`), each as a free-text action.
pub fn text_rows(text: &str, cols: &Columns, jsonl: bool) -> Result<Vec<EvalRow>, String> {
    let pairs = if jsonl {
        rows_from_jsonl(text, cols)?
    } else {
        rows_from_csv(text, cols)?
    };
    Ok(pairs
        .into_iter()
        .enumerate()
        .map(|(i, (t, harmful))| EvalRow {
            action: Action::text(&t),
            harmful,
            id: format!("row {}", i + 1),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toolcall_rows_keep_tool_args_and_label() {
        let text = "{\"id\":\"a-1\",\"tool\":\"read_file\",\"args\":{\"path\":\"/x\"},\"label\":\"benign\"}\n\n\
                    {\"tool\":\"delete_file\",\"args\":{\"path\":\"/\"},\"label\":\"dangerous\"}\n";
        assert_eq!(DataFormat::detect("t.jsonl", text), DataFormat::ToolCalls);
        let rows = toolcall_rows(text, "dangerous").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].id, "a-1");
        assert!(!rows[0].harmful && rows[1].harmful);
        assert_eq!(rows[1].id, "row 3");
        assert_eq!(rows[0].action.prompt_text(), "read_file {\"path\":\"/x\"}");
        assert!(toolcall_rows(
            "{\"tool\":\"x\",\"args\":[],\"label\":\"benign\"}",
            "dangerous"
        )
        .unwrap_err()
        .contains("not an object"));
        assert!(toolcall_rows("{\"tool\":\"x\",\"args\":{}}", "dangerous")
            .unwrap_err()
            .contains("label"));
    }

    #[test]
    fn harmbench_filters_categories_and_prepends_context() {
        let csv = "Behavior,FunctionalCategory,SemanticCategory,Tags,ContextString,BehaviorID\n\
                   Do a,standard,x,,,a_id\n\
                   \"Do b, now\",contextual,x,,\"Some context\nover lines\",b_id\n\
                   Copy c,copyright,x,,,c_id\n";
        assert_eq!(
            DataFormat::detect("harmbench_test.csv", csv),
            DataFormat::HarmBench
        );
        let rows = harmbench_rows(csv, &["standard", "contextual"]).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].action.prompt_text(), "Do a");
        assert_eq!(
            rows[1].action.prompt_text(),
            "Some context\nover lines\n\n---\n\nDo b, now"
        );
        assert_eq!(rows[1].id, "b_id");
        assert!(rows.iter().all(|r| r.harmful));
        assert_eq!(harmbench_rows(csv, &[]).unwrap().len(), 3);
        assert!(harmbench_rows("A,B\n1,2\n", &[]).is_err());
    }

    #[test]
    fn text_rows_from_csv() {
        let cols = Columns {
            text: "prompt".into(),
            label: Some("label".into()),
            positive: "unsafe".into(),
        };
        let rows = text_rows("prompt,label\nhi,safe\nbad,unsafe\n", &cols, false).unwrap();
        assert_eq!(
            DataFormat::detect("x.csv", "prompt,label"),
            DataFormat::Text
        );
        assert_eq!(rows.len(), 2);
        assert!(rows[1].harmful && !rows[0].harmful);
    }
}
