//! The policy gate at boot: reads the `model`, `policy` and `fs` boot modules, loads the model
//! zero-copy from its module memory, prints the logits digest, and prefills the gate's cached
//! prefix and calibration once (timed in TSC ticks). A bad module ends the boot (status=fail);
//! a missing model or policy leaves every tool call refused (fail closed). With `bridge=com2` the
//! allowed file tools go to the MCP bridge on COM2 (docs/bridge.md).

use super::com2::Com2;
use super::console::line;
use crate::bridge_client::{self, BridgeClient, ToolBridge, Unavailable};
use crate::gate_setup::{self, GateModules};
use crate::host_fs::MemFs;
use crate::host_services::{fail_closed, GovernedServices, ToolService, NO_POLICY_REASON};
use crate::tsc_clock::{self, ClockSource, FALLBACK_TSC_PER_MS};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicU64, Ordering};
use probe::audit::hex;

/// Reason given for every tool call when the image has a policy but no model.
pub const NO_MODEL_REASON: &str = "no model loaded";
static TSC_PER_MS: AtomicU64 = AtomicU64::new(FALLBACK_TSC_PER_MS);

fn rdtsc() -> u64 {
    // SAFETY: RDTSC only reads the time-stamp counter (CR4.TSD is clear at CPL 0 anyway).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Milliseconds since the TSC started, for the audit records and the rate limiter.
fn tsc_ms() -> u64 {
    rdtsc() / TSC_PER_MS.load(Ordering::Relaxed).max(1)
}

fn calibrate_tsc() {
    let max_leaf = core::arch::x86_64::__cpuid_count(0, 0).eax;
    let mhz = if max_leaf >= 0x16 {
        u64::from(core::arch::x86_64::__cpuid_count(0x16, 0).eax & 0xFFFF)
    } else {
        0
    };
    let (per_ms, source) = tsc_clock::choose(mhz, || super::pit::tsc_ticks_over_window(rdtsc));
    TSC_PER_MS.store(per_ms, Ordering::Relaxed);
    line(format_args!(
        "probevisor: audit clock: {per_ms} TSC ticks per ms ({})",
        match source {
            ClockSource::Cpuid16 => "CPUID 0x16",
            ClockSource::Pit => "measured against the PIT",
            ClockSource::Assumed => "assumed 1 GHz",
        }
    ));
}

/// The bridge for `bridge=com2`: COM2 if a UART answers there, else one that fails every call.
fn com2_bridge() -> Box<dyn ToolBridge> {
    match Com2::init() {
        Some(port) => {
            line(format_args!(
                "probevisor: bridge: allowed {} calls go to COM2 (0x2F8), {} ms per call",
                bridge_client::BRIDGED_TOOLS.join("/"),
                bridge_client::DEFAULT_TIMEOUT_MS
            ));
            Box::new(BridgeClient::new(port, tsc_ms))
        }
        None => {
            line(format_args!(
                "probevisor: bridge: no UART at COM2 (0x2F8): bridged calls fail"
            ));
            Box::new(Unavailable("no UART at COM2"))
        }
    }
}

/// Builds the host services; `Err` is a boot failure (bad policy, model or file system module).
/// `bridge`: send the allowed file tools to the MCP bridge on COM2 instead of the `fs` module's tree.
pub fn setup(modules: &GateModules, bridge: bool) -> Result<Box<dyn ToolService>, String> {
    calibrate_tsc();
    let fs = match modules.fs {
        Some(bytes) => MemFs::from_tar(bytes).map_err(|e| format!("fs module: {e}"))?,
        None => MemFs::default(),
    };
    line(format_args!("probevisor: fs: {} files", fs.file_count()));
    let policy = match modules.policy {
        Some(bytes) => Some(gate_setup::parse_policy(bytes)?),
        None => None,
    };
    let (Some(policy), Some(model_bytes)) = (policy, modules.model) else {
        let reason = if modules.policy.is_none() {
            NO_POLICY_REASON
        } else {
            NO_MODEL_REASON
        };
        line(format_args!(
            "probevisor: gate: fail closed, every tool call refused: {reason}"
        ));
        return Ok(Box::new(fail_closed(reason, tsc_ms)));
    };
    line(format_args!("probevisor: policy {:?} loaded", policy.name));
    let start = rdtsc();
    let engine = gate_setup::load_model(model_bytes).map_err(|e| format!("model module: {e}"))?;
    let engine: &'static _ = Box::leak(Box::new(engine));
    let digest = probe::LogitModel::model_digest(engine);
    let cfg = engine.model().config();
    line(format_args!(
        "probevisor: model loaded zero-copy from module memory: {} bytes, {} layers, embd {}, vocab {}, blake3 {} ({} TSC ticks)",
        model_bytes.len(),
        cfg.n_layer,
        cfg.n_embd,
        cfg.n_vocab,
        hex(&digest),
        rdtsc() - start
    ));
    let start = rdtsc();
    let logits = gate_setup::logits_digest(engine.model()).map_err(|e| format!("logits: {e}"))?;
    line(format_args!("logits-digest {}", hex(&logits)));
    line(format_args!(
        "probevisor: logits digest prompt {:?} took {} TSC ticks",
        gate_setup::DIGEST_PROMPT,
        rdtsc() - start
    ));
    let start = rdtsc();
    let pipeline = gate_setup::build_pipeline(policy, engine)?;
    line(format_args!(
        "probevisor: gate ready: prefix prefilled and calibrated in {} TSC ticks",
        rdtsc() - start
    ));
    let services = GovernedServices::new(Ok(pipeline), digest, fs, tsc_ms);
    Ok(if bridge {
        Box::new(services.with_bridge(com2_bridge()))
    } else {
        Box::new(services)
    })
}
