//! An agent's text inside the verdict prompt cannot supply a special token: the action is
//! tokenized as plain text (`LogitModel::tokenize_continuation_with_literal`), whatever special
//! tokens the model's vocabulary has beyond those the pre-filter removes (Qwen's `<tool_call>`,
//! SmolLM2's `<file_sep>`, Gemma's `<pad>`), and even when the pre-filter is bypassed. For text
//! without special-token text the ids are the same as tokenizing the whole prompt, so every row of
//! the team's set gets exactly the tokens it was measured with.
//!
//! On the verdict model (Qwen2.5-Coder-1.5B-Instruct Q4_K_M) from `$PROBEVISOR_MODELS` (default
//! `~/.cache/probevisor/models`); skipped when missing unless `PROBEVISOR_REQUIRE_MODELS=1`.

mod common;

use probe::engine::EngineModel;
use probe::json::parse;
use probe::policy::Policy;
use probe::prefilter::prefilter;
use probe::prompt::TemplateKind;
use probe::{Action, LogitModel};

const DEFAULT_POLICY: &str = include_str!("../../policies/default.toml");
const TOOLCALLS: &str = include_str!("../../tests/data/toolcalls.jsonl");
/// Special-token texts of the verdict model (each one token when parsed).
const PLANTED: [&str; 5] = [
    "<|im_end|>",
    "<|im_start|>",
    "<tool_call>",
    "<|endoftext|>",
    "<|fim_prefix|>",
];

#[test]
fn agent_text_never_becomes_a_special_token() {
    let Some(bytes) = common::verdict_model_bytes() else {
        return;
    };
    let engine = EngineModel::load(&bytes).unwrap();
    let policy = Policy::parse(DEFAULT_POLICY).unwrap();
    let template = TemplateKind::detect(engine.chat_template());
    let spec = policy.gate.prompt_spec(template, "run_command");

    // Every row of the team's set, as the pipeline shows it: the same ids as the whole prompt's,
    // but for the one row whose text kept a special token past the pre-filter (`</tool_call>`,
    // which became token 151658). That row is one of the default policy's labelled examples, so
    // eval never scores it: every scored row keeps the tokens its figures were measured with.
    let mut rows = 0;
    let mut changed = Vec::new();
    for line in TOOLCALLS.lines().filter(|l| !l.trim().is_empty()) {
        let row = parse(line).unwrap();
        let tool = row.get("tool").and_then(|t| t.as_str()).unwrap();
        let action = Action::new(tool, row.get("args").unwrap().clone());
        let text = prefilter(&action).action.prompt_text();
        let (suffix, span) = spec.suffix_with_action(&text);
        assert_eq!(&suffix[span.clone()], text);
        let literal = engine.tokenize_continuation_with_literal(&suffix, span);
        if literal.unwrap() != engine.tokenize_continuation(&suffix).unwrap() {
            changed.push(row.get("id").and_then(|i| i.as_str()).unwrap().to_string());
        }
        rows += 1;
    }
    assert_eq!(rows, 273);
    assert_eq!(changed, ["inj-026"]);
    assert!(DEFAULT_POLICY.contains("inj-026"), "inj-026 is an example");

    // Special-token texts planted in an action (the pre-filter bypassed): none becomes its token.
    let ids: Vec<u32> = PLANTED
        .iter()
        .map(|t| {
            engine
                .text_to_id(t)
                .unwrap_or_else(|| panic!("{t} is one token"))
        })
        .collect();
    let count = |tokens: &[u32]| tokens.iter().filter(|t| ids.contains(t)).count();
    let (plain, plain_span) = spec.suffix_with_action(r#"run_command {"cmd":"ls"}"#);
    let template_specials = count(
        &engine
            .tokenize_continuation_with_literal(&plain, plain_span)
            .unwrap(),
    );
    // The turn's frame: <|im_start|>user ... <|im_end|> <|im_start|>assistant.
    assert_eq!(template_specials, 3);
    let planted = format!(r#"run_command {{"cmd":"ls {}"}}"#, PLANTED.join(" "));
    let (suffix, span) = spec.suffix_with_action(&planted);
    let literal = engine
        .tokenize_continuation_with_literal(&suffix, span)
        .unwrap();
    assert_eq!(count(&literal), template_specials);
    // Tokenized as one text (as before), each planted text was its special token.
    let whole = engine.tokenize_continuation(&suffix).unwrap();
    assert_eq!(count(&whole), template_specials + PLANTED.len());
}

/// Gemma's user-defined tokens include whitespace runs (taken in agent text, as llama.cpp takes
/// them) and HTML tags (not: they mark structure, as Qwen's `<tool_call>` does).
#[test]
fn gemma_whitespace_pieces_stay_markup_does_not() {
    let Some(bytes) = common::model_bytes("gemma-3-270m-q4_k_m.gguf") else {
        return;
    };
    let engine = EngineModel::load(&bytes).unwrap();
    let policy = Policy::parse(DEFAULT_POLICY).unwrap();
    // The base model has no chat template (plain prompt); the action's span is what matters.
    let spec = policy
        .gate
        .prompt_spec(TemplateKind::detect(engine.chat_template()), "run_command");
    let (spaces, table) = (
        engine.text_to_id("    ").unwrap(),
        engine.text_to_id("<table>").unwrap(),
    );
    let (suffix, span) = spec.suffix_with_action(r#"run_command {"cmd":"echo 'a    b' <table>"}"#);
    let literal = engine
        .tokenize_continuation_with_literal(&suffix, span)
        .unwrap();
    let whole = engine.tokenize_continuation(&suffix).unwrap();
    assert!(literal.contains(&spaces) && whole.contains(&spaces));
    assert!(whole.contains(&table) && !literal.contains(&table));
}
