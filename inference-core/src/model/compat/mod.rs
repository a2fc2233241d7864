//! The llama.cpp-compatible arithmetic mode ([`Arithmetic::LlamaCppCompat`]).
//!
//! llama.cpp's reference logits (`../shared/reference`) come from its CPU backend on an x86 machine
//! with AVX2: flash attention with an f16 KV cache, activations rounded to 8 bits with `127/amax`
//! and round-half-to-even, the quant dot products' 8-lane accumulation order, the RoPE table as
//! a running product and a polynomial `exp` in SiLU. Some prompts are ill-conditioned enough that
//! a different but equally accurate summation order moves their logits by more than the issue's
//! cosine bound allows, so this mode repeats those operations in the same order, scalar, one
//! output at a time. It is several times slower than [`Arithmetic::Native`] and tied to the
//! llama.cpp code path it copies (`docs/numerics.md` says which and what it reproduces).

mod dot;
mod forward;
mod glibc;
mod math;

pub(super) use forward::run;

/// How a [`Model`](super::Model) does its floating-point arithmetic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Arithmetic {
    /// This crate's own kernels (scalar or AVX2, threaded): fast, accurate, and batch-independent.
    #[default]
    Native,
    /// A scalar copy of llama.cpp's CPU arithmetic (x86, AVX2) for agreement with its logits to the
    /// last bit where its code path is the one copied. Several times slower than `Native`.
    LlamaCppCompat,
}

impl Arithmetic {
    /// Parses `native` or `llamacpp` (the CLI's `--arith` values).
    pub fn from_name(name: &str) -> Option<Arithmetic> {
        match name {
            "native" => Some(Arithmetic::Native),
            "llamacpp" => Some(Arithmetic::LlamaCppCompat),
            _ => None,
        }
    }
}
