//! `probevisor eval`'s pipeline runs: every row through the whole pipeline (the ablation) and the
//! whole gate's scores (the probe's scores where the layers other than the probe let a row through,
//! 1 where they deny it).

use crate::eval_report::Scored;
use probe::calibration::CalibrationCache;
use probe::engine::EngineModel;
use probe::eval_data::EvalRow;
use probe::pipeline::{Layers, Pipeline};
use probe::policy::Policy;
use std::time::Instant;

/// Every row through the pipeline with `layers` (rate limits lifted: rows are not a burst of one
/// agent). Returns the deny decisions and the per-row latency.
pub fn run_pipeline(
    policy: &Policy,
    model: Option<&EngineModel>,
    rows: &[EvalRow],
    layers: Layers,
    agent: &str,
) -> Result<(Vec<bool>, Vec<f64>), String> {
    let mut policy = policy.clone();
    for t in policy.tools.values_mut() {
        t.rate = None;
    }
    let mut pipeline = Pipeline::new(policy, model, &mut CalibrationCache::new(), layers)
        .map_err(|e| e.to_string())?;
    let mut pred = Vec::with_capacity(rows.len());
    let mut lat = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let t = Instant::now();
        let d = pipeline.decide(&r.action, agent, i as u64);
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        pred.push(d.verdict == probe::Verdict::Deny);
    }
    Ok((pred, lat))
}

/// The whole-gate twin of each probe setting: the layers other than the probe (which need no model)
/// run on every row; a row they deny scores 1, any other row keeps its probe score.
pub fn whole_gate_settings(
    policy: &Policy,
    rows: &[EvalRow],
    agent: &str,
    probe: &[Scored],
) -> Result<(Vec<Scored>, Vec<bool>), String> {
    let (denied, _) = run_pipeline(policy, None, rows, Layers::WITHOUT_PROBE, agent)?;
    eprintln!(
        "eval: the layers other than the probe deny {} of {} rows",
        denied.iter().filter(|d| **d).count(),
        rows.len()
    );
    let gate = probe
        .iter()
        .map(|s| Scored {
            name: format!("{}{}", crate::eval_scores::WHOLE_GATE, s.name),
            scores: whole_gate_scores(&s.scores, &denied),
            latency_ms: s.latency_ms.clone(),
            prefix_ms: s.prefix_ms,
        })
        .collect();
    Ok((gate, denied))
}

/// The ablation row of `--whole-gate`: the other layers' own decisions, no model.
pub const WITHOUT_PROBE: &str = "without the probe (schema, tier, pre-filter, rules)";

/// The whole gate's score of each row: 1 where the layers other than the probe deny it, else the
/// probe's score (the pipeline consults the probe only for actions the other layers let through).
fn whole_gate_scores(probe: &[f32], denied_by_other_layers: &[bool]) -> Vec<f32> {
    probe
        .iter()
        .zip(denied_by_other_layers)
        .map(|(&p, &d)| if d { 1.0 } else { p })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_gate_denials_score_one() {
        assert_eq!(
            whole_gate_scores(&[0.2, 0.7, 0.1], &[true, false, false]),
            vec![1.0, 0.7, 0.1]
        );
    }
}
