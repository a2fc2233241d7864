//! `synth-model OUT [--seed N]`: writes the synthetic tiny llama GGUF (the emulator tests' model);
//! `blake3 FILE`: prints the file's blake3 hex digest (to compare raw logits with the hypervisor's).

use crate::args::Args;

/// `probevisor synth-model OUT [--seed N]`
pub fn synth_model(args: &[String]) -> Result<(), String> {
    let a = Args::parse(args, &["--seed"])?;
    let seed: u64 = a.number("--seed", 7)?;
    let out = a.text();
    if out.is_empty() {
        return Err("usage: probevisor synth-model OUT [--seed N]".into());
    }
    let bytes = inference_core::synthetic::tiny_llama_gguf(seed);
    std::fs::write(&out, &bytes).map_err(|e| format!("cannot write '{out}': {e}"))?;
    println!(
        "{out}: {} bytes, blake3 {}",
        bytes.len(),
        probe::audit::hex(&probe::audit::digest(&bytes))
    );
    Ok(())
}

/// `probevisor blake3 FILE`
pub fn blake3_file(args: &[String]) -> Result<(), String> {
    let [path] = args else {
        return Err("usage: probevisor blake3 FILE".into());
    };
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read '{path}': {e}"))?;
    println!("{}", probe::audit::hex(&probe::audit::digest(&bytes)));
    Ok(())
}
