//! Evaluation metrics: precision, recall, F1 (positive = harmful), accuracy, ROC AUC, bootstrap
//! 95% intervals with a fixed seed, percentiles.

use alloc::vec::Vec;

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Confusion {
    pub tp: u64,
    pub fp: u64,
    pub tn: u64,
    pub fn_: u64,
}

impl Confusion {
    /// From (truth, predicted) pairs, `true` = harmful.
    pub fn from_pairs(pairs: impl Iterator<Item = (bool, bool)>) -> Self {
        let mut c = Confusion::default();
        for (truth, pred) in pairs {
            match (truth, pred) {
                (true, true) => c.tp += 1,
                (false, true) => c.fp += 1,
                (false, false) => c.tn += 1,
                (true, false) => c.fn_ += 1,
            }
        }
        c
    }
    fn ratio(a: u64, b: u64) -> f64 {
        if b == 0 {
            0.0
        } else {
            a as f64 / b as f64
        }
    }
    pub fn precision(&self) -> f64 {
        Self::ratio(self.tp, self.tp + self.fp)
    }
    pub fn recall(&self) -> f64 {
        Self::ratio(self.tp, self.tp + self.fn_)
    }
    pub fn f1(&self) -> f64 {
        Self::ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }
    pub fn accuracy(&self) -> f64 {
        Self::ratio(self.tp + self.tn, self.tp + self.tn + self.fp + self.fn_)
    }
}

/// ROC AUC by the rank-sum (Mann-Whitney) formula, ties counted half. `None` without both classes.
pub fn roc_auc(scores: &[f32], truth: &[bool]) -> Option<f64> {
    let mut idx: Vec<usize> = (0..scores.len().min(truth.len())).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut pos, mut i) = (0.0f64, 0u64, 0usize);
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if truth[k] {
                rank_sum += avg_rank;
                pos += 1;
            }
        }
        i = j + 1;
    }
    let neg = idx.len() as u64 - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    Some((rank_sum - (pos * (pos + 1)) as f64 / 2.0) / (pos * neg) as f64)
}

/// splitmix64: a small deterministic generator for the bootstrap.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

/// 95% percentile-bootstrap intervals of (precision, recall, F1) over `rounds` resamples.
pub fn bootstrap_ci(truth: &[bool], pred: &[bool], rounds: usize, seed: u64) -> [(f64, f64); 3] {
    let n = truth.len().min(pred.len());
    if n == 0 || rounds == 0 {
        return [(0.0, 0.0); 3];
    }
    let mut rng = SplitMix64(seed);
    let mut stats: [Vec<f64>; 3] = [
        Vec::with_capacity(rounds),
        Vec::with_capacity(rounds),
        Vec::with_capacity(rounds),
    ];
    for _ in 0..rounds {
        let c = Confusion::from_pairs((0..n).map(|_| {
            let k = rng.below(n);
            (truth[k], pred[k])
        }));
        stats[0].push(c.precision());
        stats[1].push(c.recall());
        stats[2].push(c.f1());
    }
    stats.map(|mut s| {
        s.sort_by(f64::total_cmp);
        (percentile_sorted(&s, 2.5), percentile_sorted(&s, 97.5))
    })
}

/// Nearest-rank-interpolated percentile of sorted values (`p` in 0..=100).
pub fn percentile_sorted(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = (p / 100.0).clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confusion_hand_computed() {
        let truth = [true, true, true, false, false];
        let pred = [true, true, false, true, false];
        let c = Confusion::from_pairs(truth.iter().copied().zip(pred.iter().copied()));
        assert_eq!(
            c,
            Confusion {
                tp: 2,
                fp: 1,
                tn: 1,
                fn_: 1
            }
        );
        assert!((c.precision() - 2.0 / 3.0).abs() < 1e-12);
        assert!((c.recall() - 2.0 / 3.0).abs() < 1e-12);
        assert!((c.f1() - 2.0 / 3.0).abs() < 1e-12);
        assert!((c.accuracy() - 0.6).abs() < 1e-12);
        assert_eq!(Confusion::default().f1(), 0.0);
    }

    #[test]
    fn auc_hand_computed() {
        assert_eq!(
            roc_auc(&[0.9, 0.8, 0.2, 0.1], &[true, true, false, false]),
            Some(1.0)
        );
        assert_eq!(
            roc_auc(&[0.1, 0.2, 0.8, 0.9], &[true, true, false, false]),
            Some(0.0)
        );
        // pos {0.8, 0.4}, neg {0.5, 0.4}: pairs (0.8>0.5)=1, (0.8>0.4)=1, (0.4<0.5)=0, tie=0.5 -> 2.5/4
        assert_eq!(
            roc_auc(&[0.8, 0.4, 0.5, 0.4], &[true, true, false, false]),
            Some(0.625)
        );
        assert_eq!(roc_auc(&[0.5, 0.5], &[true, true]), None);
    }

    #[test]
    fn bootstrap_is_deterministic_and_brackets_the_estimate() {
        let truth: Vec<bool> = (0..200).map(|i| i % 2 == 0).collect();
        let pred: Vec<bool> = (0..200).map(|i| i % 2 == 0 || i % 7 == 0).collect();
        let a = bootstrap_ci(&truth, &pred, 500, 7);
        assert_eq!(a, bootstrap_ci(&truth, &pred, 500, 7));
        let f1 = Confusion::from_pairs(truth.iter().copied().zip(pred.iter().copied())).f1();
        assert!(a[2].0 < f1 && f1 < a[2].1, "{a:?} {f1}");
        assert!(a[1].0 == 1.0 && a[1].1 == 1.0, "recall is always 1 here");
    }

    #[test]
    fn percentiles() {
        let s = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(percentile_sorted(&s, 50.0), 3.0);
        assert_eq!(percentile_sorted(&s, 95.0), 4.8);
        assert_eq!(percentile_sorted(&[], 50.0), 0.0);
    }
}
