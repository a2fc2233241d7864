//! Micro benchmark of the quantized matmul on SmolLM2-135M shapes (prefill of 128 tokens and
//! decode of 1 token). Run: `cargo run --release -p inference-core --features std --example kernels_bench`.

use inference_core::gguf::{GgmlType, Gguf};
use inference_core::kernels::{matmul, Isa, RowSelection};
use inference_core::parallel::{Parallel, Sequential, ThreadPool};
use inference_core::synthetic::{GgufWriter, Prng};
use std::time::Instant;

/// (row length, rows) of one SmolLM2-135M block: q, k, v, o, gate, up, down.
const BLOCK: [(u64, u64); 7] = [
    (576, 576),
    (576, 192),
    (576, 192),
    (576, 576),
    (576, 1536),
    (576, 1536),
    (1536, 576),
];

/// CPU time of the calling thread (ns), from /proc (the shared machine is often loaded, so
/// wall time alone overstates single-thread cost).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn bench(
    g: &Gguf,
    names: &[String],
    n_tok: usize,
    isa: Isa,
    par: &dyn Parallel,
    reps: usize,
) -> (f64, f64) {
    let mut rng = Prng::new(9);
    let xs: Vec<Vec<f32>> = names
        .iter()
        .map(|n| {
            (0..g.tensor(n).unwrap().row_len() * n_tok)
                .map(|_| rng.next_f32())
                .collect()
        })
        .collect();
    let mut outs: Vec<Vec<f32>> = names
        .iter()
        .map(|n| vec![0.0; g.tensor(n).unwrap().n_rows() * n_tok])
        .collect();
    let macs: usize = names
        .iter()
        .map(|n| g.tensor(n).unwrap().n_elements() as usize * n_tok)
        .sum();
    let mut best = f64::MAX;
    for _ in 0..reps {
        let (t0, c0) = (Instant::now(), thread_cpu_ns());
        for ((n, x), o) in names.iter().zip(&xs).zip(outs.iter_mut()) {
            matmul(
                g.tensor(n).unwrap(),
                x,
                n_tok,
                o,
                RowSelection::All,
                isa,
                par,
            )
            .unwrap();
        }
        let wall = t0.elapsed().as_secs_f64();
        // One thread: its CPU time is the cost without the other load on the machine.
        let cpu = (thread_cpu_ns() - c0) as f64 * 1e-9;
        best = best.min(if par.n_threads() == 1 && cpu > 0.0 {
            cpu
        } else {
            wall
        });
    }
    (best, 2.0 * macs as f64 / best / 1e9)
}

fn main() {
    let mut rng = Prng::new(1);
    // Optional arguments: a type name (default: Q4_1, Q8_0 and Q4_K) and prefill repetitions.
    let args: Vec<String> = std::env::args().collect();
    let types: Vec<GgmlType> = match args.get(1) {
        Some(n) => (0..40)
            .filter_map(GgmlType::from_u32)
            .filter(|t| t.name() == n.as_str())
            .collect(),
        None => vec![GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::Q4_K],
    };
    let reps: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(3);
    for ty in types {
        let mut w = GgufWriter::new();
        let mut names = Vec::new();
        for (i, &(k, n)) in BLOCK.iter().enumerate() {
            let (k, n) = if ty == GgmlType::Q4_K {
                (k.next_multiple_of(256), n)
            } else {
                (k, n)
            };
            let v: Vec<f32> = (0..k * n).map(|_| rng.next_f32() * 0.1).collect();
            let name = format!("m{i}");
            w.add_tensor_f32(&name, &[k, n], ty, &v).unwrap();
            names.push(name);
        }
        let bytes = w.to_bytes();
        let g = Gguf::parse(&bytes).unwrap();
        let pool = ThreadPool::new(2);
        for (label, isa) in [("scalar", Isa::Scalar), ("avx2", Isa::detect())] {
            for (threads, par) in [
                (1, &Sequential as &dyn Parallel),
                (2, &pool as &dyn Parallel),
            ] {
                if isa == Isa::Scalar && threads == 2 {
                    continue;
                }
                let (t, gops) = bench(&g, &names, 128, isa, par, reps);
                // 30 blocks per token of SmolLM2 (output projection excluded).
                let tok_s = 128.0 / (t * 30.0);
                println!("{ty} {label} threads={threads} prefill128: {:.2} ms/block, {gops:.1} GOP/s, ~{tok_s:.0} tok/s (30 blocks)", t * 1e3);
                let (t, gops) = bench(&g, &names, 1, isa, par, 20);
                println!("{ty} {label} threads={threads} decode: {:.3} ms/block, {gops:.1} GOP/s, ~{:.0} tok/s", t * 1e3, 1.0 / (t * 30.0));
            }
        }
    }
}
