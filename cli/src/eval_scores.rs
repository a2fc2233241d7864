//! Per-row scores of `probevisor eval`: written with `--scores-out`, read back with `--scores-in`, so the
//! tables can be printed again at another threshold (or cross-validated) without running the model.

use crate::args::Args;
use crate::eval_cmd::add_cvs;
use crate::eval_report::{Report, Scored};
use crate::eval_rows::{load_rows, scored_rows};
use crate::eval_whole_gate::{whole_gate_settings, WITHOUT_PROBE};
use crate::probe_cmds::load_policy;
use probe::eval_data::EvalRow;
use probe::json::{self, Value};

/// The prefix of a whole-gate setting's name (see `eval --whole-gate`).
pub const WHOLE_GATE: &str = "whole gate, ";

/// One JSON line per row: its id, whether it is harmful, and its score under each setting.
pub fn write_scores(path: &str, rows: &[EvalRow], scored: &[Scored]) -> Result<(), String> {
    use crate::json::string as js;
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let scores: Vec<String> = scored
            .iter()
            .map(|s| format!("{}:{}", js(&s.name), s.scores[i]))
            .collect();
        out.push_str(&format!(
            "{{\"id\":{},\"harmful\":{},\"scores\":{{{}}}}}\n",
            js(&row.id),
            row.harmful,
            scores.join(",")
        ));
    }
    std::fs::write(path, out).map_err(|e| format!("--scores-out {path}: {e}"))
}

/// Scores read back: the truth of each row and the settings (probe settings first, then whole-gate
/// ones, each group in name order).
pub struct ReadScores {
    /// Each row's id, in file order.
    pub ids: Vec<String>,
    pub truth: Vec<bool>,
    pub scored: Vec<Scored>,
    /// How many of `scored` are probe settings (the rest are whole-gate settings).
    pub probe_settings: usize,
}

/// Parses a `--scores-out` file. Every line must name the same settings.
pub fn read_scores(path: &str) -> Result<ReadScores, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("--scores-in {path}: {e}"))?;
    let mut truth = Vec::new();
    let mut ids = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut columns: Vec<Vec<f32>> = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let at = |e: &str| format!("--scores-in {path} line {}: {e}", n + 1);
        let v = json::parse(line).map_err(|e| at(&e))?;
        let harmful = match v.get("harmful") {
            Some(Value::Bool(b)) => *b,
            _ => return Err(at("no boolean \"harmful\"")),
        };
        let scores = v
            .get("scores")
            .and_then(Value::as_object)
            .ok_or_else(|| at("no \"scores\" object"))?;
        if names.is_empty() {
            let (gate, probe): (Vec<&String>, Vec<&String>) =
                scores.keys().partition(|k| k.starts_with(WHOLE_GATE));
            names = probe.into_iter().chain(gate).cloned().collect();
            columns = vec![Vec::new(); names.len()];
        }
        if scores.len() != names.len() {
            return Err(at("a different set of settings than the first line"));
        }
        for (name, column) in names.iter().zip(columns.iter_mut()) {
            let s = scores
                .get(name)
                .and_then(Value::as_f64)
                .ok_or_else(|| at(&format!("no score for {name:?}")))?;
            column.push(s as f32);
        }
        truth.push(harmful);
        ids.push(
            v.get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        );
    }
    if truth.is_empty() {
        return Err(format!("--scores-in {path}: no rows"));
    }
    let probe_settings = names.iter().filter(|n| !n.starts_with(WHOLE_GATE)).count();
    let scored = names
        .into_iter()
        .zip(columns)
        .map(|(name, scores)| Scored {
            name,
            scores,
            latency_ms: Vec::new(),
            prefix_ms: f64::NAN,
        })
        .collect();
    Ok(ReadScores {
        ids,
        truth,
        scored,
        probe_settings,
    })
}

/// `eval --scores-in FILE`: the tables from saved scores, at `--threshold` (default 0.5), with `--cv`.
pub fn report_from_scores(args: &Args, file: &str) -> Result<(), String> {
    let mut read = crate::eval_scores::read_scores(file)?;
    let threshold: f32 = args.number("--threshold", 0.5)?;
    let mut other_layers = None;
    if args.get("--whole-gate").is_some_and(|v| v != "false") {
        // The other layers again, from the dataset and the policy given now (no model needed).
        let dataset = args.get("--dataset").ok_or(
            "--scores-in with --whole-gate needs --dataset (and --policy) to run the other layers",
        )?;
        let policy = load_policy(args)?;
        let rows = load_rows(args, dataset)?;
        let rows = scored_rows(rows, &policy, true);
        if rows.iter().map(|r| &r.id).ne(read.ids.iter()) {
            return Err(format!(
                "--scores-in {file}: its rows are not {dataset}'s rows under this policy"
            ));
        }
        let agent = args.get("--agent").unwrap_or("cli");
        read.scored.truncate(read.probe_settings);
        let (gate, denied) = whole_gate_settings(&policy, &rows, agent, &read.scored)?;
        read.scored.extend(gate);
        other_layers = Some(denied);
    }
    if args.get("--knn-layers").is_some() {
        let base = &read.scored[..read.probe_settings];
        return crate::eval_knn::run_saved(args, &read.ids, &read.truth, base);
    }
    let mut report = Report::new(file, "(scores read back)", &read.truth, "-", threshold);
    report.scored = read.scored;
    if let Some(denied) = other_layers {
        report
            .ablation
            .push((WITHOUT_PROBE.to_string(), denied, Vec::new()));
    }
    if let Some(k) = args.get("--cv") {
        let k: usize = k
            .parse()
            .map_err(|_| format!("--cv: '{k}' is not a count"))?;
        let all = report.scored.len();
        add_cvs(&mut report, &read.truth, k, read.probe_settings, all)?;
    }
    report.print(args.get("--json").is_some_and(|v| v != "false"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use probe::action::Action;

    #[test]
    fn scores_round_trip_and_bad_files_are_refused() {
        let rows: Vec<EvalRow> = ["a", "b"]
            .iter()
            .enumerate()
            .map(|(i, id)| EvalRow {
                action: Action::text("x"),
                harmful: i == 1,
                id: id.to_string(),
            })
            .collect();
        let scored = vec![
            Scored {
                name: format!("{WHOLE_GATE}yes/no"),
                scores: vec![1.0, 0.25],
                latency_ms: vec![],
                prefix_ms: 0.0,
            },
            Scored {
                name: "yes/no".into(),
                scores: vec![0.5, 0.25],
                latency_ms: vec![],
                prefix_ms: 0.0,
            },
        ];
        let dir = std::env::temp_dir().join(format!("pv-scores-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.jsonl");
        let p = path.to_str().unwrap();
        write_scores(p, &rows, &scored).unwrap();
        let back = read_scores(p).unwrap();
        assert_eq!(back.truth, vec![false, true]);
        assert_eq!(back.ids, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(back.probe_settings, 1);
        assert_eq!(back.scored[0].name, "yes/no");
        assert_eq!(back.scored[0].scores, vec![0.5, 0.25]);
        assert_eq!(back.scored[1].scores, vec![1.0, 0.25]);
        std::fs::write(&path, "{\"id\":\"a\",\"scores\":{}}\n").unwrap();
        assert!(read_scores(p).err().unwrap().contains("line 1"));
        std::fs::write(&path, "").unwrap();
        assert!(read_scores(p).err().unwrap().contains("no rows"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
