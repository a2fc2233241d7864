//! Block decoding, activation quantisation, dot products (scalar vs AVX2 vs f32) and matmul.

use inference_core::gguf::{GgmlType, Gguf};
use inference_core::kernels::{dot_row, matmul, Isa, MatmulContext, RowSelection};
use inference_core::parallel::{Sequential, ThreadPool};
use inference_core::quant::{dequantize_row, QuantizedActs};
use inference_core::synthetic::{quantize_row, GgufWriter, Prng};

const TYPES: [GgmlType; 8] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q6_K,
];

fn f16(v: f32) -> [u8; 2] {
    half::f16::from_f32(v).to_bits().to_le_bytes()
}

fn deq(ty: GgmlType, b: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    dequantize_row(ty, b, &mut out).unwrap();
    out
}

#[test]
fn hand_computed_32_blocks() {
    // Q4_0: d = 0.5, byte j = 0x1f: low nibble 15 -> (15-8)*0.5, high nibble 1 -> (1-8)*0.5.
    let mut b = f16(0.5).to_vec();
    b.extend([0x1f; 16]);
    let v = deq(GgmlType::Q4_0, &b, 32);
    assert_eq!((v[0], v[15], v[16], v[31]), (3.5, 3.5, -3.5, -3.5));
    // Q4_1: d = 2, m = -1: 0x30 -> low 0 -> -1, high 3 -> 5.
    let mut b = f16(2.0).to_vec();
    b.extend(f16(-1.0));
    b.extend([0x30; 16]);
    let v = deq(GgmlType::Q4_1, &b, 32);
    assert_eq!((v[3], v[20]), (-1.0, 5.0));
    // Q5_0: d = 1, qh bit 0 and bit 16 set, qs[0] = 0x21: x0 = (1|16)-16 = 1, x16 = (2|16)-16 = 2;
    // element 1: qs[1] = 0 and no high bit -> -16.
    let mut b = f16(1.0).to_vec();
    b.extend(0x0001_0001u32.to_le_bytes());
    let mut qs = [0u8; 16];
    qs[0] = 0x21;
    b.extend(qs);
    let v = deq(GgmlType::Q5_0, &b, 32);
    assert_eq!((v[0], v[16], v[1], v[17]), (1.0, 2.0, -16.0, -16.0));
    // Q8_0: d = 0.25, qs = -4 -> -1.
    let mut b = f16(0.25).to_vec();
    b.extend([(-4i8) as u8; 32]);
    assert!(deq(GgmlType::Q8_0, &b, 32).iter().all(|&x| x == -1.0));
}

#[test]
fn hand_computed_k_blocks() {
    // Q4_K: d = 1, dmin = 0.5; sub-block 0 scale 2, min 4; sub-block 5 (j >= 4 packing) scale 33, min 17.
    let mut sc = [0u8; 12];
    sc[0] = 2;
    sc[4] = 4;
    sc[9] = (33 & 0xf) | ((17 & 0xf) << 4);
    sc[1] |= (33 >> 4) << 6;
    sc[5] |= (17 >> 4) << 6;
    let mut b = f16(1.0).to_vec();
    b.extend(f16(0.5));
    b.extend(sc);
    let mut qs = [0u8; 128];
    qs[0] = 0x07; // element 0 (sub-block 0, low nibble) = 7
    qs[64] = 0x90; // element 160 (sub-block 5 = high nibbles of qs[64..96]) = 9
    b.extend(qs);
    let v = deq(GgmlType::Q4_K, &b, 256);
    assert_eq!(v[0], 2.0 * 7.0 - 0.5 * 4.0);
    assert_eq!(v[160], 33.0 * 9.0 - 0.5 * 17.0);
    assert_eq!(v[161], -0.5 * 17.0);
    // Q6_K: d = 0.5; element 0 = (ql low 5 | qh bits0-1 = 1 -> 21) - 32 = -11 with scale 3;
    // element 96+128 = (ql[64+32] high 0xa | qh[32] bits 6-7 = 2 -> 42) - 32 = 10 with scale sc[14] = -2.
    let mut b = vec![0u8; 210];
    b[0] = 0x05;
    b[128] = 0x01;
    b[96] = 0xa0;
    b[160] = 0x80;
    b[192] = 3;
    b[192 + 14] = (-2i8) as u8;
    b[208..210].copy_from_slice(&f16(0.5));
    let v = deq(GgmlType::Q6_K, &b, 256);
    assert_eq!(v[0], 0.5 * 3.0 * -11.0);
    assert_eq!(v[224], 0.5 * -2.0 * 10.0);
}

fn random_vec(rng: &mut Prng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.next_f32()).collect()
}

#[test]
fn quantize_dequantize_round_trip_bounds() {
    let mut rng = Prng::new(3);
    // Worst-case error relative to the block's largest magnitude (|x| <= 1 here).
    for (ty, bound) in [
        (GgmlType::F32, 0.0),
        (GgmlType::F16, 1e-3),
        (GgmlType::Q4_0, 0.13), // the side opposite the max can clip by one step
        (GgmlType::Q4_1, 0.07), // half of a (2/15) step
        (GgmlType::Q5_0, 0.065), // one 1/16 step where it clips
        (GgmlType::Q8_0, 0.005),
        (GgmlType::Q4_K, 0.1), // half step plus 6-bit scale rounding
        (GgmlType::Q6_K, 0.03),
    ] {
        let x = random_vec(&mut rng, 512);
        let mut bytes = Vec::new();
        quantize_row(ty, &x, &mut bytes).unwrap();
        assert_eq!(bytes.len(), ty.row_bytes(512).unwrap() as usize);
        let y = deq(ty, &bytes, 512);
        let err = x
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(err <= bound, "{ty}: max error {err} > {bound}");
    }
}

#[test]
fn dequantize_refuses_bad_input() {
    let mut out = [0f32; 32];
    assert!(dequantize_row(GgmlType::Q4_0, &[0u8; 17], &mut out).is_err());
    assert!(dequantize_row(GgmlType::Q2_K, &[0u8; 84], &mut [0f32; 256]).is_err());
    assert!(dequantize_row(GgmlType::Q4_K, &[0u8; 144], &mut out).is_err());
}

/// Dot product of every type: scalar == AVX2 (tight), and close to the f32 dot of the
/// dequantised weight with the unquantised activations (bounded by activation rounding).
#[test]
fn dot_products_agree_across_isas_and_with_f32() {
    let mut rng = Prng::new(11);
    for ty in TYPES {
        for n in [256usize, 512, 1536] {
            let w = random_vec(&mut rng, n);
            let x: Vec<f32> = random_vec(&mut rng, n).iter().map(|v| v * 3.0).collect();
            let mut wb = Vec::new();
            quantize_row(ty, &w, &mut wb).unwrap();
            let wd = deq(ty, &wb, n);
            let acts = QuantizedActs::quantize(ty, &x, n).unwrap();
            let s = dot_row(ty, &wb, &acts, 0, n, Isa::Scalar).unwrap();
            let v = dot_row(ty, &wb, &acts, 0, n, Isa::Avx2).unwrap();
            let abs_sum: f32 = wd.iter().zip(&x).map(|(a, b)| (a * b).abs()).sum();
            assert!(
                (s - v).abs() <= 1e-5 * abs_sum + 1e-6,
                "{ty} n={n}: scalar {s} vs simd {v}"
            );
            let exact: f32 = wd.iter().zip(&x).map(|(a, b)| a * b).sum();
            // Activation rounding: |x - x_q| <= amax/254 per element (Q8_K: 1/254 of its block max).
            let act_bound: f32 = wd.iter().map(|a| a.abs()).sum::<f32>() * 3.0 / 254.0 + 1e-3;
            let tol = if ty == GgmlType::F32 || ty == GgmlType::F16 {
                1e-4 * abs_sum
            } else {
                act_bound
            };
            assert!(
                (s - exact).abs() <= tol,
                "{ty} n={n}: {s} vs f32 {exact} (tol {tol})"
            );
        }
    }
}

#[test]
fn isa_detection_finds_avx2_on_this_machine_when_the_cpu_has_it() {
    let has = std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("fma")
        && std::is_x86_feature_detected!("f16c");
    assert_eq!(Isa::detect() == Isa::Avx2, has);
    assert_eq!(Isa::Scalar.clamp_to_cpu(), Isa::Scalar);
}

#[test]
fn matmul_matches_row_dots_for_all_types_and_selections() {
    let mut rng = Prng::new(5);
    let pool = ThreadPool::new(2);
    for ty in TYPES {
        let (row_len, n_rows, n_tok) = (256usize, 37usize, 5usize);
        let w = random_vec(&mut rng, row_len * n_rows);
        let mut wr = GgufWriter::new();
        wr.add_tensor_f32("w", &[row_len as u64, n_rows as u64], ty, &w)
            .unwrap();
        let file = wr.to_bytes();
        let g = Gguf::parse(&file).unwrap();
        let t = g.tensor("w").unwrap();
        let x = random_vec(&mut rng, row_len * n_tok);
        let acts = QuantizedActs::quantize(ty, &x, row_len).unwrap();
        for isa in [Isa::Scalar, Isa::Avx2] {
            let mut out = vec![0f32; n_rows * n_tok];
            matmul(t, &x, n_tok, &mut out, RowSelection::All, isa, &Sequential).unwrap();
            let mut out_pool = vec![0f32; n_rows * n_tok];
            matmul(t, &x, n_tok, &mut out_pool, RowSelection::All, isa, &pool).unwrap();
            assert_eq!(out, out_pool, "{ty}: thread pool result differs");
            for tok in 0..n_tok {
                for r in 0..n_rows {
                    let d = dot_row(ty, t.row(r).unwrap(), &acts, tok, row_len, isa).unwrap();
                    let got = out[tok * n_rows + r];
                    // Tiles and row kernels round identically: results never depend on tiling.
                    assert_eq!(
                        got.to_bits(),
                        d.to_bits(),
                        "{ty} {isa:?} token {tok} row {r}"
                    );
                }
            }
            let sel = [36u32, 0, 7];
            let mut part = vec![0f32; sel.len() * n_tok];
            matmul(
                t,
                &x,
                n_tok,
                &mut part,
                RowSelection::Rows(&sel),
                isa,
                &pool,
            )
            .unwrap();
            for tok in 0..n_tok {
                for (j, &r) in sel.iter().enumerate() {
                    let (a, b) = (part[tok * sel.len() + j], out[tok * n_rows + r as usize]);
                    // Selected rows may take the row path where `All` took a tile.
                    assert_eq!(a.to_bits(), b.to_bits(), "{ty} {isa:?}: {a} vs {b}");
                }
            }
        }
        let mut out = vec![0f32; n_tok];
        assert!(matmul(
            t,
            &x,
            n_tok,
            &mut out,
            RowSelection::Rows(&[37]),
            Isa::Scalar,
            &Sequential
        )
        .is_err());
        assert!(matmul(
            t,
            &x[1..],
            n_tok,
            &mut out,
            RowSelection::Rows(&[0]),
            Isa::Scalar,
            &Sequential
        )
        .is_err());
    }
}

/// The K-quant tiles (Q4_K, Q6_K x Q8_K) on shapes with row and token remainders, several
/// superblocks per row, more tokens than one tile call takes and activations at the Q8_K
/// extremes: the AVX2 matmul (8-row tiles over superblock-major activations quantised by the AVX2
/// quantiser; a short last row group repeats its last row) equals the scalar matmul bit for bit,
/// since every path folds each superblock's exact integer sums into f32 by the same formula.
#[test]
fn k_quant_tiles_match_scalar_with_remainders() {
    let mut rng = Prng::new(23);
    let pool = ThreadPool::new(2);
    for ty in [GgmlType::Q4_K, GgmlType::Q6_K] {
        for (row_len, n_rows, n_tok) in [
            (1536usize, 21usize, 11usize),
            (512, 8, 4),
            (256, 3, 7),
            (256, 16, 70),
        ] {
            let w = random_vec(&mut rng, row_len * n_rows);
            let mut wr = GgufWriter::new();
            wr.add_tensor_f32("w", &[row_len as u64, n_rows as u64], ty, &w)
                .unwrap();
            let file = wr.to_bytes();
            let g = Gguf::parse(&file).unwrap();
            let t = g.tensor("w").unwrap();
            // Token 0 is all at one extreme (quantises to -128 / 127), the rest random.
            let mut x: Vec<f32> = random_vec(&mut rng, row_len * n_tok)
                .iter()
                .map(|v| v * 4.0)
                .collect();
            x[..row_len].iter_mut().for_each(|v| *v = -1.0);
            let mut simd = vec![0f32; n_rows * n_tok];
            matmul(t, &x, n_tok, &mut simd, RowSelection::All, Isa::Avx2, &pool).unwrap();
            let mut scalar = vec![0f32; n_rows * n_tok];
            matmul(
                t,
                &x,
                n_tok,
                &mut scalar,
                RowSelection::All,
                Isa::Scalar,
                &Sequential,
            )
            .unwrap();
            for (i, (s, v)) in scalar.iter().zip(&simd).enumerate() {
                let (tok, r) = (i / n_rows, i % n_rows);
                assert_eq!(
                    s.to_bits(),
                    v.to_bits(),
                    "{ty} {row_len}x{n_rows} token {tok} row {r}: scalar {s} vs simd {v}"
                );
            }
        }
    }
}

/// `MatmulContext::run_shared` (one quantisation and one dispatch for weights that read the same
/// input) gives exactly what one `matmul` per weight gives: for K-quant weights of both types
/// (the 8-row tile, Q and K and V of Q4_K_M mix them), with row counts that are not multiples of
/// 8, and for a type without the tile (one `run` per weight).
#[test]
fn shared_input_matmuls_equal_separate_ones() {
    let mut rng = Prng::new(41);
    let pool = ThreadPool::new(2);
    let row_len = 512;
    for (types, n_tok) in [
        ([GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q4_K], 9usize),
        ([GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q4_K], 1),
        ([GgmlType::Q8_0, GgmlType::Q8_0, GgmlType::Q8_0], 6),
    ] {
        let rows = [24usize, 13, 40];
        let mut wr = GgufWriter::new();
        for (i, (&ty, &r)) in types.iter().zip(&rows).enumerate() {
            let w = random_vec(&mut rng, row_len * r);
            wr.add_tensor_f32(&format!("w{i}"), &[row_len as u64, r as u64], ty, &w)
                .unwrap();
        }
        let file = wr.to_bytes();
        let g = Gguf::parse(&file).unwrap();
        let ws: Vec<_> = (0..3)
            .map(|i| g.tensor(&format!("w{i}")).unwrap())
            .collect();
        let x = random_vec(&mut rng, row_len * n_tok);
        let mut outs: Vec<Vec<f32>> = rows.iter().map(|r| vec![0.0; r * n_tok]).collect();
        let mut mm = MatmulContext::new(Isa::detect(), &pool);
        let mut jobs: Vec<(&_, &mut [f32])> = ws
            .iter()
            .zip(outs.iter_mut())
            .map(|(w, o)| (*w, &mut o[..]))
            .collect();
        mm.run_shared(&x, n_tok, &mut jobs).unwrap();
        for (i, w) in ws.iter().enumerate() {
            let mut one = vec![0.0; rows[i] * n_tok];
            matmul(
                w,
                &x,
                n_tok,
                &mut one,
                RowSelection::All,
                Isa::detect(),
                &Sequential,
            )
            .unwrap();
            assert_eq!(outs[i], one, "{:?} weight {i}, {n_tok} tokens", types[i]);
        }
        let mut short = [0.0; 3];
        let bad = mm.run_shared(&x, n_tok, &mut [(ws[0], &mut short[..])]);
        assert!(bad.is_err(), "a wrong output length is refused");
    }
}

/// The attention vector routines: dot and softmax close to plain f32 code, packed-key scores equal
/// to one FMA chain per score, and the register-held weighted row sum bit-identical to repeated
/// axpy (so blocking keys never changes results).
#[test]
fn vec_f32_routines_match_plain_code() {
    let Some(v) = inference_core::kernels::VecF32::new(Isa::Avx2) else {
        return; // no AVX2 on this CPU: nothing to compare
    };
    let mut rng = Prng::new(31);
    for n in [1usize, 7, 8, 64, 128, 131] {
        let (a, b) = (random_vec(&mut rng, n), random_vec(&mut rng, n));
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let abs: f32 = a.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum();
        assert!(
            (v.dot(&a, &b) - plain).abs() <= 1e-5 * abs + 1e-7,
            "dot n={n}"
        );
        let mut s: Vec<f32> = a.iter().map(|x| x * 40.0 - 20.0).collect();
        let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f64> = s.iter().map(|x| ((x - max) as f64).exp()).collect();
        let sum: f64 = e.iter().sum();
        v.softmax(&mut s);
        for (got, want) in s.iter().zip(&e) {
            let want = (want / sum) as f32;
            assert!(
                (got - want).abs() <= 4e-7 * want + 1e-12,
                "softmax n={n}: {got} vs {want}"
            );
        }
    }
    let (w, keys, stride) = (128usize, 37usize, 256usize);
    let rows = random_vec(&mut rng, (keys - 1) * stride + w);
    let p = random_vec(&mut rng, keys);
    let mut fast = random_vec(&mut rng, w);
    let mut slow = fast.clone();
    assert!(v.weighted_rows(&mut fast, &p, &rows, stride));
    for (j, &pj) in p.iter().enumerate() {
        v.axpy(&mut slow, pj, &rows[j * stride..j * stride + w]);
    }
    assert_eq!(fast, slow);
    assert!(!v.weighted_rows(&mut fast[..12], &p, &rows, stride));
    // Keys packed 8 at a time, dims outermost, scored with the keys in the lanes: each score is
    // exactly one FMA chain over the dimensions in order, then the scale (bit for bit), for one
    // and for several blocks (pairs and a last single block); refused beyond 6 heads or when the
    // head_dim is not a multiple of 8.
    for (hd, heads, keys) in [
        (128usize, 6usize, 21usize),
        (64, 3, 8),
        (256, 4, 17),
        (8, 1, 3),
    ] {
        let stride = hd * 2 + 8;
        let krows = random_vec(&mut rng, keys * stride);
        let q = random_vec(&mut rng, heads * hd);
        let nb = keys.div_ceil(8);
        let zero = vec![0.0f32; hd];
        let mut packed = vec![f32::NAN; nb * 8 * hd];
        for (b, block) in packed.chunks_exact_mut(8 * hd).enumerate() {
            let rows: [&[f32]; 8] = std::array::from_fn(|i| {
                let j = 8 * b + i;
                if j < keys {
                    &krows[j * stride..][..hd]
                } else {
                    &zero[..]
                }
            });
            assert!(v.pack_keys8(rows, block));
        }
        let (scale, out_stride) = (0.125f32, nb * 8 + 5);
        let mut got = vec![f32::NAN; (heads - 1) * out_stride + nb * 8];
        assert!(v.scores8(&q, heads, &packed, scale, &mut got, out_stride));
        for h in 0..heads {
            for j in 0..keys {
                let k = &krows[j * stride..][..hd];
                let chain = (0..hd).fold(0.0f32, |acc, d| q[h * hd + d].mul_add(k[d], acc));
                assert_eq!(
                    got[h * out_stride + j].to_bits(),
                    (chain * scale).to_bits(),
                    "scores8 head_dim {hd} heads {heads} head {h} key {j}"
                );
            }
        }
    }
    let q7 = random_vec(&mut rng, 7 * 64);
    let blocks = random_vec(&mut rng, 8 * 64);
    let mut out = vec![0.0f32; 7 * 8];
    assert!(!v.scores8(&q7, 7, &blocks, 1.0, &mut out, 8));
    let short = random_vec(&mut rng, 12);
    let mut block = vec![0.0f32; 8 * 12];
    assert!(!v.pack_keys8([&short[..]; 8], &mut block));
    // The value sum for a group's heads in one pass: bit-identical to one weighted_rows per head.
    for (w, heads, keys) in [(128usize, 6usize, 37usize), (64, 3, 1), (16, 2, 5)] {
        let (stride, p_stride) = (w * 2 + 16, keys + 3);
        let rows = random_vec(&mut rng, (keys - 1) * stride + w);
        let p = random_vec(&mut rng, (heads - 1) * p_stride + keys);
        let mut fast = random_vec(&mut rng, heads * w);
        let mut slow = fast.clone();
        assert!(v.weighted_rows_heads(&mut fast, heads, &p, p_stride, keys, &rows, stride));
        for (h, oh) in slow.chunks_exact_mut(w).enumerate() {
            assert!(v.weighted_rows(oh, &p[h * p_stride..][..keys], &rows, stride));
        }
        assert_eq!(
            fast, slow,
            "weighted_rows_heads width {w} heads {heads} keys {keys}"
        );
    }
    let (rows, p) = (random_vec(&mut rng, 4 * 128), random_vec(&mut rng, 8 * 4));
    for (w, heads) in [(72usize, 2usize), (128, 7)] {
        let mut o = vec![0.0f32; w * heads];
        assert!(
            !v.weighted_rows_heads(&mut o, heads, &p, 4, 4, &rows, 128),
            "{w} x {heads}"
        );
    }
    let mut o = vec![0.0f32; 2 * 64];
    assert!(
        !v.weighted_rows_heads(&mut o, 2, &p[..5], 4, 4, &rows, 128),
        "too few weights"
    );
}

/// Q8_K activation rounding (llama.cpp's): the scale comes from the first value of largest
/// magnitude, so its sign (and every rounded byte) depends on which of two equal magnitudes comes
/// first; an all-zero block stays zero.
#[test]
fn q8_k_scale_follows_the_first_value_of_largest_magnitude() {
    use inference_core::quant::quantize_row_q8_k;
    let mut x = vec![0.5f32; 256];
    x[3] = -3.0;
    x[200] = 3.0;
    let mut out = Vec::new();
    quantize_row_q8_k(&x, &mut out).unwrap();
    assert!((out[0].d - 3.0 / 127.0).abs() < 1e-8, "{}", out[0].d);
    assert_eq!(
        (out[0].qs[3], out[0].qs[200], out[0].qs[0]),
        (-127, 127, 21)
    );
    x.swap(3, 200);
    out.clear();
    quantize_row_q8_k(&x, &mut out).unwrap();
    assert!((out[0].d + 3.0 / 127.0).abs() < 1e-8, "{}", out[0].d);
    assert_eq!(
        (out[0].qs[3], out[0].qs[200], out[0].qs[0]),
        (-127, 127, -21)
    );
    assert_eq!(out[0].bsums[0], -21 * 15 - 127);
    out.clear();
    quantize_row_q8_k(&[0.0; 256], &mut out).unwrap();
    assert_eq!(
        (out[0].d, out[0].qs, out[0].bsums),
        (0.0, [0; 256], [0; 16])
    );
}
