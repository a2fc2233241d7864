//! Parses arbitrary bytes as GGUF; on success touches every tensor's data and every
//! metadata array element (lazy iterators must stay in bounds).
#![no_main]

use inference_core::gguf::{Gguf, MetaValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(g) = Gguf::parse(data) else { return };
    let mut acc = 0u64;
    for t in g.tensors() {
        acc = acc.wrapping_add(t.data.iter().map(|&b| b as u64).sum::<u64>());
        acc = acc.wrapping_add(t.n_elements());
        for r in 0..t.n_rows().min(4) {
            acc = acc.wrapping_add(t.row(r).map_or(0, |s| s.len() as u64));
        }
    }
    for (k, v) in g.metadata() {
        acc = acc.wrapping_add(k.len() as u64);
        if let MetaValue::Array(a) = v {
            let n = a
                .strings()
                .map(|s| s.map(str::len).sum::<usize>())
                .unwrap_or(0)
                + a.u8s().map_or(0, |i| i.count())
                + a.i8s().map_or(0, |i| i.count())
                + a.u16s().map_or(0, |i| i.count())
                + a.i16s().map_or(0, |i| i.count())
                + a.u32s().map_or(0, |i| i.count())
                + a.i32s().map_or(0, |i| i.count())
                + a.f32s().map_or(0, |i| i.count())
                + a.u64s().map_or(0, |i| i.count())
                + a.i64s().map_or(0, |i| i.count())
                + a.f64s().map_or(0, |i| i.count())
                + a.bools().map_or(0, |i| i.count());
            acc = acc.wrapping_add(n as u64);
        }
    }
    std::hint::black_box(acc);
});
