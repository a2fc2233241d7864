//! `cargo xtask qemu`, `cargo xtask bochs` and `cargo xtask run` (the main job): build the image,
//! boot it, stream the serial log, and judge the run by its markers.

use std::time::Duration;

use crate::emulator::{self, Emulator, Expect, RunConfig};
use crate::image::{self, Module};
use crate::Options;

/// `qemu [--cmdline STR] [--timeout SECS] [--kvm]`: passes on status=ok, or no-vtx under TCG.
pub fn qemu_command(args: &[String]) -> Result<(), String> {
    let options = Options::parse(args, &["--cmdline", "--timeout", "--module"], &["--kvm"])?;
    let kvm = options.switch("--kvm");
    let expect = if kvm {
        Expect::all(&["PROBEVISOR-DONE status=ok"])
    } else {
        Expect::any_of(&[
            &["PROBEVISOR-DONE status=ok"],
            &["PROBEVISOR-DONE status=no-vtx"],
        ])
    };
    boot(
        "qemu",
        Emulator::Qemu {
            kvm,
            memory_mib: 1024,
        },
        options.value("--cmdline").unwrap_or(""),
        &modules(&options)?,
        options.seconds("--timeout")?.unwrap_or(60),
        expect,
    )
}

/// `bochs [--cmdline STR] [--timeout SECS] [--cpu MODEL]`: passes on status=ok.
pub fn bochs_command(args: &[String]) -> Result<(), String> {
    let options = Options::parse(args, &["--cmdline", "--timeout", "--cpu", "--module"], &[])?;
    let mut emulator = Emulator::bochs();
    if let (Some(model), Emulator::Bochs { cpu, .. }) = (options.value("--cpu"), &mut emulator) {
        *cpu = model.to_string();
    }
    boot(
        "bochs",
        emulator,
        options.value("--cmdline").unwrap_or(""),
        &modules(&options)?,
        options.seconds("--timeout")?.unwrap_or(120),
        Expect::all(&["PROBEVISOR-DONE status=ok"]),
    )
}

/// `run`: the main job. Setup, build, then boot the hypervisor under Bochs (VT-x emulated) with the
/// example agents, the tiny synthetic model and policies/tiny-model.toml as boot modules; stream the
/// serial log (VMX bring-up, each guest's console, one AUDIT line per decision), then check the
/// verdicts and verify the audit chain on the host. Bochs is far too slow for a real model, so the
/// verdicts come from the tiny model and the policy's rule layers: the run says so.
pub fn run_command(args: &[String]) -> Result<(), String> {
    let options = Options::parse(args, &["--audit-out"], &[])?;
    crate::setup::setup(crate::setup::MODEL_NAMES)?;
    crate::run_status(crate::cargo().args(["build", "--workspace"]))?;
    let elf = image::build_hypervisor()?;
    println!(
        "xtask: engine Bochs (VT-x emulated; no KVM with nested VT-x here); model: the tiny synthetic \
         llama model (a real model is too slow under Bochs), so verdicts rest on the policy's rule layers"
    );
    let audit_out = options.value("--audit-out").map(std::path::PathBuf::from);
    crate::test::gate_boot_test(&elf, true, audit_out.as_deref())
}

/// Builds an image with `cmdline`, boots it with the serial log streamed, reports the verdict.
fn boot(
    name: &str,
    emulator: Emulator,
    cmdline: &str,
    modules: &[Module],
    timeout_s: u64,
    expect: Expect,
) -> Result<(), String> {
    let iso = image::build_image(cmdline, modules, name)?;
    println!(
        "xtask: booting {} under {}",
        iso.display(),
        describe(&emulator)
    );
    let report = emulator::run(&RunConfig {
        name: name.to_string(),
        emulator,
        iso,
        timeout: Duration::from_secs(timeout_s),
        expect,
        stream: true,
    })?;
    println!(
        "xtask: {} after {:.1} s: {} (log: {})",
        if report.passed { "passed" } else { "FAILED" },
        report.elapsed.as_secs_f64(),
        report.reason,
        report.run_dir.join("serial.log").display()
    );
    if report.passed {
        Ok(())
    } else {
        Err(report.reason)
    }
}

/// The `--module PATH[:NAME]` options.
fn modules(options: &Options) -> Result<Vec<Module>, String> {
    options
        .values("--module")
        .into_iter()
        .map(Module::parse)
        .collect()
}

fn describe(emulator: &Emulator) -> String {
    match emulator {
        Emulator::Qemu { kvm: true, .. } => "QEMU (KVM)".into(),
        Emulator::Qemu { kvm: false, .. } => "QEMU (TCG, no VT-x)".into(),
        Emulator::Bochs { cpu, .. } => format!("Bochs (cpu {cpu}, VT-x emulated)"),
    }
}
