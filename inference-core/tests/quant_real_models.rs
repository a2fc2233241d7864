//! Kernels on real model tensors (skipped when the models are not in the local cache): for each
//! compute type, AVX2 == scalar (tight) and both close to the dequantised f32 product.

use inference_core::gguf::{GgmlType, Gguf};
use inference_core::kernels::{matmul, Isa, RowSelection};
use inference_core::parallel::Sequential;
use inference_core::quant::dequantize_row;
use inference_core::synthetic::Prng;
use std::collections::BTreeSet;

fn check_model(file: &str) {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let Ok(bytes) = std::fs::read(format!("{home}/.cache/probevisor/models/{file}")) else {
        eprintln!("skipping: {file} not present");
        return;
    };
    let g = Gguf::parse(&bytes).unwrap();
    let mut done = BTreeSet::new();
    let mut rng = Prng::new(4);
    for t in g.tensors() {
        if t.n_dims != 2 || !t.ty.is_supported_for_compute() || !done.insert(t.ty.name()) {
            continue;
        }
        let (k, n_tok) = (t.row_len(), 3usize);
        let rows: Vec<u32> = (0..t.n_rows().min(24) as u32).collect();
        let x: Vec<f32> = (0..k * n_tok).map(|_| rng.next_f32()).collect();
        let mut s = vec![0f32; rows.len() * n_tok];
        let mut v = vec![0f32; rows.len() * n_tok];
        matmul(
            t,
            &x,
            n_tok,
            &mut s,
            RowSelection::Rows(&rows),
            Isa::Scalar,
            &Sequential,
        )
        .unwrap();
        matmul(
            t,
            &x,
            n_tok,
            &mut v,
            RowSelection::Rows(&rows),
            Isa::Avx2,
            &Sequential,
        )
        .unwrap();
        let mut wrow = vec![0f32; k];
        for (j, &r) in rows.iter().enumerate() {
            dequantize_row(t.ty, t.row(r as usize).unwrap(), &mut wrow).unwrap();
            let wabs: f32 = wrow.iter().map(|w| w.abs()).sum();
            for tok in 0..n_tok {
                let xs = &x[tok * k..(tok + 1) * k];
                let exact: f32 = wrow.iter().zip(xs).map(|(a, b)| a * b).sum();
                let (a, b) = (s[tok * rows.len() + j], v[tok * rows.len() + j]);
                assert!(
                    (a - b).abs() <= 1e-5 * wabs + 1e-6,
                    "{} {}: scalar {a} vs avx2 {b}",
                    t.name,
                    t.ty
                );
                let tol = if matches!(t.ty, GgmlType::F32 | GgmlType::F16) {
                    1e-4 * wabs
                } else {
                    wabs / 127.0
                };
                assert!(
                    (a - exact).abs() <= tol,
                    "{} {}: {a} vs f32 {exact}",
                    t.name,
                    t.ty
                );
            }
        }
    }
    eprintln!("{file}: checked {done:?}");
}

#[test]
fn smollm2_kernels_match() {
    check_model("SmolLM2-135M-Instruct.Q4_1.gguf");
}

#[test]
fn gemma3_kernels_match() {
    check_model("gemma-3-270m-q4_k_m.gguf");
}

#[test]
fn qwen2_5_kernels_match() {
    check_model("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf");
}
