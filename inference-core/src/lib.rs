//! GGUF quantized transformer inference, no_std + alloc.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
extern crate alloc;
