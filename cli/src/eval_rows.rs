//! The rows `probevisor eval` scores: loaded as the flags say, without the policy's own labelled
//! examples, and which prompt (tool call or free text) judges them.

use crate::args::Args;
use probe::action::TEXT_TOOL;
use probe::dataset::Columns;
use probe::eval_data::{harmbench_rows, text_rows, toolcall_rows, DataFormat, EvalRow};
use probe::policy::Policy;
use probe::prompt::Example;

/// Load the rows of `dataset` as the flags say.
pub(crate) fn load_rows(args: &Args, dataset: &str) -> Result<Vec<EvalRow>, String> {
    let text =
        std::fs::read_to_string(dataset).map_err(|e| format!("cannot read '{dataset}': {e}"))?;
    let format = match args.get("--format").unwrap_or("auto") {
        "auto" => DataFormat::detect(dataset, &text),
        "toolcalls" => DataFormat::ToolCalls,
        "harmbench" => DataFormat::HarmBench,
        "text" => DataFormat::Text,
        o => {
            return Err(format!(
                "--format: '{o}' (auto, toolcalls, harmbench, text)"
            ))
        }
    };
    let mut rows = match format {
        DataFormat::ToolCalls => {
            toolcall_rows(&text, args.get("--positive").unwrap_or("dangerous"))?
        }
        DataFormat::HarmBench => {
            let cats: Vec<&str> = args
                .get("--categories")
                .unwrap_or("standard,contextual")
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty() && *c != "all")
                .collect();
            harmbench_rows(&text, &cats)?
        }
        DataFormat::Text => {
            let cols = Columns {
                text: args.get("--text-col").unwrap_or("prompt").to_string(),
                label: Some(args.get("--label-col").unwrap_or("label").to_string())
                    .filter(|l| !l.is_empty()),
                positive: args.get("--positive").unwrap_or("unsafe").to_string(),
            };
            text_rows(&text, &cols, dataset.ends_with(".jsonl"))?
        }
    };
    rows.truncate(args.number("--limit", usize::MAX)?);
    if rows.is_empty() {
        return Err(format!("'{dataset}' has no rows"));
    }
    Ok(rows)
}

/// The tool whose prompt judges `rows`: free text when every row is free text (XSTest, HarmBench,
/// the team's chat set), so that the policy's `[gate.text]` prompt applies; a tool call otherwise.
pub(crate) fn prompt_tool(rows: &[EvalRow]) -> &'static str {
    match !rows.is_empty() && rows.iter().all(|r| r.action.tool == TEXT_TOOL) {
        true => TEXT_TOOL,
        false => "",
    }
}

/// The rows `eval` scores: without the policy's labelled examples of the prompt that judges them
/// (when `policy_examples`) and without the injection check's examples (tool calls only): a row
/// shown to the model as an example would be judged by its own answer.
pub(crate) fn scored_rows(
    rows: Vec<EvalRow>,
    policy: &Policy,
    policy_examples: bool,
) -> Vec<EvalRow> {
    let tool = prompt_tool(&rows);
    let rows = match policy_examples {
        true => without_example_rows(rows, policy.gate.examples_for(tool)),
        false => rows,
    };
    match policy.gate.injection_for(tool) {
        Some(i) => without_example_rows(rows, &i.examples),
        None => rows,
    }
}

/// The rows whose action is not one of `examples` (compared as the prompt shows them); says how many
/// were left out.
pub(crate) fn without_example_rows(rows: Vec<EvalRow>, examples: &[Example]) -> Vec<EvalRow> {
    let before = rows.len();
    let kept: Vec<EvalRow> = rows
        .into_iter()
        .filter(|r| {
            let text = r.action.prompt_text();
            !examples.iter().any(|e| e.action == text)
        })
        .collect();
    if kept.len() != before {
        eprintln!(
            "eval: {} of {before} rows are the policy's labelled examples and are not scored",
            before - kept.len()
        );
    }
    kept
}

/// The example set that `--examples NAME` names: `policy` (the policy's own, in order), `reversed`
/// (the same, last first) or `none`; `added` (the rows `--add-examples` names) follow the policy's
/// own in the first two. Returns the set and the name the tables show.
pub(crate) fn example_set(
    name: &str,
    own: &[Example],
    added: &[Example],
) -> Result<(Vec<Example>, String), String> {
    let mut set = match name {
        "policy" => own.to_vec(),
        "reversed" => own.iter().rev().cloned().collect(),
        "none" => return Ok((Vec::new(), name.to_string())),
        o => return Err(format!("--examples: '{o}' (policy, reversed, none)")),
    };
    set.extend_from_slice(added);
    let shown = match added.len() {
        0 => name.to_string(),
        n => format!("{name} + {n} rows"),
    };
    Ok((set, shown))
}

/// The dataset's rows named by `ids`, in that order, as labelled examples (the action as the
/// prompt shows it, labelled by the row); an id the dataset lacks, or one named twice, is an error.
pub(crate) fn examples_from_rows(rows: &[EvalRow], ids: &[&str]) -> Result<Vec<Example>, String> {
    let mut out = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        if ids[..i].contains(id) {
            return Err(format!("--add-examples: '{id}' is named twice"));
        }
        let row = rows
            .iter()
            .find(|r| r.id == *id)
            .ok_or_else(|| format!("--add-examples: the dataset has no row '{id}'"))?;
        out.push(Example {
            action: row.action.prompt_text(),
            dangerous: row.harmful,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use probe::action::Action;
    use probe::policy::Policy;

    fn row(json: &str, id: &str) -> EvalRow {
        EvalRow {
            action: Action::from_json(json).unwrap(),
            harmful: false,
            id: id.into(),
        }
    }

    #[test]
    fn example_rows_are_not_scored() {
        let rows = vec![
            row(r#"{"tool":"read_file","args":{"path":"/a"}}"#, "r1"),
            row(r#"{"tool":"read_file","args":{"path":"/b"}}"#, "r2"),
        ];
        let examples = vec![Example {
            action: r#"read_file {"path":"/b"}"#.into(),
            dangerous: false,
        }];
        let kept = without_example_rows(rows, &examples);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].id, "r1");
    }

    #[test]
    fn free_text_rows_take_the_text_prompt() {
        let text = vec![EvalRow {
            action: Action::text("How do I kill a process?"),
            harmful: false,
            id: "t".into(),
        }];
        assert_eq!(prompt_tool(&text), TEXT_TOOL);
        let calls = vec![row(r#"{"tool":"read_file","args":{"path":"/a"}}"#, "r1")];
        assert_eq!(prompt_tool(&calls), "");
        let chat = Policy::parse(include_str!("../../policies/chat-text.toml")).unwrap();
        assert_eq!(chat.gate.examples_for(prompt_tool(&text)).len(), 12);
        let default = Policy::parse(include_str!("../../policies/default.toml")).unwrap();
        assert_eq!(
            default.gate.examples_for(prompt_tool(&text)).len(),
            36,
            "no [gate.text]: the tool-call examples"
        );
        assert_eq!(default.gate.examples_for(prompt_tool(&calls)).len(), 36);
    }

    #[test]
    fn example_sets_reverse_and_extend_the_policy_examples() {
        let ex = |a: &str, d: bool| Example {
            action: a.into(),
            dangerous: d,
        };
        let own = vec![ex("a", false), ex("b", true)];
        let rows = vec![
            row(r#"{"tool":"read_file","args":{"path":"/c"}}"#, "c"),
            EvalRow {
                harmful: true,
                ..row(r#"{"tool":"read_file","args":{"path":"/d"}}"#, "d")
            },
        ];
        let added = examples_from_rows(&rows, &["d", "c"]).unwrap();
        assert_eq!(
            added,
            vec![
                ex(r#"read_file {"path":"/d"}"#, true),
                ex(r#"read_file {"path":"/c"}"#, false)
            ]
        );
        let (set, name) = example_set("reversed", &own, &added).unwrap();
        assert_eq!(name, "reversed + 2 rows");
        let order: Vec<&str> = set.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(
            order,
            [
                "b",
                "a",
                r#"read_file {"path":"/d"}"#,
                r#"read_file {"path":"/c"}"#
            ]
        );
        assert_eq!(
            example_set("policy", &own, &[]).unwrap(),
            (own.clone(), "policy".into())
        );
        assert!(example_set("none", &own, &added).unwrap().0.is_empty());
        assert!(example_set("random", &own, &added).is_err());
        assert!(examples_from_rows(&rows, &["x"])
            .unwrap_err()
            .contains("no row 'x'"));
        assert!(examples_from_rows(&rows, &["c", "c"])
            .unwrap_err()
            .contains("twice"));
        let kept = without_example_rows(rows, &added[..1]);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].id, "c");
    }
}
