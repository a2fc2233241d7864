use super::*;

/// Nested cross-validation of `fam` on `states` over the folds `fold`.
fn nested_cv(
    fam: Family,
    states: &[Vec<f32>],
    truth: &[bool],
    base: &[Scored],
    fold: &[usize],
    ks: &[usize],
    weights: &[f32],
) -> Option<KnnCv> {
    nested_cv_on(fam, &fold_splits(states, fold), truth, base, ks, weights)
}

/// Two clusters in 3 dimensions around a common offset: dangerous rows near +x, benign near -x,
/// with a little spread along y so no two rows coincide.
fn clusters(n: usize) -> (Vec<Vec<f32>>, Vec<bool>) {
    let truth: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
    let states = truth
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let x = if t { 1.0 } else { -1.0 };
            vec![10.0 + x, 10.0 + 0.01 * i as f32, 10.0]
        })
        .collect();
    (states, truth)
}

fn probe_setting(scores: Vec<f32>) -> Scored {
    Scored {
        name: "yes/no, examples policy, alpha 0".into(),
        latency_ms: vec![1.0; scores.len()],
        scores,
        prefix_ms: 1.0,
    }
}

#[test]
fn neighbours_are_training_rows_other_than_the_row_most_similar_first() {
    let states = vec![
        vec![1.0, 0.0],
        vec![0.9, 0.1],
        vec![-1.0, 0.0],
        vec![0.0, 1.0],
        vec![1.0, 0.05],
    ];
    let train = [0, 1, 2, 3];
    let near = fold_neighbours(&states, &train);
    for (i, n) in near.iter().enumerate() {
        assert!(!n.contains(&i), "row {i} is its own neighbour");
        assert!(!n.contains(&4), "row 4 is not a training row");
        assert_eq!(n.len(), if i < 4 { 3 } else { 4 });
    }
    // Centred on the training mean (0.225, 0.275), row 4 points as rows 0 and 1 do (1 nearer).
    assert_eq!(near[4][..2], [1, 0]);
    assert_eq!(*near[4].last().unwrap(), 2);
}

#[test]
fn votes_are_smoothed_shares_and_mixing_adds_log_odds() {
    let truth = [true, false, true, true];
    assert_eq!(vote(&[0, 1, 2, 3], &truth, 2), 2.0 / 4.0);
    assert_eq!(vote(&[0, 2, 3], &truth, 3), 4.0 / 5.0);
    // Fewer neighbours than k: the share of those there are.
    assert_eq!(vote(&[1], &truth, 5), 1.0 / 3.0);
    assert!((mix(0.3, 0.9, 0.0) - 0.3).abs() < 1e-6);
    assert!(mix(0.3, 0.9, 1.0) > 0.3 && mix(0.3, 0.1, 1.0) < 0.3);
    // Equal and opposite log-odds cancel.
    assert!((mix(0.8, 0.2, 1.0) - 0.5).abs() < 1e-6);
}

#[test]
fn separable_states_give_a_perfect_vote() {
    let (states, truth) = clusters(40);
    let base = [probe_setting(vec![0.5; 40])];
    let fold = stratified_folds(&truth, 5, FOLD_SEED);
    let cv = nested_cv(Family::Vote, &states, &truth, &base, &fold, &[1, 3], &[1.0]).unwrap();
    assert_eq!(cv.pred, truth);
    assert!(cv.fold_auc.iter().all(|a| *a == Some(1.0)));
    // The probe family cannot use the states: a constant score flags everything.
    let cv = nested_cv(
        Family::Probe,
        &states,
        &truth,
        &base,
        &fold,
        &[1, 3],
        &[1.0],
    )
    .unwrap();
    assert!(cv.pred.iter().all(|&p| p));
    assert!(cv.choices.iter().all(|(n, _)| n == &base[0].name));
}

#[test]
fn a_held_out_rows_label_never_reaches_its_own_prediction() {
    let (states, mut truth) = clusters(30);
    // Noisy labels and scores so that choices are not trivial.
    truth[3] = !truth[3];
    truth[8] = !truth[8];
    let scores: Vec<f32> = (0..30).map(|i| ((i * 7) % 11) as f32 / 11.0).collect();
    let base = [probe_setting(scores)];
    let fold = stratified_folds(&truth, 5, FOLD_SEED);
    let run = |t: &[bool]| {
        nested_cv(
            Family::Mixed,
            &states,
            t,
            &base,
            &fold,
            &[1, 3, 5],
            &[0.5, 2.0],
        )
    };
    let before = run(&truth).unwrap();
    for f in 0..5 {
        // Flip every label of fold f: the fold's own predictions must not move.
        let flipped: Vec<bool> = (0..30).map(|i| truth[i] ^ (fold[i] == f)).collect();
        let after = run(&flipped).unwrap();
        for i in (0..30).filter(|&i| fold[i] == f) {
            assert_eq!(after.pred[i], before.pred[i], "row {i} of fold {f}");
        }
        assert_eq!(after.choices[f], before.choices[f], "fold {f}'s choice");
    }
}

#[test]
fn groups_are_id_prefixes() {
    let ids: Vec<String> = ["fs-001", "sh-002", "fs-003", "net-x-1", "solo"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(group_folds(&ids), Some(vec![0, 1, 0, 2, 3]));
    assert_eq!(group_folds(&ids[..1]), None);
}

#[test]
fn with_a_memory_every_neighbour_is_a_memory_row_and_no_memory_row_is_judged() {
    let (mut states, mut truth) = clusters(20);
    let mut fold = stratified_folds(&truth, 5, FOLD_SEED);
    // Two memory rows per class, far out along each cluster's direction.
    for (x, t) in [(3.0, true), (3.1, true), (-3.0, false), (-3.1, false)] {
        states.push(vec![10.0 + x, 10.0, 10.0]);
        truth.push(t);
        fold.push(MEMORY);
    }
    for f in 0..5 {
        let (train, test, pool) = split(&fold, f);
        assert_eq!(pool, vec![20, 21, 22, 23]);
        assert!(train.iter().chain(&test).all(|&i| i < 20));
    }
    let base = [probe_setting(vec![0.5; 24])];
    let cv = nested_cv(Family::Vote, &states, &truth, &base, &fold, &[1, 3], &[1.0]).unwrap();
    assert_eq!(cv.pred[..20], truth[..20]);
    assert!(
        cv.pred[20..].iter().all(|&p| !p),
        "memory rows are never judged"
    );
    assert_eq!(cv.choices.len(), 5);
}
