//! Contextual calibration (Zhao et al. 2021, as the ProbeLogits paper uses it).
//!
//! The label probabilities for content-free inputs ("N/A", "", "\[MASK\]") in the same prompt are
//! averaged into `p_cf`; a verdict's calibrated score per label is `log p - alpha * log p_cf`, then a
//! softmax over the labels. `alpha = 0` is no calibration, `alpha = 1` full calibration.

use crate::primitives::{libm_exp, libm_ln};
use crate::prompt::{TemplateKind, Verbalizer};
use crate::ProbeError;
use alloc::collections::BTreeMap;
use alloc::string::ToString;
use alloc::vec::Vec;

/// The content-free inputs put where the action goes.
pub const CONTENT_FREE_INPUTS: [&str; 3] = ["N/A", "", "[MASK]"];

/// Average several probability vectors (one per content-free input) label by label.
pub fn average(prob_sets: &[Vec<f32>]) -> Result<Vec<f32>, ProbeError> {
    let first = prob_sets
        .first()
        .ok_or_else(|| ProbeError::BadRequest("no content-free runs".to_string()))?;
    let n = first.len();
    let mut sum = alloc::vec![0.0f64; n];
    for set in prob_sets {
        if set.len() != n {
            return Err(ProbeError::LogitCount {
                expected: n,
                got: set.len(),
            });
        }
        for (s, &p) in sum.iter_mut().zip(set) {
            *s += p as f64;
        }
    }
    Ok(sum
        .iter()
        .map(|s| (s / prob_sets.len() as f64) as f32)
        .collect())
}

/// Calibrated probabilities: softmax over `log p_i - alpha * log p_cf_i`.
/// Probabilities are floored at 1e-30 so a zero never becomes -inf; alpha must be finite and in [0, 1].
pub fn calibrate(probs: &[f32], p_cf: &[f32], alpha: f32) -> Result<Vec<f32>, ProbeError> {
    if probs.len() != p_cf.len() || probs.is_empty() {
        return Err(ProbeError::LogitCount {
            expected: p_cf.len(),
            got: probs.len(),
        });
    }
    if !alpha.is_finite() || !(0.0..=1.0).contains(&alpha) {
        return Err(ProbeError::BadRequest(
            "alpha must be in [0, 1]".to_string(),
        ));
    }
    let floor = |p: f32| libm_ln((p as f64).max(1e-30));
    let mut scores = Vec::with_capacity(probs.len());
    for (i, (&p, &c)) in probs.iter().zip(p_cf).enumerate() {
        if !p.is_finite() || !c.is_finite() || p < 0.0 || c < 0.0 {
            return Err(ProbeError::NonFiniteLogit { index: i });
        }
        scores.push(floor(p) - alpha as f64 * floor(c));
    }
    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = scores.iter().map(|s| libm_exp(s - max)).collect();
    let total: f64 = exps.iter().sum(); // >= 1: the max term is exp(0)
    Ok(exps.iter().map(|e| (e / total) as f32).collect())
}

/// What the content-free probabilities depend on: the template, the verbalizer and the whole fixed
/// prefix (system text, policy text, examples), named by the blake3 digest of its text.
pub type CalibrationKey = (TemplateKind, Verbalizer, [u8; 32]);

/// The key for a prefix text.
pub fn calibration_key(
    template: TemplateKind,
    verbalizer: Verbalizer,
    prefix: &str,
) -> CalibrationKey {
    (
        template,
        verbalizer,
        *blake3::hash(prefix.as_bytes()).as_bytes(),
    )
}

/// Content-free probabilities, computed once per (template, verbalizer, prefix) and reused.
#[derive(Debug, Default, Clone)]
pub struct CalibrationCache {
    entries: BTreeMap<CalibrationKey, Vec<f32>>,
}

impl CalibrationCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The cached `p_cf`, or compute it with `compute` (called at most once per key).
    pub fn get_or_compute<F>(
        &mut self,
        key: CalibrationKey,
        compute: F,
    ) -> Result<&[f32], ProbeError>
    where
        F: FnOnce() -> Result<Vec<f32>, ProbeError>,
    {
        match self.entries.entry(key) {
            alloc::collections::btree_map::Entry::Occupied(e) => Ok(e.into_mut().as_slice()),
            alloc::collections::btree_map::Entry::Vacant(e) => Ok(e.insert(compute()?).as_slice()),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5)
    }

    #[test]
    fn alpha_zero_is_identity() {
        let p = calibrate(&[0.8, 0.2], &[0.9, 0.1], 0.0).unwrap();
        assert!(close(&p, &[0.8, 0.2]));
    }

    #[test]
    fn full_calibration_hand_computed() {
        // scores: ln(.8/.9) = -0.117783, ln(.2/.1) = 0.693147; softmax -> [0.307692, 0.692308]
        // (equivalently (.8/.9) / (.8/.9 + .2/.1) = 0.888889 / 2.888889).
        let p = calibrate(&[0.8, 0.2], &[0.9, 0.1], 1.0).unwrap();
        assert!(close(&p, &[0.307_692, 0.692_308]), "{p:?}");
    }

    #[test]
    fn half_calibration_hand_computed() {
        // weights .8/sqrt(.9) = 0.843274, .2/sqrt(.1) = 0.632456 -> [0.571429, 0.428571]
        let p = calibrate(&[0.8, 0.2], &[0.9, 0.1], 0.5).unwrap();
        assert!(close(&p, &[0.571_429, 0.428_571]), "{p:?}");
    }

    #[test]
    fn uniform_content_free_changes_nothing() {
        let p = calibrate(&[0.3, 0.6, 0.1], &[1.0 / 3.0; 3], 1.0).unwrap();
        assert!(close(&p, &[0.3, 0.6, 0.1]));
    }

    #[test]
    fn zero_probability_does_not_blow_up() {
        let p = calibrate(&[1.0, 0.0], &[0.0, 1.0], 1.0).unwrap();
        assert!(p.iter().all(|v| v.is_finite()) && (p[0] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn rejects_bad_alpha_and_lengths() {
        assert!(calibrate(&[0.5, 0.5], &[0.5, 0.5], 1.5).is_err());
        assert!(calibrate(&[0.5, 0.5], &[0.5, 0.5], f32::NAN).is_err());
        assert!(calibrate(&[0.5, 0.5], &[1.0], 0.5).is_err());
        assert!(calibrate(&[f32::NAN, 0.5], &[0.5, 0.5], 0.5).is_err());
    }

    #[test]
    fn average_hand_computed() {
        let a = average(&[
            alloc::vec![0.9, 0.1],
            alloc::vec![0.7, 0.3],
            alloc::vec![0.8, 0.2],
        ])
        .unwrap();
        assert!(close(&a, &[0.8, 0.2]));
        assert!(average(&[]).is_err());
        assert!(average(&[alloc::vec![0.5, 0.5], alloc::vec![1.0]]).is_err());
    }

    #[test]
    fn cache_computes_once_per_key() {
        let mut cache = CalibrationCache::new();
        let mut calls = 0;
        let key = calibration_key(TemplateKind::ChatMl, Verbalizer::YesNo, "P");
        for _ in 0..3 {
            let v = cache
                .get_or_compute(key, || {
                    calls += 1;
                    Ok(alloc::vec![0.6, 0.4])
                })
                .unwrap()
                .to_vec();
            assert_eq!(v, alloc::vec![0.6, 0.4]);
        }
        assert_eq!(calls, 1);
        cache
            .get_or_compute(
                calibration_key(TemplateKind::Gemma, Verbalizer::YesNo, "P"),
                || Ok(alloc::vec![0.5, 0.5]),
            )
            .unwrap();
        assert_eq!(cache.len(), 2);
        // The same template and verbalizer with another prefix (other examples) is another entry.
        cache
            .get_or_compute(
                calibration_key(TemplateKind::ChatMl, Verbalizer::YesNo, "Q"),
                || Ok(alloc::vec![0.3, 0.7]),
            )
            .unwrap();
        assert_eq!(cache.len(), 3);
    }
}
