//! K-quant weights packed for the prefill tile (`K8Packed`, `Model::pack_k_quant_weights`) give the
//! same bits as the weights read row by row: in one matmul, in shared-input matmuls, in a whole
//! synthetic model and in the verdict model. A wrong record layout (a swapped dword, a scale of
//! the wrong row, a lost high bit of a six-bit scale) changes the sums and fails these tests.

mod common;

use inference_core::gguf::{GgmlType, Gguf};
use inference_core::kernels::{Isa, K8Packed, MatmulContext, RowSelection, SharedJob};
use inference_core::model::{KvCache, LogitsRequest, Model};
use inference_core::parallel::{Sequential, ThreadPool};
use inference_core::synthetic::{tiny_llama_gguf_with, GgufWriter, Prng, TinyLlamaSpec};

fn random_vec(rng: &mut Prng, n: usize) -> Vec<f32> {
    // Rows of very different magnitudes, so the six-bit scales and mins use their top bits.
    (0..n)
        .map(|i| rng.next_f32() * (1 + (i / 32) % 7) as f32)
        .collect()
}

/// Fails at the first value whose bits differ (not by printing both vectors).
fn assert_same_bits(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!(
            "{what}: value {i} is {} where {} was expected",
            got[i], want[i]
        );
    }
}

/// A one-tensor GGUF of `rows` rows of `row_len` values of type `ty`.
fn weight_file(rng: &mut Prng, ty: GgmlType, row_len: usize, rows: usize) -> Vec<u8> {
    let mut wr = GgufWriter::new();
    let w = random_vec(rng, row_len * rows);
    wr.add_tensor_f32("w", &[row_len as u64, rows as u64], ty, &w)
        .unwrap();
    wr.to_bytes()
}

#[test]
fn packed_weights_give_the_bits_of_the_rows() {
    let mut rng = Prng::new(7);
    let pool = ThreadPool::new(2);
    for ty in [GgmlType::Q4_K, GgmlType::Q6_K] {
        let (row_len, rows) = (768, 24);
        let file = weight_file(&mut rng, ty, row_len, rows);
        let g = Gguf::parse(&file).unwrap();
        let w = g.tensor("w").unwrap();
        let packed = K8Packed::new(w).expect("a K-quant weight of 24 rows packs");
        assert!(packed.fits(w));
        assert_eq!(packed.n_rows(), rows);
        for n_tok in [1usize, 2, 9, 40, 70] {
            let x = random_vec(&mut rng, row_len * n_tok);
            let mut scalar = vec![0.0; rows * n_tok];
            MatmulContext::new(Isa::Scalar, &Sequential)
                .run(w, &x, n_tok, &mut scalar, RowSelection::All)
                .unwrap();
            let mut mm = MatmulContext::new(Isa::detect(), &pool);
            let mut from_rows = vec![0.0; rows * n_tok];
            mm.run(w, &x, n_tok, &mut from_rows, RowSelection::All)
                .unwrap();
            let mut from_packed = vec![0.0; rows * n_tok];
            mm.run_packed(
                w,
                Some(&packed),
                &x,
                n_tok,
                &mut from_packed,
                RowSelection::All,
            )
            .unwrap();
            let what = format!("{ty:?}, {n_tok} tokens");
            assert_same_bits(&from_packed, &from_rows, &what);
            assert_same_bits(&from_packed, &scalar, &format!("{what}, against scalar"));
            // Shared-input jobs read the packed copy too.
            let mut shared = vec![0.0; rows * n_tok];
            mm.run_shared_jobs(
                &x,
                n_tok,
                &mut [SharedJob {
                    w,
                    packed: Some(&packed),
                    out: &mut shared,
                }],
            )
            .unwrap();
            assert_same_bits(&shared, &from_rows, &format!("{what}, shared"));
        }
    }
}

#[test]
fn weights_the_tile_cannot_take_whole_are_not_packed_and_misfits_are_ignored() {
    let mut rng = Prng::new(8);
    let f13 = weight_file(&mut rng, GgmlType::Q4_K, 512, 13);
    let f8 = weight_file(&mut rng, GgmlType::Q8_0, 512, 16);
    let f16 = weight_file(&mut rng, GgmlType::Q4_K, 512, 16);
    let (g13, g8, g16) = (
        Gguf::parse(&f13).unwrap(),
        Gguf::parse(&f8).unwrap(),
        Gguf::parse(&f16).unwrap(),
    );
    assert!(K8Packed::new(g13.tensor("w").unwrap()).is_none(), "13 rows");
    assert!(K8Packed::new(g8.tensor("w").unwrap()).is_none(), "Q8_0");
    // The packed copy of a 16-row weight handed with the 13-row one is not used for it.
    let w13 = g13.tensor("w").unwrap();
    let other = K8Packed::new(g16.tensor("w").unwrap()).unwrap();
    assert!(!other.fits(w13));
    let x = random_vec(&mut rng, 512 * 5);
    let mut mm = MatmulContext::new(Isa::detect(), &Sequential);
    let (mut a, mut b) = (vec![0.0; 13 * 5], vec![0.0; 13 * 5]);
    mm.run(w13, &x, 5, &mut a, RowSelection::All).unwrap();
    mm.run_packed(w13, Some(&other), &x, 5, &mut b, RowSelection::All)
        .unwrap();
    assert_same_bits(&b, &a, "a packed copy that does not fit");
}

/// Logits of `tokens` after `model` evaluated them in one pass (all rows) and then one more token.
fn logits(model: &Model<'_>, tokens: &[u32]) -> Vec<f32> {
    let mut cache = KvCache::new(model, 256);
    let mut out = model
        .forward(&mut cache, tokens, LogitsRequest::All)
        .unwrap();
    out.extend(
        model
            .forward(&mut cache, &tokens[..1], LogitsRequest::Last)
            .unwrap(),
    );
    out
}

#[test]
fn a_packed_model_gives_the_logits_of_the_unpacked_one() {
    for ty in [GgmlType::Q4_K, GgmlType::Q6_K] {
        let mut spec = TinyLlamaSpec::new(11);
        (spec.n_embd, spec.n_ff, spec.weight_type) = (256, 512, ty);
        let file = tiny_llama_gguf_with(&spec).unwrap();
        let tokens: Vec<u32> = (0..23).map(|i| (i * 7 + 3) % 200).collect();
        let plain = Model::load(&file).unwrap();
        let mut packed = Model::load(&file).unwrap();
        let added = packed.pack_k_quant_weights();
        if Isa::detect() == Isa::Avx2 {
            // 2 layers x 7 matrices, each about as large packed as stored.
            assert!(added > 2 * 7 * 64 * 144, "{ty:?}: {added} bytes packed");
        } else {
            assert_eq!(added, 0, "nothing to pack without the AVX2 tile");
        }
        assert_eq!(
            packed.pack_k_quant_weights(),
            0,
            "{ty:?}: a second call packs nothing"
        );
        assert_same_bits(
            &logits(&packed, &tokens),
            &logits(&plain, &tokens),
            &format!("{ty:?}"),
        );
    }
}

#[test]
fn the_packed_verdict_model_gives_the_logits_of_the_unpacked_one() {
    let Some(bytes) = common::read_model(common::QWEN25CODER) else {
        return;
    };
    let mut plain = Model::load(&bytes).unwrap();
    plain.set_parallel(Box::new(ThreadPool::new(2)));
    let mut packed = Model::load(&bytes).unwrap();
    packed.set_parallel(Box::new(ThreadPool::new(2)));
    assert!(packed.pack_k_quant_weights() > 0 || Isa::detect() != Isa::Avx2);
    let tokens = plain.tokenizer().encode(
        "Action: delete_file {\"path\": \"/home/dev/webapp/target\", \"recursive\": true}",
        false,
        false,
    );
    assert!(tokens.len() > 16, "{} tokens", tokens.len());
    assert_same_bits(
        &logits(&packed, &tokens),
        &logits(&plain, &tokens),
        "Qwen2.5-Coder",
    );
}
