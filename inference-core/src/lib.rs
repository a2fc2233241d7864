//! GGUF quantized transformer inference, no_std + alloc.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
extern crate alloc;

pub mod gguf;
pub mod kernels;
pub mod model;
pub mod parallel;
pub mod quant;
pub mod synthetic;
pub mod tokenizer;

/// The first `len` elements of a buffer kept between calls, growing it (filled with `fill`) when
/// it is shorter. The contents are whatever the last user left: callers overwrite every element
/// they read.
pub(crate) fn scratch<T: Clone>(buf: &mut alloc::vec::Vec<T>, len: usize, fill: T) -> &mut [T] {
    if buf.len() < len {
        buf.resize(len, fill);
    }
    &mut buf[..len]
}
