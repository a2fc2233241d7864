//! Choosing decision settings from labelled data without learned weights: the threshold that
//! maximises F1, the best of a grid of candidate settings, and k-fold cross-validation of that
//! choice (stratified folds, fixed seed), so a reported F1 never comes from the rows it was tuned on.

use crate::metrics::{roc_auc, Confusion};
use alloc::vec::Vec;

/// A setting chosen on training rows: the candidate's index in the grid and its threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice {
    pub candidate: usize,
    pub threshold: f32,
    /// F1 on the rows it was chosen on.
    pub train_f1: f64,
}

/// The threshold maximising F1 over `idx` (a row is predicted harmful when score >= threshold).
/// Thresholds tried: midpoints between consecutive distinct scores, and one above the maximum.
/// Ties go to the higher accuracy, then to the threshold nearest 0.5. Returns (threshold, F1).
pub fn best_threshold(scores: &[f32], truth: &[bool], idx: &[usize]) -> (f32, f64) {
    let mut order: Vec<usize> = idx.to_vec();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let positives = order.iter().filter(|&&i| truth[i]).count() as u64;
    let n = order.len() as u64;
    // Threshold below everything: all predicted harmful.
    let (mut tp, mut fp) = (positives, n - positives);
    let mut best = (f32::MIN, -1.0f64, -1.0f64);
    let mut consider = |th: f32, tp: u64, fp: u64| {
        let c = Confusion {
            tp,
            fp,
            fn_: positives - tp,
            tn: (n - positives) - fp,
        };
        let (f1, acc) = (c.f1(), c.accuracy());
        let better = f1 > best.1
            || (f1 == best.1 && acc > best.2)
            || (f1 == best.1 && acc == best.2 && (th - 0.5).abs() < (best.0 - 0.5).abs());
        if better {
            best = (th, f1, acc);
        }
    };
    let first = order.first().map_or(0.5, |&i| scores[i]);
    consider(first, tp, fp);
    let mut k = 0;
    while k < order.len() {
        // Move every row with this score below the threshold.
        let s = scores[order[k]];
        while k < order.len() && scores[order[k]] == s {
            if truth[order[k]] {
                tp -= 1;
            } else {
                fp -= 1;
            }
            k += 1;
        }
        let th = match order.get(k) {
            Some(&next) => s + (scores[next] - s) / 2.0,
            None => s + (1.0 - s).max(1e-6) / 2.0,
        };
        consider(th, tp, fp);
    }
    (best.0, best.1.max(0.0))
}

/// The candidate (rows of `candidates` are per-candidate scores) and threshold with the best F1
/// on `idx`; ties go to the earlier candidate, so the grid's order is its preference.
pub fn choose(candidates: &[Vec<f32>], truth: &[bool], idx: &[usize]) -> Option<Choice> {
    let mut best: Option<Choice> = None;
    for (c, scores) in candidates.iter().enumerate() {
        let (threshold, f1) = best_threshold(scores, truth, idx);
        if best.is_none_or(|b| f1 > b.train_f1) {
            best = Some(Choice {
                candidate: c,
                threshold,
                train_f1: f1,
            });
        }
    }
    best
}

/// Stratified fold of each row (0..k): harmful and harmless rows are shuffled apart with `seed`
/// and dealt round robin, so every fold has about the same share of each.
pub fn stratified_folds(truth: &[bool], k: usize, seed: u64) -> Vec<usize> {
    let k = k.max(1);
    let mut fold = alloc::vec![0usize; truth.len()];
    let mut state = seed;
    for class in [true, false] {
        let mut members: Vec<usize> = (0..truth.len()).filter(|&i| truth[i] == class).collect();
        for i in (1..members.len()).rev() {
            let j = (split_mix(&mut state) % (i as u64 + 1)) as usize;
            members.swap(i, j);
        }
        for (n, &i) in members.iter().enumerate() {
            fold[i] = n % k;
        }
    }
    fold
}

fn split_mix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The result of k-fold cross-validation: what each fold chose on its training rows, and every row
/// judged by the choice made without it.
#[derive(Debug, Clone)]
pub struct CvOutcome {
    pub choices: Vec<Choice>,
    /// Held-out prediction of each row.
    pub pred: Vec<bool>,
    /// Held-out score minus its fold's threshold (comparable across folds; for a pooled AUC).
    pub margin: Vec<f32>,
    /// ROC AUC of each fold's held-out rows under its chosen candidate.
    pub fold_auc: Vec<Option<f64>>,
}

impl CvOutcome {
    pub fn confusion(&self, truth: &[bool]) -> Confusion {
        Confusion::from_pairs(truth.iter().copied().zip(self.pred.iter().copied()))
    }
    pub fn pooled_auc(&self, truth: &[bool]) -> Option<f64> {
        roc_auc(&self.margin, truth)
    }
}

/// k-fold cross-validation of [`choose`]. `None` when there are no candidates or rows.
pub fn cross_validate(
    candidates: &[Vec<f32>],
    truth: &[bool],
    k: usize,
    seed: u64,
) -> Option<CvOutcome> {
    if candidates.is_empty()
        || truth.is_empty()
        || candidates.iter().any(|c| c.len() != truth.len())
    {
        return None;
    }
    let k = k.clamp(2, truth.len().max(2));
    let fold = stratified_folds(truth, k, seed);
    let mut out = CvOutcome {
        choices: Vec::with_capacity(k),
        pred: alloc::vec![false; truth.len()],
        margin: alloc::vec![0.0; truth.len()],
        fold_auc: Vec::with_capacity(k),
    };
    for f in 0..k {
        let train: Vec<usize> = (0..truth.len()).filter(|&i| fold[i] != f).collect();
        let test: Vec<usize> = (0..truth.len()).filter(|&i| fold[i] == f).collect();
        let choice = choose(candidates, truth, &train)?;
        let scores = &candidates[choice.candidate];
        for &i in &test {
            out.pred[i] = scores[i] >= choice.threshold;
            out.margin[i] = scores[i] - choice.threshold;
        }
        let s: Vec<f32> = test.iter().map(|&i| scores[i]).collect();
        let t: Vec<bool> = test.iter().map(|&i| truth[i]).collect();
        out.fold_auc.push(roc_auc(&s, &t));
        out.choices.push(choice);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_threshold_separates_a_separable_set() {
        let scores = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9];
        let truth = [false, false, false, true, true, true];
        let (th, f1) = best_threshold(&scores, &truth, &[0, 1, 2, 3, 4, 5]);
        assert_eq!(f1, 1.0);
        assert!((th - 0.5).abs() < 1e-6, "midpoint of 0.3 and 0.7, got {th}");
    }

    #[test]
    fn best_threshold_hand_computed_overlap() {
        // Sorted: 0.1 F, 0.4 T, 0.5 F, 0.6 T, 0.9 T. Threshold 0.25 flags the last four: tp 3, fp 1,
        // F1 = 6/7 = 0.857; threshold 0.55: tp 2, fp 0, fn 1, F1 = 4/5 = 0.8; 0.45: tp 2 fp 1 fn 1 = 0.667.
        let scores = [0.5, 0.1, 0.9, 0.4, 0.6];
        let truth = [false, false, true, true, true];
        let (th, f1) = best_threshold(&scores, &truth, &[0, 1, 2, 3, 4]);
        assert!((f1 - 6.0 / 7.0).abs() < 1e-9, "{f1}");
        assert!((th - 0.25).abs() < 1e-6, "{th}");
        // Only some rows count.
        let (th, f1) = best_threshold(&scores, &truth, &[1, 2]);
        assert_eq!(f1, 1.0);
        assert!(th > 0.1 && th <= 0.9);
    }

    #[test]
    fn choose_prefers_the_better_candidate_then_the_earlier() {
        let truth = [false, true, false, true];
        let noisy = alloc::vec![0.9, 0.1, 0.8, 0.2];
        let clean = alloc::vec![0.1, 0.9, 0.2, 0.8];
        let c = choose(&[noisy.clone(), clean.clone()], &truth, &[0, 1, 2, 3]).unwrap();
        assert_eq!(c.candidate, 1);
        let c = choose(&[clean.clone(), clean], &truth, &[0, 1, 2, 3]).unwrap();
        assert_eq!(c.candidate, 0);
    }

    #[test]
    fn folds_are_stratified_and_deterministic() {
        let truth: Vec<bool> = (0..50).map(|i| i % 5 == 0).collect();
        let a = stratified_folds(&truth, 5, 7);
        assert_eq!(a, stratified_folds(&truth, 5, 7));
        assert_ne!(a, stratified_folds(&truth, 5, 8));
        for f in 0..5 {
            let pos = (0..50).filter(|&i| a[i] == f && truth[i]).count();
            let all = (0..50).filter(|&i| a[i] == f).count();
            assert_eq!((pos, all), (2, 10));
        }
    }

    #[test]
    fn cross_validation_judges_each_row_without_it() {
        // One informative candidate, one inverted: every fold must pick the informative one.
        let truth: Vec<bool> = (0..40).map(|i| i % 2 == 0).collect();
        let good: Vec<f32> = (0..40)
            .map(|i| {
                if i % 2 == 0 {
                    0.6 + i as f32 / 400.0
                } else {
                    0.3
                }
            })
            .collect();
        let bad: Vec<f32> = good.iter().map(|s| 1.0 - s).collect();
        let cv = cross_validate(&[bad, good], &truth, 4, 1).unwrap();
        assert!(cv.choices.iter().all(|c| c.candidate == 1));
        assert_eq!(cv.confusion(&truth).f1(), 1.0);
        assert_eq!(cv.pooled_auc(&truth), Some(1.0));
        assert!(cross_validate(&[], &truth, 4, 1).is_none());
        assert!(cross_validate(&[alloc::vec![0.5; 3]], &truth, 4, 1).is_none());
    }
}
