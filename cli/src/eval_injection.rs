//! `probevisor eval` with the policy's injection check (`[gate.injection]`). The pipeline denies
//! when p(dangerous) >= t or p(steering text) >= t_check; with t_check = t - gap that is one score,
//! max(p(dangerous), p(steering text) + gap), against one threshold t. So each probe setting is
//! scored again for each gap of a grid, and cross-validation chooses the setting, the gap and t
//! together as it chooses any setting; the frozen check threshold is t - gap.

use crate::eval_report::Scored;
use probe::calibration::CalibrationCache;
use probe::engine::EngineModel;
use probe::prompt::PromptSpec;
use probe::ProbeGate;
use std::time::Instant;

/// The suffix of a setting with the injection check (then the gap).
pub const WITH_CHECK: &str = " + injection check at threshold -";

/// The gaps tried between the gate's threshold and the check's.
pub const GAPS: [f32; 7] = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6];

/// Score every text with the check's prompt (at its own alpha) and add, for each of `scored` and
/// each gap, the combined setting (its latency is both verdicts').
pub fn add_injection_check(
    model: &EngineModel,
    spec: PromptSpec,
    alpha: f32,
    texts: &[String],
    scored: &mut Vec<Scored>,
) -> Result<(), String> {
    let t = Instant::now();
    let gate = ProbeGate::new(model, spec, &mut CalibrationCache::new())
        .map_err(|e| format!("injection check: {e}"))?;
    let prefix_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut p_inj = Vec::with_capacity(texts.len());
    let mut lat = Vec::with_capacity(texts.len());
    for (i, text) in texts.iter().enumerate() {
        let t = Instant::now();
        let s = gate
            .score(text, alpha)
            .map_err(|e| format!("injection check, row {i}: {e}"))?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        p_inj.push(s.p_dangerous());
        if (i + 1) % 50 == 0 {
            eprintln!("injection check: {}/{} rows", i + 1, texts.len());
        }
    }
    eprintln!(
        "injection check: prefix {} tokens, {prefix_ms:.0} ms (with calibration), p_cf {:?}",
        gate.prefix_tokens(),
        gate.content_free()
    );
    let with: Vec<Scored> = scored
        .iter()
        .flat_map(|s| GAPS.map(|gap| combine(s, &p_inj, gap, &lat, prefix_ms)))
        .collect();
    scored.extend(with);
    Ok(())
}

/// `s` with the check at `gap`: per row max(score, min(1, p_inj + gap)) (a row denied by the other
/// layers keeps its 1), the two latencies added.
fn combine(s: &Scored, p_inj: &[f32], gap: f32, lat: &[f64], prefix_ms: f64) -> Scored {
    Scored {
        name: format!("{}{WITH_CHECK} {gap}", s.name),
        scores: s
            .scores
            .iter()
            .zip(p_inj)
            .map(|(a, b)| a.max((b + gap).min(1.0)))
            .collect(),
        latency_ms: s.latency_ms.iter().zip(lat).map(|(a, b)| a + b).collect(),
        prefix_ms: s.prefix_ms + prefix_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_raises_a_score_and_never_lowers_one() {
        let s = Scored {
            name: "yes/no, examples policy, alpha 0".into(),
            scores: vec![0.2, 0.9, 0.5],
            latency_ms: vec![10.0, 10.0, 10.0],
            prefix_ms: 100.0,
        };
        let c = combine(&s, &[0.8, 0.1, 0.5], 0.0, &[5.0, 6.0, 7.0], 50.0);
        assert_eq!(
            c.name,
            "yes/no, examples policy, alpha 0 + injection check at threshold - 0"
        );
        assert_eq!(c.scores, vec![0.8, 0.9, 0.5]);
        assert_eq!(c.latency_ms, vec![15.0, 16.0, 17.0]);
        assert_eq!(c.prefix_ms, 150.0);
        // At gap 0.25 a check score of 0.5 meets a threshold of 0.75: the check's threshold is
        // 0.5; scores stay within [0, 1].
        let c = combine(&s, &[0.8, 0.1, 0.5], 0.25, &[5.0, 6.0, 7.0], 50.0);
        assert!(c.name.ends_with("at threshold - 0.25"));
        assert_eq!(c.scores, vec![1.0, 0.9, 0.75]);
    }
}
