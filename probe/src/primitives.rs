//! ProbeLogits primitives: a softmax restricted to the label tokens, yes/no and N-way verdicts.

use crate::{LogitModel, ProbeError};
use alloc::string::ToString;
use alloc::vec::Vec;

/// Exact single-token lookup: `Some(id)` only when `text` is one token of the vocabulary.
pub fn text_to_id<M: LogitModel>(model: &M, text: &str) -> Option<u32> {
    model.text_to_id(text)
}

/// Softmax over `logits` with the log-sum-exp shift; NaN or infinite logits are an error.
pub fn constrained_softmax(logits: &[f32]) -> Result<Vec<f32>, ProbeError> {
    let lse = log_sum_exp(logits)?;
    Ok(logits
        .iter()
        .map(|&l| libm_exp(l as f64 - lse) as f32)
        .collect())
}

/// Log-probabilities over `logits` (log-softmax), NaN or infinite logits are an error.
pub fn log_softmax(logits: &[f32]) -> Result<Vec<f64>, ProbeError> {
    let lse = log_sum_exp(logits)?;
    Ok(logits.iter().map(|&l| l as f64 - lse).collect())
}

fn log_sum_exp(logits: &[f32]) -> Result<f64, ProbeError> {
    if logits.is_empty() {
        return Err(ProbeError::BadRequest("no labels".to_string()));
    }
    let mut max = f64::NEG_INFINITY;
    for (index, &l) in logits.iter().enumerate() {
        if !l.is_finite() {
            return Err(ProbeError::NonFiniteLogit { index });
        }
        max = max.max(l as f64);
    }
    // Every term is exp(<= 0) and the largest is exp(0) = 1, so the sum is >= 1: no division by zero.
    let sum: f64 = logits.iter().map(|&l| libm_exp(l as f64 - max)).sum();
    Ok(max + libm_ln(sum))
}

/// `probe_classify` over a prefilled prefix: run `suffix`, softmax over the label logits.
/// Returns the argmax index and the probabilities.
pub fn classify_tokens<M: LogitModel>(
    model: &M,
    prefix: &M::State,
    suffix: &[u32],
    labels: &[u32],
) -> Result<(usize, Vec<f32>), ProbeError> {
    if labels.len() < 2 {
        return Err(ProbeError::BadRequest(
            "need at least two labels".to_string(),
        ));
    }
    let logits = model.label_logits(prefix, suffix, labels)?;
    if logits.len() != labels.len() {
        return Err(ProbeError::LogitCount {
            expected: labels.len(),
            got: logits.len(),
        });
    }
    let probs = constrained_softmax(&logits)?;
    Ok((argmax(&probs), probs))
}

/// Index of the largest value (first one on ties).
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// Resolve each label text to its single token id, or fail naming the label.
pub fn label_ids<M: LogitModel>(model: &M, labels: &[&str]) -> Result<Vec<u32>, ProbeError> {
    labels
        .iter()
        .map(|l| {
            model
                .text_to_id(l)
                .ok_or_else(|| ProbeError::LabelNotSingleToken(l.to_string()))
        })
        .collect()
}

/// N-way classification of a whole prompt whose next token is one of `labels` (single tokens).
/// Returns the argmax index and the probabilities (summing to 1).
pub fn probe_classify<M: LogitModel>(
    model: &M,
    prompt: &str,
    labels: &[&str],
) -> Result<(usize, Vec<f32>), ProbeError> {
    let ids = label_ids(model, labels)?;
    let tokens = model.tokenize(prompt)?;
    let (prefix_tokens, suffix) = split_first(&tokens)?;
    let prefix = model.prefill(prefix_tokens)?;
    classify_tokens(model, &prefix, suffix, &ids)
}

/// Yes/No verdict of a prompt: `(true, p)` for Yes, `(false, p)` for No, `p` in [0.5, 1] the
/// probability of the winning label. Uses whichever of "Yes"/" Yes" is a single token.
pub fn probe_yes_no<M: LogitModel>(model: &M, prompt: &str) -> Result<(bool, f32), ProbeError> {
    let yes = pick_variant(model, "Yes")?;
    let no = pick_variant(model, "No")?;
    let (index, probs) = probe_classify(model, prompt, &[yes, no])?;
    Ok((index == 0, probs[index].max(0.5)))
}

/// The bare word if it is one token, else the leading-space form.
fn pick_variant<M: LogitModel>(model: &M, word: &'static str) -> Result<&'static str, ProbeError> {
    let spaced: &'static str = match word {
        "Yes" => " Yes",
        "No" => " No",
        _ => word,
    };
    if model.text_to_id(word).is_some() {
        Ok(word)
    } else if model.text_to_id(spaced).is_some() {
        Ok(spaced)
    } else {
        Err(ProbeError::LabelNotSingleToken(word.to_string()))
    }
}

/// Prefill the first token (BOS or the first piece) and run the rest as the suffix: a one-off
/// prompt has nothing to share, and the suffix must not be empty.
fn split_first(tokens: &[u32]) -> Result<(&[u32], &[u32]), ProbeError> {
    if tokens.len() < 2 {
        return Err(ProbeError::BadRequest(
            "prompt must be at least two tokens".to_string(),
        ));
    }
    Ok(tokens.split_at(1))
}

/// exp for f64 without std (Cody-Waite range reduction + degree-13 Taylor; < 1e-15 relative).
pub fn libm_exp(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x > 709.0 {
        return f64::INFINITY;
    }
    if x < -745.0 {
        return 0.0;
    }
    const LN2: f64 = core::f64::consts::LN_2;
    let k = (x / LN2 + if x >= 0.0 { 0.5 } else { -0.5 }) as i64;
    let r = x - k as f64 * LN2;
    let mut term = 1.0;
    let mut sum = 1.0;
    for n in 1..=16 {
        term *= r / n as f64;
        sum += term;
    }
    scale_pow2(sum, k)
}

fn scale_pow2(mut v: f64, mut k: i64) -> f64 {
    while k > 1000 {
        v *= f64::from_bits(((1023 + 1000) as u64) << 52);
        k -= 1000;
    }
    while k < -1000 {
        v *= f64::from_bits(((1023 - 1000) as u64) << 52);
        k += 1000;
    }
    v * f64::from_bits(((1023 + k) as u64) << 52)
}

/// Natural log for f64 without std (x > 0): split mantissa/exponent, atanh series.
pub fn libm_ln(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x.is_infinite() {
        return f64::INFINITY;
    }
    let mut bits = x.to_bits();
    let mut exp = ((bits >> 52) & 0x7ff) as i64;
    if exp == 0 {
        // Subnormal: normalise first.
        let y = x * f64::from_bits((1023u64 + 54) << 52);
        bits = y.to_bits();
        exp = ((bits >> 52) & 0x7ff) as i64 - 54;
    }
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | (1023u64 << 52));
    let mut e = exp - 1023;
    if m > core::f64::consts::SQRT_2 {
        m /= 2.0;
        e += 1;
    }
    // ln(m) = 2 atanh((m-1)/(m+1)), |s| <= 0.172
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut term = s;
    let mut sum = 0.0;
    let mut n = 1.0;
    while n < 40.0 {
        sum += term / n;
        term *= s2;
        n += 2.0;
    }
    2.0 * sum + e as f64 * core::f64::consts::LN_2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::MockModel;

    #[test]
    fn exp_and_ln_match_std() {
        for &x in &[-700.0, -30.5, -1.0, -1e-9, 0.0, 0.3, 1.0, 2.5, 50.0, 700.0] {
            let (a, b) = (libm_exp(x), x.exp());
            assert!(((a - b) / b).abs() < 1e-13, "exp({x}) {a} vs {b}");
        }
        for &x in &[1e-300, 1e-10, 0.5, 1.0, 1.5, 2.0, 10.0, 1e10, 1e300, 5e-320] {
            let (a, b) = (libm_ln(x), x.ln());
            assert!(
                (a - b).abs() < 1e-12 * b.abs().max(1.0),
                "ln({x}) {a} vs {b}"
            );
        }
    }

    #[test]
    fn softmax_two_labels_hand_computed() {
        // logits 2, 0: p = e^2/(e^2+1) = 0.880797
        let p = constrained_softmax(&[2.0, 0.0]).unwrap();
        assert!((p[0] - 0.880_797).abs() < 1e-5 && (p[1] - 0.119_203).abs() < 1e-5);
    }

    #[test]
    fn softmax_is_stable_for_huge_logits() {
        let p = constrained_softmax(&[1.0e30, 1.0e30 - 1.0e24, -3.0e38]).unwrap();
        assert!(p.iter().all(|v| v.is_finite()));
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn softmax_rejects_nan_inf_and_empty() {
        assert_eq!(
            constrained_softmax(&[0.0, f32::NAN]),
            Err(ProbeError::NonFiniteLogit { index: 1 })
        );
        assert_eq!(
            constrained_softmax(&[f32::INFINITY]),
            Err(ProbeError::NonFiniteLogit { index: 0 })
        );
        assert!(constrained_softmax(&[]).is_err());
    }

    #[test]
    fn yes_no_confidence_in_half_to_one() {
        let m = MockModel::new();
        let (yes, p) = probe_yes_no(&m, "Is rm -rf / dangerous?").unwrap();
        assert!((0.5..=1.0).contains(&p));
        let (yes2, p2) = probe_yes_no(&m, "Is rm -rf / dangerous?").unwrap();
        assert_eq!((yes, p), (yes2, p2), "deterministic");
    }

    #[test]
    fn yes_no_uses_mock_danger_words() {
        let m = MockModel::new();
        assert!(probe_yes_no(&m, "delete everything with rm -rf").unwrap().0);
        assert!(!probe_yes_no(&m, "list the files in docs").unwrap().0);
    }

    #[test]
    fn classify_three_labels_sums_to_one() {
        let m = MockModel::new();
        let (i, p) = probe_classify(&m, "rm -rf /", &["Safe", "Dangerous", "No"]).unwrap();
        assert_eq!(p.len(), 3);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert_eq!(i, argmax(&p));
    }

    #[test]
    fn multi_token_label_is_an_error() {
        let m = MockModel::new();
        let err = probe_classify(&m, "x", &["Yes", "Absolutely not"]).unwrap_err();
        assert_eq!(
            err,
            ProbeError::LabelNotSingleToken("Absolutely not".into())
        );
        assert_eq!(text_to_id(&m, "Yes"), Some(crate::mock::YES));
        assert_eq!(text_to_id(&m, "Absolutely not"), None);
    }

    #[test]
    fn model_returning_nan_fails_closed() {
        let m = MockModel::new().with_nan();
        assert!(matches!(
            probe_yes_no(&m, "anything"),
            Err(ProbeError::NonFiniteLogit { .. })
        ));
    }
}
