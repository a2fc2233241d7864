//! The tables `probevisor eval` prints: one row per setting (fixed threshold), the cross-validated
//! choice, the generate-and-parse baseline and the pipeline ablation; markdown or JSON.

use crate::json::string as js;
use probe::crossval::{Choice, CvOutcome};
use probe::metrics::{bootstrap_ci, percentile_sorted, roc_auc, Confusion};

/// Scores of one (verbalizer, examples, alpha) setting.
pub struct Scored {
    pub name: String,
    pub scores: Vec<f32>,
    pub latency_ms: Vec<f64>,
    pub prefix_ms: f64,
}

/// Generate-and-parse results.
pub struct Generated {
    /// Predicted harmful (an unparsable answer counts as harmful: fail closed).
    pub pred: Vec<bool>,
    pub unparsed: usize,
    pub latency_ms: Vec<f64>,
}

pub struct Report {
    dataset: String,
    model: String,
    truth: Vec<bool>,
    template: &'static str,
    threshold: f32,
    pub scored: Vec<Scored>,
    /// (title, outcome, frozen choice, index of the outcome's first candidate in `scored`).
    cv: Vec<(String, CvOutcome, Choice, usize)>,
    generate: Option<(String, Generated)>,
    /// (layers, denied per row, latency per row).
    pub ablation: Vec<(String, Vec<bool>, Vec<f64>)>,
}

struct Row {
    setting: String,
    threshold: Option<f32>,
    pred: Vec<bool>,
    auc: Option<f64>,
    latency_ms: Vec<f64>,
    note: String,
}

impl Report {
    pub fn new(
        dataset: &str,
        model: &str,
        truth: &[bool],
        template: &'static str,
        threshold: f32,
    ) -> Self {
        Report {
            dataset: dataset.to_string(),
            model: model.to_string(),
            truth: truth.to_vec(),
            template,
            threshold,
            scored: Vec::new(),
            cv: Vec::new(),
            generate: None,
            ablation: Vec::new(),
        }
    }

    /// Adds a cross-validation over the candidates `scored[offset..]` it was run on (`title` names them).
    pub fn add_cv(&mut self, title: &str, cv: CvOutcome, frozen: Choice, offset: usize) {
        self.cv.push((title.to_string(), cv, frozen, offset));
    }

    pub fn set_generate(&mut self, name: String, g: Generated) {
        self.generate = Some((name, g));
    }

    fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        let has_both = self.truth.iter().any(|t| *t) && self.truth.iter().any(|t| !*t);
        for s in &self.scored {
            rows.push(Row {
                setting: s.name.clone(),
                threshold: Some(self.threshold),
                pred: s.scores.iter().map(|p| *p >= self.threshold).collect(),
                auc: roc_auc(&s.scores, &self.truth),
                latency_ms: s.latency_ms.clone(),
                note: if s.prefix_ms.is_nan() {
                    "scores read back (--scores-in)".into()
                } else {
                    format!("prefix {:.0} ms once", s.prefix_ms)
                },
            });
        }
        for (title, cv, frozen, offset) in &self.cv {
            let aucs: Vec<f64> = cv.fold_auc.iter().flatten().copied().collect();
            let mean_auc = (!aucs.is_empty() && has_both)
                .then(|| aucs.iter().sum::<f64>() / aucs.len() as f64);
            let picks: Vec<String> = cv
                .choices
                .iter()
                .map(|c| {
                    format!(
                        "{} @ {:.3}",
                        self.scored[offset + c.candidate].name,
                        c.threshold
                    )
                })
                .collect();
            rows.push(Row {
                setting: format!("{title}: cross-validated, {} folds", cv.choices.len()),
                threshold: None,
                pred: cv.pred.clone(),
                auc: mean_auc,
                latency_ms: Vec::new(),
                note: format!(
                    "AUC = mean of held-out folds (pooled margins {}); folds chose: {}",
                    cv.pooled_auc(&self.truth)
                        .map_or("n/a".into(), |a| format!("{a:.3}")),
                    picks.join("; ")
                ),
            });
            let s = &self.scored[offset + frozen.candidate];
            rows.push(Row {
                setting: format!("{title}: frozen on all rows: {}", s.name),
                threshold: Some(frozen.threshold),
                pred: s.scores.iter().map(|p| *p >= frozen.threshold).collect(),
                auc: roc_auc(&s.scores, &self.truth),
                latency_ms: s.latency_ms.clone(),
                note: "in-sample: the setting to freeze in the policy, not a measurement".into(),
            });
        }
        if let Some((name, g)) = &self.generate {
            rows.push(Row {
                setting: name.clone(),
                threshold: None,
                pred: g.pred.clone(),
                auc: None,
                latency_ms: g.latency_ms.clone(),
                note: format!("{} answers unparsable (counted harmful)", g.unparsed),
            });
        }
        for (name, pred, lat) in &self.ablation {
            rows.push(Row {
                setting: format!("pipeline: {name}"),
                threshold: None,
                pred: pred.clone(),
                auc: None,
                latency_ms: lat.clone(),
                note: "the pipeline's own decisions (rate limits lifted; policy thresholds per tool and tier)".into(),
            });
        }
        rows
    }

    pub fn print(&self, as_json: bool) {
        let positives = self.truth.iter().filter(|t| **t).count();
        let mut json = Vec::new();
        if !as_json {
            println!(
                "dataset {}: {} rows, {positives} harmful; model {}; template {}\n",
                self.dataset,
                self.truth.len(),
                self.model,
                self.template
            );
            println!("| setting | threshold | precision [95% CI] | recall [95% CI] | F1 [95% CI] | ROC AUC | accuracy | p50 ms | p95 ms | note |");
            println!("|---|---|---|---|---|---|---|---|---|---|");
        }
        for r in self.rows() {
            let c = Confusion::from_pairs(self.truth.iter().copied().zip(r.pred.iter().copied()));
            let ci = bootstrap_ci(&self.truth, &r.pred, 1000, 0x5eed);
            let mut lat = r.latency_ms.clone();
            lat.sort_by(f64::total_cmp);
            let (p50, p95) = if lat.is_empty() {
                (f64::NAN, f64::NAN)
            } else {
                (percentile_sorted(&lat, 50.0), percentile_sorted(&lat, 95.0))
            };
            let th = r.threshold.map_or("-".to_string(), |t| format!("{t:.3}"));
            if as_json {
                let num = |x: f64| {
                    if x.is_finite() {
                        format!("{x:.2}")
                    } else {
                        "null".into()
                    }
                };
                json.push(format!(
                    "{{\"setting\":{},\"threshold\":{},\"precision\":{:.4},\"precision_ci\":[{:.4},{:.4}],\"recall\":{:.4},\"recall_ci\":[{:.4},{:.4}],\"f1\":{:.4},\"f1_ci\":[{:.4},{:.4}],\"roc_auc\":{},\"accuracy\":{:.4},\"block_rate\":{:.4},\"latency_p50_ms\":{},\"latency_p95_ms\":{},\"rows\":{},\"note\":{}}}",
                    js(&r.setting),
                    r.threshold.map_or("null".into(), |t| format!("{t:.4}")),
                    c.precision(), ci[0].0, ci[0].1, c.recall(), ci[1].0, ci[1].1, c.f1(), ci[2].0, ci[2].1,
                    r.auc.map_or("null".into(), |a| format!("{a:.4}")),
                    c.accuracy(),
                    (c.tp + c.fp) as f64 / self.truth.len().max(1) as f64,
                    num(p50), num(p95), self.truth.len(), js(&r.note)
                ));
            } else {
                println!(
                    "| {} | {th} | {:.3} [{:.3}, {:.3}] | {:.3} [{:.3}, {:.3}] | {:.3} [{:.3}, {:.3}] | {} | {:.3} | {p50:.1} | {p95:.1} | {} |",
                    r.setting,
                    c.precision(), ci[0].0, ci[0].1, c.recall(), ci[1].0, ci[1].1, c.f1(), ci[2].0, ci[2].1,
                    r.auc.map_or("n/a".to_string(), |a| format!("{a:.3}")),
                    c.accuracy(),
                    r.note
                );
            }
        }
        if as_json {
            println!("[{}]", json.join(","));
        }
    }
}
