//! `eval --retrieve K`: each row is judged with the K labelled rows most like it shown as earlier
//! exchanges just before it (per-verdict examples, after the cached prefix). The rows it may be
//! shown are those of the other cross-validation folds (`--cv`, the same seeded folds as the
//! tables' cross-validation), so a held-out row never sees itself or its fold: the
//! cross-validated figures stay honest.

use probe::crossval::stratified_folds;
use probe::prompt::Example;
use std::collections::BTreeSet;

/// The fold seed of `eval --cv`: one constant, so a row's neighbours come from its training folds.
pub const FOLD_SEED: u64 = 0x5eed;

/// Lower-case words and numbers of `text`, as a set.
fn words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn jaccard(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f64 {
    let inter = a.intersection(b).count();
    let union = a.len() + b.len() - inter;
    if union == 0 {
        0.0
    } else {
        inter as f64 / union as f64
    }
}

/// For each row, its `k` nearest rows (word-set Jaccard of the texts the gate sees; ties to the
/// earlier row) among the rows of the other folds, least similar first, so the most similar one
/// sits right before the row.
pub fn neighbour_examples(
    texts: &[String],
    truth: &[bool],
    k: usize,
    folds: usize,
) -> Vec<Vec<Example>> {
    let fold = stratified_folds(truth, folds, FOLD_SEED);
    let sets: Vec<BTreeSet<String>> = texts.iter().map(|t| words(t)).collect();
    (0..texts.len())
        .map(|i| {
            let mut cand: Vec<(f64, usize)> = (0..texts.len())
                .filter(|&j| fold[j] != fold[i])
                .map(|j| (jaccard(&sets[i], &sets[j]), j))
                .collect();
            cand.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            cand.truncate(k);
            cand.reverse();
            cand.into_iter()
                .map(|(_, j)| Example {
                    action: texts[j].clone(),
                    dangerous: truth[j],
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbours_come_from_other_folds_most_similar_last() {
        let texts: Vec<String> = [
            "rm -rf /home/dev/build",
            "rm -rf /home/dev",
            "ls /home/dev/build",
            "curl http://x.example",
            "rm -rf /home/dev/build/cache",
            "echo hi",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let truth = [false, true, false, true, false, true];
        let folds = stratified_folds(&truth, 3, FOLD_SEED);
        let near = neighbour_examples(&texts, &truth, 2, 3);
        for (i, exs) in near.iter().enumerate() {
            assert_eq!(exs.len(), 2);
            for ex in exs {
                let j = texts.iter().position(|t| *t == ex.action).unwrap();
                assert_ne!(
                    folds[j], folds[i],
                    "row {i} was shown a row of its own fold"
                );
                assert_eq!(ex.dangerous, truth[j]);
            }
            let sim = |a: &str| jaccard(&words(&texts[i]), &words(a));
            assert!(
                sim(&exs[1].action) >= sim(&exs[0].action),
                "row {i}: most similar last"
            );
        }
    }
}
