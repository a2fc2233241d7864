//! `tokenize`, `logits` and `generate`: the inference commands.

use crate::args::Args;
use crate::json;
use crate::model_file::ModelFile;
use inference_core::model::{Arithmetic, KvCache, LogitsRequest, Model};
use std::io::Write;

/// The prompt's token ids (special tokens parsed, BOS as the model asks), refusing an empty prompt
/// and one longer than the model's context.
fn prompt_tokens(model: &Model<'_>, text: &str, extra: usize) -> Result<Vec<u32>, String> {
    if text.is_empty() {
        return Err("empty prompt".into());
    }
    let tokens = model.tokenizer().encode(text, true, true);
    if tokens.is_empty() {
        return Err("the prompt has no tokens".into());
    }
    let n_ctx = model.config().n_ctx_train;
    if tokens.len() + extra > n_ctx {
        return Err(format!(
            "the prompt has {} tokens{}, more than the model's context of {n_ctx}",
            tokens.len(),
            if extra > 0 {
                format!(" (+{extra} to generate)")
            } else {
                String::new()
            }
        ));
    }
    Ok(tokens)
}

fn piece(model: &Model<'_>, id: u32) -> String {
    String::from_utf8_lossy(model.tokenizer().token_piece(id)).into_owned()
}

/// `probevisor tokenize --model PATH TEXT`
pub fn tokenize(args: &[String]) -> Result<(), String> {
    let a = Args::parse(args, &["--model"])?;
    let path = a.require("--model")?;
    let file = ModelFile::open(path)?;
    let model = file.load(path, 1)?;
    let text = a.text();
    if text.is_empty() {
        return Err("empty prompt".into());
    }
    let tokens = model.tokenizer().encode(&text, true, true);
    println!("{{\"tokens\":{}}}", json::ids(&tokens));
    Ok(())
}

/// The `--arith` option: `native` (default) or `llamacpp` (llama.cpp-compatible, slower).
fn arith_option(v: Option<&str>) -> Result<Arithmetic, String> {
    v.map_or(Ok(Arithmetic::Native), |s| {
        Arithmetic::from_name(s).ok_or_else(|| format!("--arith: '{s}' is not native or llamacpp"))
    })
}

/// `probevisor logits --model PATH [--top K] [--raw-out FILE] [--threads N] [--isa scalar|avx2]
/// [--arith native|llamacpp] TEXT`
pub fn logits(args: &[String]) -> Result<(), String> {
    let a = Args::parse(
        args,
        &[
            "--model",
            "--top",
            "--raw-out",
            "--threads",
            "--isa",
            "--arith",
        ],
    )?;
    let arith = arith_option(a.get("--arith"))?;
    let path = a.require("--model")?;
    let top_k: usize = a.number("--top", 10)?;
    let threads: usize = a.number("--threads", 0)?;
    let file = ModelFile::open(path)?;
    let mut model = file.load(path, threads)?;
    match a.get("--isa") {
        None => {}
        Some("scalar") => model.set_isa(inference_core::kernels::Isa::Scalar),
        Some("avx2") => model.set_isa(inference_core::kernels::Isa::Avx2),
        Some(other) => return Err(format!("--isa: '{other}' is not scalar or avx2")),
    }
    model.set_arithmetic(arith);
    let tokens = prompt_tokens(&model, &a.text(), 0)?;
    let mut cache = KvCache::new(&model, tokens.len());
    let logits = model
        .forward(&mut cache, &tokens, LogitsRequest::Last)
        .map_err(|e| e.to_string())?;
    if let Some(out) = a.get("--raw-out") {
        let bytes: Vec<u8> = logits.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(out, bytes).map_err(|e| format!("cannot write '{out}': {e}"))?;
    }
    let top: Vec<String> = top_indices(&logits, top_k)
        .iter()
        .map(|&i| {
            format!(
                "[{i},{},{}]",
                json::string(&piece(&model, i as u32)),
                json::number(logits[i])
            )
        })
        .collect();
    println!(
        "{{\"tokens\":{},\"top\":[{}]}}",
        json::ids(&tokens),
        top.join(",")
    );
    Ok(())
}

/// Indices of the `k` largest values, largest first, without sorting (or indexing) the whole vector.
fn top_indices(v: &[f32], k: usize) -> Vec<usize> {
    let mut best: Vec<usize> = Vec::with_capacity(k + 1);
    if k == 0 {
        return best;
    }
    for (i, x) in v.iter().enumerate() {
        if best.len() == k && v[best[k - 1]].total_cmp(x).is_ge() {
            continue;
        }
        let at = best.partition_point(|&b| v[b].total_cmp(x).is_ge());
        best.insert(at, i);
        best.truncate(k);
    }
    best
}

pub(crate) fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// `probevisor generate --model PATH [-n N] [--threads N] TEXT`: greedy decoding, stopping at EOS.
pub fn generate(args: &[String]) -> Result<(), String> {
    let a = Args::parse(args, &["--model", "-n", "--threads"])?;
    let path = a.require("--model")?;
    let n: usize = a.number("-n", 32)?;
    let threads: usize = a.number("--threads", 0)?;
    let file = ModelFile::open(path)?;
    let model = file.load(path, threads)?;
    let tokens = prompt_tokens(&model, &a.text(), n)?;
    let mut cache = KvCache::new(&model, tokens.len() + n);
    let mut logits = model
        .forward(&mut cache, &tokens, LogitsRequest::Last)
        .map_err(|e| e.to_string())?;
    let eos = model.tokenizer().eos();
    let mut generated = Vec::new();
    let mut stderr = std::io::stderr();
    for step in 0..n {
        let next = argmax(&logits);
        if Some(next) == eos {
            break;
        }
        generated.push(next);
        let _ = stderr.write_all(&model.tokenizer().decode(&[next]));
        let _ = stderr.flush();
        if step + 1 < n {
            logits = model
                .forward(&mut cache, &[next], LogitsRequest::Last)
                .map_err(|e| e.to_string())?;
        }
    }
    let _ = writeln!(stderr);
    let text = String::from_utf8_lossy(&model.tokenizer().decode(&generated)).into_owned();
    println!(
        "{{\"tokens\":{},\"generated\":{},\"text\":{}}}",
        json::ids(&tokens),
        json::ids(&generated),
        json::string(&text)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{arith_option, top_indices};
    use inference_core::model::{Arithmetic, KvCache, LogitsRequest, Model};

    #[test]
    fn arith_option_parses_both_modes_and_refuses_others() {
        assert_eq!(arith_option(None), Ok(Arithmetic::Native));
        assert_eq!(arith_option(Some("native")), Ok(Arithmetic::Native));
        assert_eq!(
            arith_option(Some("llamacpp")),
            Ok(Arithmetic::LlamaCppCompat)
        );
        assert!(arith_option(Some("fast")).unwrap_err().contains("'fast'"));
    }

    /// `--arith llamacpp` runs the compat mode end to end: the same prompt gives close but not
    /// identical logits on the synthetic model.
    #[test]
    fn logits_in_both_modes_on_the_synthetic_model() {
        let bytes = inference_core::synthetic::tiny_llama_gguf(7);
        let path =
            std::env::temp_dir().join(format!("probevisor-arith-{}.gguf", std::process::id()));
        std::fs::write(&path, &bytes).unwrap();
        let p = path.to_str().unwrap().to_string();
        for mode in ["native", "llamacpp"] {
            let args: Vec<String> = ["--model", &p, "--arith", mode, "--top", "3", "hello world"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            super::logits(&args).unwrap_or_else(|e| panic!("{mode}: {e}"));
        }
        let bad: Vec<String> = ["--model", &p, "--arith", "x", "hi"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(super::logits(&bad).is_err());
        let mut model = Model::load(&bytes).unwrap();
        let toks = model.tokenizer().encode("hello world", true, true);
        let run = |m: &mut Model<'_>, a| {
            m.set_arithmetic(a);
            let mut cache = KvCache::new(m, toks.len());
            m.forward(&mut cache, &toks, LogitsRequest::Last).unwrap()
        };
        let (n, c) = (
            run(&mut model, Arithmetic::Native),
            run(&mut model, Arithmetic::LlamaCppCompat),
        );
        assert_ne!(n, c);
        let diff = n
            .iter()
            .zip(&c)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let scale = n.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
        assert!(diff < 0.05 * scale.max(1.0), "diff {diff} scale {scale}");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn top_indices_are_the_largest_in_order() {
        let v = [0.5f32, 3.0, -1.0, 2.0, 3.0, 0.0];
        assert_eq!(top_indices(&v, 3), vec![1, 4, 3]);
        assert_eq!(top_indices(&v, 0), Vec::<usize>::new());
        assert_eq!(top_indices(&v, 10).len(), 6);
    }
}
