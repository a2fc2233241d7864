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

/// `run`: setup, build, boot under Bochs and show the VMX bring-up.
pub fn run_command(args: &[String]) -> Result<(), String> {
    let options = Options::parse(args, &["--timeout", "--cpu"], &[])?;
    crate::setup::setup(crate::setup::MODEL_NAMES)?;
    crate::run_status(crate::cargo().args(["build", "--workspace"]))?;
    let mut emulator = Emulator::bochs();
    if let (Some(model), Emulator::Bochs { cpu, .. }) = (options.value("--cpu"), &mut emulator) {
        *cpu = model.to_string();
    }
    boot(
        "run",
        emulator,
        "",
        &[],
        options.seconds("--timeout")?.unwrap_or(120),
        Expect::all(&["probevisor: VMXON ok", "PROBEVISOR-DONE status=ok"]),
    )
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
