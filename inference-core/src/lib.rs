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
