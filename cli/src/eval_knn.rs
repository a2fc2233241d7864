//! `eval --knn-layers L,...`: the labelled rows nearest a row in the verdict model's own hidden
//! states vote on it, alone or added to the probe's log-odds (an experiment; no learned weights: a
//! row's neighbours are looked up, never fitted). Each row's residual stream after block L at the
//! verdict's last token (the position whose logits the probe reads) is taken from the same forked
//! pass as a verdict. Cross-validation is nested so that no label of a held-out row reaches a
//! choice: in each fold the states are centred on the training rows' mean, a training row's vote
//! comes from the other training rows, a held-out row's from the training rows, and the candidate
//! (probe setting, K, weight) and its threshold are chosen on the training rows only.

use crate::args::Args;
use crate::eval_knn_states::cached_states;
use crate::eval_report::Scored;
use crate::eval_retrieve::FOLD_SEED;
use inference_core::model::LogitsRequest;
use probe::calibration::CalibrationCache;
use probe::crossval::{choose, stratified_folds};
use probe::engine::EngineModel;
use probe::eval_data::EvalRow;
use probe::gate::ProbeGate;
use probe::metrics::{bootstrap_ci, roc_auc, Confusion};
use probe::prompt::PromptSpec;

/// Neighbour counts and probe/vote weights tried when `--knn` and `--knn-weights` are not given.
pub const DEFAULT_KS: &str = "1,3,5,9,15,25";
pub const DEFAULT_WEIGHTS: &str = "0.25,0.5,1,2";

/// Each row's hidden state after each of `layers` blocks: `out[layer][row]`, `n_embd` values. The
/// action's tokens but the last are run once on a fork of the gate's prefix; each layer then
/// forks that and runs the last token (a single-token pass per layer).
pub fn hidden_states(
    model: &EngineModel,
    gate: &ProbeGate<'_, EngineModel>,
    texts: &[String],
    layers: &[usize],
) -> Result<Vec<Vec<Vec<f32>>>, String> {
    let mut out = vec![Vec::with_capacity(texts.len()); layers.len()];
    let prefix = gate.prefix_state();
    for (i, text) in texts.iter().enumerate() {
        let suffix = gate.suffix_tokens(text).map_err(|e| e.to_string())?;
        let (head, last) = suffix.split_at(suffix.len().saturating_sub(1));
        let mut base = prefix
            .try_borrow_mut()
            .map_err(|_| "prefix cache busy".to_string())?
            .fork();
        if !head.is_empty() {
            model
                .model()
                .forward(&mut base, head, LogitsRequest::LastRows(&[]))
                .map_err(|e| format!("row {i}: {e}"))?;
        }
        for (l, &layer) in layers.iter().enumerate() {
            let mut fork = base.fork();
            let h = model
                .model()
                .forward(&mut fork, last, LogitsRequest::LastHidden(layer))
                .map_err(|e| format!("row {i}, layer {layer}: {e}"))?;
            out[l].push(h);
        }
        if (i + 1) % 50 == 0 {
            eprintln!("knn: hidden states of {}/{} rows", i + 1, texts.len());
        }
    }
    Ok(out)
}

/// For every row, the training rows other than itself, most similar first (cosine similarity of
/// the states centred on the training rows' mean; ties to the earlier row).
pub fn fold_neighbours(states: &[Vec<f32>], train: &[usize]) -> Vec<Vec<usize>> {
    let d = states.first().map_or(0, Vec::len);
    let mut mean = vec![0.0f64; d];
    for &j in train {
        mean.iter_mut()
            .zip(&states[j])
            .for_each(|(m, &v)| *m += v as f64);
    }
    mean.iter_mut()
        .for_each(|m| *m /= train.len().max(1) as f64);
    let unit: Vec<Vec<f64>> = states
        .iter()
        .map(|s| {
            let c: Vec<f64> = s.iter().zip(&mean).map(|(&v, m)| v as f64 - m).collect();
            let norm = c.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
            c.into_iter().map(|v| v / norm).collect()
        })
        .collect();
    (0..states.len())
        .map(|i| {
            let mut near: Vec<(f64, usize)> = train
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| (unit[i].iter().zip(&unit[j]).map(|(a, b)| a * b).sum(), j))
                .collect();
            near.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            near.into_iter().map(|(_, j)| j).collect()
        })
        .collect()
}

/// The share of dangerous rows among the first `k` neighbours, smoothed (+1 / +2) so that its
/// log-odds are finite.
pub fn vote(neighbours: &[usize], truth: &[bool], k: usize) -> f32 {
    let near = &neighbours[..k.min(neighbours.len())];
    let danger = near.iter().filter(|&&j| truth[j]).count();
    (danger as f32 + 1.0) / (near.len() as f32 + 2.0)
}

fn logit(p: f32) -> f32 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

/// `p` with `weight` times the vote's log-odds added to its own.
pub fn mix(p: f32, vote: f32, weight: f32) -> f32 {
    1.0 / (1.0 + (-(logit(p) + weight * logit(vote))).exp())
}

/// Which candidates a nested cross-validation may choose from.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Family {
    /// The probe's settings alone (the reference: `--cv` on the same settings).
    Probe,
    /// The neighbours' vote alone, for each K.
    Vote,
    /// Both, and each probe setting with each K's vote at each weight.
    Mixed,
}

/// Candidate names and scores for every row, given each row's neighbours in this fold.
fn candidates(
    fam: Family,
    near: &[Vec<usize>],
    truth: &[bool],
    base: &[Scored],
    ks: &[usize],
    weights: &[f32],
) -> Vec<(String, Vec<f32>)> {
    let mut out = Vec::new();
    if fam != Family::Vote {
        out.extend(base.iter().map(|s| (s.name.clone(), s.scores.clone())));
    }
    let votes: Vec<Vec<f32>> = ks
        .iter()
        .map(|&k| near.iter().map(|n| vote(n, truth, k)).collect())
        .collect();
    if fam != Family::Probe {
        out.extend(
            ks.iter()
                .zip(&votes)
                .map(|(k, v)| (format!("vote k={k}"), v.clone())),
        );
    }
    if fam == Family::Mixed {
        for s in base {
            for (k, v) in ks.iter().zip(&votes) {
                for &w in weights {
                    let m = s
                        .scores
                        .iter()
                        .zip(v)
                        .map(|(&p, &v)| mix(p, v, w))
                        .collect();
                    out.push((format!("{} + {w} x vote k={k}", s.name), m));
                }
            }
        }
    }
    out
}

/// The outcome of one nested cross-validation.
pub struct KnnCv {
    pub pred: Vec<bool>,
    pub fold_auc: Vec<Option<f64>>,
    /// Each fold's choice: candidate name and threshold.
    pub choices: Vec<(String, f32)>,
}

/// The fold of a memory row (`--knn-memory`): never held out, never chosen on. When any row is a
/// memory row, every row's neighbours are the memory rows (and only they).
pub const MEMORY: usize = usize::MAX;

/// Fold `f`'s training rows, held-out rows and neighbour pool (the training rows, or the memory).
fn split(fold: &[usize], f: usize) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let train: Vec<usize> = (0..fold.len())
        .filter(|&i| fold[i] != f && fold[i] != MEMORY)
        .collect();
    let test = (0..fold.len()).filter(|&i| fold[i] == f).collect();
    let memory: Vec<usize> = (0..fold.len()).filter(|&i| fold[i] == MEMORY).collect();
    let pool = if memory.is_empty() {
        train.clone()
    } else {
        memory
    };
    (train, test, pool)
}

fn fold_count(fold: &[usize]) -> usize {
    fold.iter()
        .filter(|&&f| f != MEMORY)
        .max()
        .map_or(0, |m| m + 1)
}

/// One fold: its training rows, its held-out rows, and every row's neighbours in its pool.
pub struct FoldSplit {
    train: Vec<usize>,
    test: Vec<usize>,
    near: Vec<Vec<usize>>,
}

/// The folds of `fold` with their neighbours, computed once for every family and report.
pub fn fold_splits(states: &[Vec<f32>], fold: &[usize]) -> Vec<FoldSplit> {
    (0..fold_count(fold))
        .map(|f| {
            let (train, test, pool) = split(fold, f);
            let near = fold_neighbours(states, &pool);
            FoldSplit { train, test, near }
        })
        .collect()
}

/// Nested cross-validation of `fam` over `splits` (from [`fold_splits`] of each row's fold,
/// 0..folds, or [`MEMORY`]; `eval --cv` uses `stratified_folds(truth, folds, FOLD_SEED)`).
fn nested_cv_on(
    fam: Family,
    splits: &[FoldSplit],
    truth: &[bool],
    base: &[Scored],
    ks: &[usize],
    weights: &[f32],
) -> Option<KnnCv> {
    let mut out = KnnCv {
        pred: vec![false; truth.len()],
        fold_auc: Vec::new(),
        choices: Vec::new(),
    };
    for FoldSplit { train, test, near } in splits {
        let cands = candidates(fam, near, truth, base, ks, weights);
        let scores: Vec<Vec<f32>> = cands.iter().map(|c| c.1.clone()).collect();
        let choice = choose(&scores, truth, train)?;
        let chosen = &scores[choice.candidate];
        for &i in test {
            out.pred[i] = chosen[i] >= choice.threshold;
        }
        let s: Vec<f32> = test.iter().map(|&i| chosen[i]).collect();
        let t: Vec<bool> = test.iter().map(|&i| truth[i]).collect();
        out.fold_auc.push(roc_auc(&s, &t));
        out.choices
            .push((cands[choice.candidate].0.clone(), choice.threshold));
    }
    Some(out)
}

/// The folds of a leave-one-group-out cross-validation, the group being the row id's part before
/// its last `-` (`fs-001` is in `fs`: in the team's set, its category); `None` with fewer than two
/// groups.
pub fn group_folds(ids: &[String]) -> Option<Vec<usize>> {
    let mut names: Vec<&str> = Vec::new();
    let fold: Vec<usize> = ids
        .iter()
        .map(|id| {
            let g = id.rsplit_once('-').map_or(id.as_str(), |(g, _)| g);
            names.iter().position(|n| *n == g).unwrap_or_else(|| {
                names.push(g);
                names.len() - 1
            })
        })
        .collect();
    (names.len() >= 2).then_some(fold)
}

/// Prints, for each layer, the vote's out-of-fold AUC for each K and the nested cross-validation
/// of the three families, over each fold scheme of `schemes` (name, each row's fold).
pub fn report(
    layers: &[usize],
    states: &[Vec<Vec<f32>>],
    truth: &[bool],
    base: &[Scored],
    schemes: &[(String, Vec<usize>)],
    ks: &[usize],
    weights: &[f32],
) {
    for (layer, st) in layers.iter().zip(states) {
        println!("\nhidden state after block {layer}");
        for (scheme, fold) in schemes {
            let splits = fold_splits(st, fold);
            // Each row's vote from its own fold's pool: the ordering power of the vote.
            let mut own = vec![Vec::new(); truth.len()];
            for split in &splits {
                for &i in &split.test {
                    own[i] = split.near[i].clone();
                }
            }
            let rows: Vec<usize> = (0..truth.len()).filter(|&i| fold[i] != MEMORY).collect();
            let row_truth: Vec<bool> = rows.iter().map(|&i| truth[i]).collect();
            let aucs: Vec<String> = ks
                .iter()
                .map(|&k| {
                    let v: Vec<f32> = rows.iter().map(|&i| vote(&own[i], truth, k)).collect();
                    format!("k={k} {:.3}", roc_auc(&v, &row_truth).unwrap_or(f64::NAN))
                })
                .collect();
            println!("  {scheme}: out-of-fold vote AUC {}", aucs.join(", "));
            for fam in [Family::Probe, Family::Vote, Family::Mixed] {
                let Some(cv) = nested_cv_on(fam, &splits, truth, base, ks, weights) else {
                    println!("    {fam:?}: no candidates");
                    continue;
                };
                let pred: Vec<bool> = rows.iter().map(|&i| cv.pred[i]).collect();
                let c = Confusion::from_pairs(row_truth.iter().copied().zip(pred.iter().copied()));
                let ci = bootstrap_ci(&row_truth, &pred, 1000, FOLD_SEED);
                let aucs: Vec<f64> = cv.fold_auc.iter().flatten().copied().collect();
                let auc = aucs.iter().sum::<f64>() / aucs.len().max(1) as f64;
                println!(
                    "    {fam:?}: CV F1 {:.3} [{:.3}, {:.3}], precision {:.3}, recall {:.3}, \
                     CV AUC {auc:.3}",
                    c.f1(),
                    ci[2].0,
                    ci[2].1,
                    c.precision(),
                    c.recall()
                );
                for (name, t) in &cv.choices {
                    println!("      chose {name} at {t:.3}");
                }
            }
        }
    }
}

/// The layers, neighbour counts and weights of `--knn-layers`, `--knn` and `--knn-weights`.
struct KnnArgs {
    layers: Vec<usize>,
    ks: Vec<usize>,
    weights: Vec<f32>,
    folds: usize,
}

impl KnnArgs {
    fn parse(args: &Args) -> Result<Self, String> {
        let numbers = |name: &str, default: &str| -> Result<Vec<f32>, String> {
            args.get(name)
                .unwrap_or(default)
                .split(',')
                .map(|v| {
                    v.trim()
                        .parse::<f32>()
                        .map_err(|_| format!("{name}: '{v}'"))
                })
                .collect()
        };
        let counts = |name: &str, default: &str| -> Result<Vec<usize>, String> {
            Ok(numbers(name, default)?
                .iter()
                .map(|&v| v as usize)
                .collect())
        };
        Ok(KnnArgs {
            layers: counts("--knn-layers", "")?,
            ks: counts("--knn", DEFAULT_KS)?,
            weights: numbers("--knn-weights", DEFAULT_WEIGHTS)?,
            folds: args.number("--cv", 5usize)?.max(2),
        })
    }

    /// The report over the stratified folds of `eval --cv` and, when the ids have groups, over
    /// leave-one-group-out folds. Rows past `ids` are memory rows (`--knn-memory`).
    fn report(&self, states: &[Vec<Vec<f32>>], ids: &[String], truth: &[bool], base: &[Scored]) {
        let n = ids.len();
        let with_memory = |mut fold: Vec<usize>| {
            fold.resize(truth.len(), MEMORY);
            fold
        };
        let mut schemes = vec![(
            format!("{} stratified folds", self.folds),
            with_memory(stratified_folds(&truth[..n], self.folds, FOLD_SEED)),
        )];
        if let Some(g) = group_folds(ids) {
            schemes.push(("leave one id group (category) out".into(), with_memory(g)));
        }
        let base: Vec<Scored> = base
            .iter()
            .map(|s| {
                let mut scores = s.scores.clone();
                scores.resize(truth.len(), 0.0);
                Scored {
                    name: s.name.clone(),
                    scores,
                    latency_ms: Vec::new(),
                    prefix_ms: s.prefix_ms,
                }
            })
            .collect();
        report(
            &self.layers,
            states,
            truth,
            &base,
            &schemes,
            &self.ks,
            &self.weights,
        );
    }
}

/// `eval --knn-layers`: the states of every row (computed, or read from `--knn-states`), then the
/// report, with `scored` (the probe's settings so far) as the probe's candidates.
pub fn run(
    args: &Args,
    model: &EngineModel,
    spec: PromptSpec,
    texts: &[String],
    rows: &[EvalRow],
    scored: &[Scored],
) -> Result<(), String> {
    let knn = KnnArgs::parse(args)?;
    let mut truth: Vec<bool> = rows.iter().map(|r| r.harmful).collect();
    let mut texts = texts.to_vec();
    // `--knn-memory policy`: the policy's labelled examples are the only neighbours.
    match args.get("--knn-memory") {
        None => {}
        Some("policy") => {
            texts.extend(spec.examples.iter().map(|e| e.action.clone()));
            truth.extend(spec.examples.iter().map(|e| e.dangerous));
            eprintln!(
                "knn: the policy's {} examples are the memory",
                spec.examples.len()
            );
        }
        Some(o) => return Err(format!("--knn-memory: '{o}' (policy)")),
    }
    let states = cached_states(args.get("--knn-states"), texts.len(), &knn.layers, || {
        let gate = ProbeGate::new(model, spec, &mut CalibrationCache::new())
            .map_err(|e| format!("knn: {e}"))?;
        hidden_states(model, &gate, &texts, &knn.layers)
    })?;
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    knn.report(&states, &ids, &truth, scored);
    Ok(())
}

/// `eval --scores-in F --knn-layers ... --knn-states S`: the report from saved probe scores and
/// saved states (no model).
pub fn run_saved(
    args: &Args,
    ids: &[String],
    truth: &[bool],
    base: &[Scored],
) -> Result<(), String> {
    let knn = KnnArgs::parse(args)?;
    let states = cached_states(args.get("--knn-states"), ids.len(), &knn.layers, || {
        Err(
            "--scores-in with --knn-layers reads the states from --knn-states (a saved file)"
                .into(),
        )
    })?;
    knn.report(&states, ids, truth, base);
    Ok(())
}

#[cfg(test)]
#[path = "eval_knn_tests.rs"]
mod tests;
