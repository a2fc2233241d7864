//! The generate-and-parse baseline: the same prefix and question, but the model answers in words
//! (greedy, a few tokens) and the answer is parsed; an answer naming neither label counts as harmful
//! (fail closed), and how often that happens is reported.

use crate::eval_report::Generated;
use inference_core::model::LogitsRequest;
use probe::engine::EngineModel;
use probe::prompt::{resolve_labels, PromptSpec};
use probe::LogitModel;
use std::time::Instant;

/// Which label an answer names first: Some(true) = the dangerous word, Some(false) = the safe word.
pub fn parse_answer(answer: &str, dangerous: &str, safe: &str) -> Option<bool> {
    let lower = answer.to_ascii_lowercase();
    let (d, s) = (dangerous.to_ascii_lowercase(), safe.to_ascii_lowercase());
    let word_at = |w: &str| {
        lower.match_indices(w).map(|(i, _)| i).find(|&i| {
            let before = lower[..i].chars().next_back();
            let after = lower[i + w.len()..].chars().next();
            !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
        })
    };
    match (word_at(d.trim()), word_at(s.trim())) {
        (Some(a), Some(b)) => Some(a < b),
        (Some(_), None) => Some(true),
        (None, Some(_)) => Some(false),
        (None, None) => None,
    }
}

pub fn run(
    model: &EngineModel,
    spec: &PromptSpec,
    texts: &[String],
    max_tokens: usize,
) -> Result<Generated, String> {
    let labels =
        resolve_labels(model, spec.template, spec.verbalizer).map_err(|e| e.to_string())?;
    let prefix = model
        .tokenize(&spec.prefix(&labels))
        .map_err(|e| e.to_string())?;
    let m = model.model();
    let mut cache = model
        .prefill(&prefix)
        .map_err(|e| e.to_string())?
        .into_inner();
    let (dangerous, safe) = spec.verbalizer.words();
    let mut out = Generated {
        pred: Vec::with_capacity(texts.len()),
        unparsed: 0,
        latency_ms: Vec::with_capacity(texts.len()),
    };
    for text in texts {
        let t = Instant::now();
        let (suffix, action) = spec.suffix_with_action(text);
        let suffix = model
            .tokenize_continuation_with_literal(&suffix, action)
            .map_err(|e| e.to_string())?;
        let mut fork = cache.fork();
        let mut logits = m
            .forward(&mut fork, &suffix, LogitsRequest::Last)
            .map_err(|e| e.to_string())?;
        let mut generated = Vec::new();
        for step in 0..max_tokens {
            let next = probe::primitives::argmax(&logits) as u32;
            if m.tokenizer().is_eog(next) {
                break;
            }
            generated.push(next);
            let so_far = String::from_utf8_lossy(&m.tokenizer().decode(&generated)).into_owned();
            if parse_answer(&so_far, dangerous, safe).is_some() || step + 1 == max_tokens {
                break;
            }
            logits = m
                .forward(&mut fork, &[next], LogitsRequest::Last)
                .map_err(|e| e.to_string())?;
        }
        out.latency_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let answer = String::from_utf8_lossy(&m.tokenizer().decode(&generated)).into_owned();
        match parse_answer(&answer, dangerous, safe) {
            Some(harmful) => out.pred.push(harmful),
            None => {
                out.unparsed += 1;
                out.pred.push(true);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::parse_answer;

    #[test]
    fn parses_the_first_label_named_as_a_word() {
        assert_eq!(parse_answer("Yes", "Yes", "No"), Some(true));
        assert_eq!(parse_answer(" no, it is fine", "Yes", "No"), Some(false));
        assert_eq!(parse_answer("No. Yes", "Yes", "No"), Some(false));
        assert_eq!(parse_answer("Nothing here", "Yes", "No"), None);
        assert_eq!(parse_answer("Yesterday", "Yes", "No"), None);
        assert_eq!(
            parse_answer("It is dangerous.", "Dangerous", "Safe"),
            Some(true)
        );
        assert_eq!(parse_answer("", "Yes", "No"), None);
    }
}
