//! `cargo xtask test`: every test, in order: setup, host unit tests of every crate (models
//! required), clippy (host crates and the bare-metal image), the image build, then the emulator
//! boot tests. Each check prints `test <name> ... ok|FAILED`; the last line is `N passed, M failed`.

use std::time::{Duration, Instant};

use crate::emulator::{self, Emulator, Expect, RunConfig};
use crate::image::{self, IMAGE_TARGET};
use crate::{cargo, gate_scenario, run_status, setup};

#[path = "test_bridge.rs"]
mod bridge;
#[path = "test_svm.rs"]
pub(crate) mod svm;

/// Lines of serial log shown for a failed emulator test.
const TAIL_LINES: usize = 40;

/// One emulator boot test.
pub struct BootTest {
    pub name: &'static str,
    pub cmdline: &'static str,
    pub emulator: Emulator,
    pub timeout: Duration,
    pub expect: Expect,
}

/// The emulator tests, in the order they run (Bochs runs one at a time, as all of these do).
pub fn boot_tests() -> Vec<BootTest> {
    vec![
        // QEMU TCG's `-cpu max` has AMD SVM with nested paging and no VMX: the SVM backend comes up.
        BootTest {
            name: "qemu-tcg-svm",
            cmdline: "",
            emulator: Emulator::qemu_tcg(),
            timeout: Duration::from_secs(60),
            expect: Expect::all(&[
                "probevisor: backend AMD SVM",
                "probevisor: SVM ok",
                "svm caps rev=",
                "probevisor: SVM off",
                "PROBEVISOR-DONE status=ok",
            ]),
        },
        // The built-in test guests under AMD SVM (QEMU TCG): the same exit paths as under VT-x; TCG
        // lets a guest change XCR0 without an XSETBV exit, which stops that guest at its next exit
        // (of whatever kind: a timer interrupt may come before the HLT);
        // CLGI and VMLOAD are intercepted and stop their guests. At most 15 guests (QEMU's ASIDs).
        BootTest {
            name: "qemu-tcg-svm-guests-builtin",
            cmdline: "testguests=cpuid,msr,xsetbv,kgs-a,kgs-b,xcr0-shrink,mxcsr-a,mxcsr-b,clgi,vmload,cr2-a,cr2-b,dr0,pkru,mwait",
            emulator: Emulator::qemu_tcg(),
            timeout: Duration::from_secs(60),
            expect: Expect::all(&[
                "probevisor: backend AMD SVM",
                "[guest test-cpuid] probevisor",
                "guest test-msr: RDMSR of MSR 0x10 refused (#GP)",
                "[guest test-xsetbv] 3",
                "probevisor: guest test-xsetbv stopped: forbidden guest state: XCR0 set outside the allow-list without an XSETBV exit",
                "[guest test-kgs-a] 0.A",
                "[guest test-kgs-b] 0.A",
                "[guest test-xcr0-shrink] .ok",
                "[guest test-mxcsr-a] 0000000000001F80 0000000000007F80",
                "[guest test-mxcsr-b] 0000000000001F80 0000000000007F80",
                "probevisor: guest test-clgi stopped: unexpected exit: exit reason 133 (VMEXIT_CLGI)",
                "probevisor: guest test-vmload stopped: unexpected exit: exit reason 130 (VMEXIT_VMLOAD)",
                "[guest test-cr2-a] 0000000000000000 .000000001234ABCD",
                "[guest test-cr2-b] 0000000000000000 .000000001234ABCD",
                "probevisor: guest test-dr0 stopped: unexpected exit: exit reason 48",
                "probevisor: guest test-pkru stopped: forbidden guest state: CR4 bit outside the guest's allow-list",
                "probevisor: guest test-mwait stopped: unexpected exit: exit reason 138 (VMEXIT_MONITOR)",
                "PROBEVISOR-DONE status=ok",
            ]),
        },
        // More built-in guests under SVM (its 15-guest limit): the tool device from compatibility
        // mode stops the guest, a hypercall from CPL 3 is a #GP, a single-step trap lands right
        // after the CPUID the hypervisor emulated (QEMU printed `N` before the fix: the trap landed
        // one instruction late).
        BootTest {
            name: "qemu-tcg-svm-guests-modes",
            cmdline: "testguests=compat,cpl3,cpuid,tf-step,db-window,pkru-a,pkru-b,cr4-vme,mxcsr-keep,osxsave",
            emulator: Emulator::qemu_tcg(),
            timeout: Duration::from_secs(60),
            expect: Expect::all(&[
                "probevisor: backend AMD SVM",
                "tool device access from compatibility mode",
                "guest test-cpl3: hypercall from user mode (CPL > 0) refused (#GP)",
                "[guest test-cpuid] probevisor",
                "[guest test-tf-step] YIKMN4",
                // A #DB frame pushed into the tool device window is no device access (before: the
                // MOV after it was emulated for the push, then the HLT refused as a device access).
                "probevisor: guest test-db-window stopped: memory violation: write at guest-physical 0xfeb00008",
                // PKRU written with CR4.PKE turned off again before any exit: each guest still
                // starts with its own (pkru-b printed pkru-a's 5A5A5A5A before PKRU was switched).
                "[guest test-pkru-a] 0000000000000000",
                "[guest test-pkru-b] 0000000000000000",
                // CR4 is an allow-list: VME (like Key Locker, UINTR, FRED) stops the guest.
                "probevisor: guest test-cr4-vme stopped: forbidden guest state: CR4 bit outside the guest's allow-list",
                "[guest test-mxcsr-keep] .0000000000007F80",
                // CPUID.1:ECX.OSXSAVE is the guest's CR4.OSXSAVE, leaf 0Dh's sizes follow its XCR0
                // (`11sac11` before: the host's values).
                "[guest test-osxsave] 01SAC01",
                "PROBEVISOR-DONE status=ok",
            ]),
        },
        // Without XSAVE the guests' SIMD registers are kept apart with FXSAVE/FXRSTOR: each guest
        // starts with the default MXCSR and keeps its own (they had passed from guest to guest).
        BootTest {
            name: "qemu-tcg-svm-no-xsave",
            cmdline: "testguests=mxcsr-a,mxcsr-b,mxcsr-keep,cpuid",
            emulator: Emulator::qemu_tcg_cpu("max,-xsave"),
            timeout: Duration::from_secs(60),
            expect: Expect::all(&[
                "probevisor: backend AMD SVM",
                "simd: sse on, xcr0=None",
                "[guest test-mxcsr-a] 0000000000001F80 0000000000007F80",
                "[guest test-mxcsr-b] 0000000000001F80 0000000000007F80",
                // Its own MXCSR back after an exit (it read the host's 1F80 before FXSAVE).
                "[guest test-mxcsr-keep] .0000000000007F80",
                "[guest test-cpuid] probevisor",
                "PROBEVISOR-DONE status=ok",
            ]),
        },
        // A CPU with neither VMX nor SVM is refused: `probevisor: no VT-x or SVM`, status=no-vtx.
        BootTest {
            name: "qemu-tcg-no-vtx",
            cmdline: "",
            emulator: Emulator::qemu_tcg_cpu("max,-svm"),
            timeout: Duration::from_secs(60),
            expect: Expect::all(&[
                "probevisor: no VT-x or SVM",
                "PROBEVISOR-DONE status=no-vtx",
            ]),
        },
        // Two guests of one name would share audit records and rate limits: the boot refuses.
        BootTest {
            name: "qemu-tcg-duplicate-guest",
            cmdline: "testguests=cpuid,msr,cpuid",
            emulator: Emulator::qemu_tcg(),
            timeout: Duration::from_secs(60),
            expect: Expect::all(&[
                "probevisor: boot failed: two guests named \"test-cpuid\"",
                "PROBEVISOR-DONE status=fail",
            ]),
        },
        BootTest {
            name: "bochs-vmxon",
            cmdline: "",
            emulator: Emulator::bochs(),
            timeout: Duration::from_secs(60),
            expect: Expect::all(&[
                "probevisor: VMXON ok",
                "vmx basic",
                "PROBEVISOR-DONE status=ok",
            ]),
        },
        // Built-in test guests of the hypervisor (hypervisor/src/test_guests.rs) under VT-x: CPUID filter
        // and port I/O, MSR #GP injection, XSETBV checks, triple faults, each guest's own kernel GS
        // base, a guest that turns AVX off after using it; each stops alone, the run ends ok.
        BootTest {
            name: "bochs-guests-builtin",
            cmdline: "testguests=cpuid,msr,triple-fault,xsetbv,kgs-a,kgs-b,xcr0-shrink,mxcsr-a,mxcsr-b,clgi,vmload,cr2-a,cr2-b,dr0,cr8,pkru,mwait,spin,compat,cpl3,tf-step,db-window,pkru-a,cr4-vme,mxcsr-keep,osxsave",
            emulator: Emulator::bochs(),
            timeout: Duration::from_secs(60),
            expect: Expect::all(&[
                "[guest test-cpuid] probevisor",
                "guest test-msr: RDMSR of MSR 0x10 refused (#GP)",
                "probevisor: guest test-triple-fault stopped: triple fault",
                "[guest test-xsetbv] 3",
                "probevisor: summary guest test-xsetbv: stopped: triple fault",
                "[guest test-kgs-a] 0.A",
                "[guest test-kgs-b] 0.A",
                "[guest test-xcr0-shrink] .ok",
                "[guest test-mxcsr-a] 0000000000001F80 0000000000007F80",
                "[guest test-mxcsr-b] 0000000000001F80 0000000000007F80",
                "probevisor: guest test-clgi stopped: triple fault",
                "probevisor: guest test-vmload stopped: triple fault",
                "[guest test-cr2-a] 0000000000000000 .000000001234ABCD",
                "[guest test-cr2-b] 0000000000000000 .000000001234ABCD",
                "probevisor: guest test-dr0 stopped: unexpected exit: exit reason 29 (MOV DR)",
                "probevisor: guest test-cr8 stopped: unexpected exit: exit reason 28",
                "probevisor: guest test-pkru stopped: unexpected exit: exit reason 28",
                "probevisor: guest test-mwait stopped: unexpected exit: exit reason 39 (MONITOR)",
                "probevisor: guest test-spin stopped: still running after 2000 time slices",
                "tool device access from compatibility mode",
                "guest test-cpl3: hypercall from user mode (CPL > 0) refused (#GP)",
                "[guest test-tf-step] YIKMN4",
                "probevisor: guest test-db-window stopped: memory violation: write at guest-physical 0xfeb00008",
                "probevisor: guest test-pkru-a stopped: unexpected exit: exit reason 28",
                "probevisor: guest test-cr4-vme stopped: unexpected exit: exit reason 28",
                "[guest test-mxcsr-keep] .0000000000007F80",
                "[guest test-osxsave] 01SAC01",
                // A stop the guest did not choose is an audit record.
                r#""agent":"test-msr","tool":"guest_stopped","args":{"detail":"triple fault"}"#,
                r#""agent":"test-compat","tool":"tool_device","args":{"detail":"tool device access from compatibility mode"}"#,
                "PROBEVISOR-DONE status=ok",
            ]),
        },
        BootTest {
            name: "qemu-tcg-exception-ud",
            cmdline: "test=ud",
            emulator: Emulator::qemu_tcg(),
            timeout: Duration::from_secs(60),
            expect: Expect::all(&["EXCEPTION vector=6 ", "PROBEVISOR-DONE status=exception"]),
        },
        BootTest {
            name: "qemu-tcg-exception-pf",
            cmdline: "test=pf",
            emulator: Emulator::qemu_tcg(),
            timeout: Duration::from_secs(60),
            expect: Expect::all(&["EXCEPTION vector=14 ", "PROBEVISOR-DONE status=exception"]),
        },
    ]
}

/// The tally of checks.
#[derive(Default)]
pub struct Summary {
    pub passed: usize,
    pub failed: Vec<String>,
    /// Run only checks whose names contain one of these (all checks when empty).
    pub filters: Vec<String>,
}

impl Summary {
    /// Whether the check `name` is to run.
    pub fn selected(&self, name: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| name.contains(f.as_str()))
    }

    /// Prints `test <name> ... ok|FAILED` (with details on failure) and counts it.
    pub fn record(&mut self, name: &str, elapsed: Duration, result: Result<(), String>) {
        match result {
            Ok(()) => {
                println!("xtask test: {name} took {:.1} s", elapsed.as_secs_f64());
                println!("test {name} ... ok");
                self.passed += 1;
            }
            Err(details) => {
                println!("xtask test: {name} took {:.1} s", elapsed.as_secs_f64());
                println!("test {name} ... FAILED");
                for line in details.lines() {
                    println!("    {line}");
                }
                self.failed.push(name.to_string());
            }
        }
    }

    /// The summary line: `N passed, M failed`.
    pub fn line(&self) -> String {
        format!("{} passed, {} failed", self.passed, self.failed.len())
    }
}

fn timed(summary: &mut Summary, name: &str, check: impl FnOnce() -> Result<(), String>) -> bool {
    if !summary.selected(name) {
        return false;
    }
    println!("xtask test: running {name}");
    let start = Instant::now();
    let result = check();
    let ok = result.is_ok();
    summary.record(name, start.elapsed(), result);
    ok
}

/// `test [FILTER]...`: every check, or those whose names contain a FILTER (for development;
/// CI runs them all).
pub fn command(args: &[String]) -> Result<(), String> {
    if let Some(option) = args.iter().find(|a| a.starts_with('-')) {
        return Err(format!(
            "unexpected argument `{option}` (usage: test [FILTER]...)"
        ));
    }
    let mut summary = Summary {
        filters: args.to_vec(),
        ..Summary::default()
    };
    let tests: Vec<BootTest> = boot_tests()
        .into_iter()
        .filter(|t| summary.selected(t.name))
        .collect();
    let models = setup::models_dir();

    timed(&mut summary, "setup", || setup::setup(setup::MODEL_NAMES));
    timed(&mut summary, "cargo-test-workspace", || {
        let mcp_server = crate::mcp_server::ensure_mcp_server()?;
        run_status(
            cargo()
                .args(["test", "--workspace", "--no-fail-fast"])
                .env("PROBEVISOR_MODELS", &models)
                .env("PROBEVISOR_REQUIRE_MODELS", "1")
                .env("PROBEVISOR_MCP_SERVER", &mcp_server)
                .env("PROBEVISOR_REQUIRE_MCP", "1"),
        )
    });
    timed(&mut summary, "clippy-host", || {
        run_status(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))
    });
    timed(&mut summary, "rustdoc", || {
        // Doc comments stay free of broken links (a bit range written `EAX[7:0]` is a link to
        // rustdoc; an item that exists only on the bare-metal target cannot be linked from here).
        run_status(
            cargo()
                .args(["doc", "--no-deps", "--workspace", "-q"])
                .env("RUSTDOCFLAGS", "-D warnings"),
        )
    });
    timed(&mut summary, "clippy-image", || {
        run_status(cargo().args([
            "clippy",
            "-p",
            "hypervisor",
            "--target",
            IMAGE_TARGET,
            "--release",
            "--",
            "-D",
            "warnings",
        ]))
    });
    let gate_test = summary.selected("bochs-gate");
    let gate_test = gate_test || summary.selected("bochs-bridge");
    let gate_test = gate_test || summary.selected("qemu-svm-gate");
    let gate_test = gate_test || summary.selected("qemu-svm-smollm2");
    if (!tests.is_empty() || gate_test) && !summary.selected("build-image") {
        summary.filters.push("build-image".into());
    }
    let elf = {
        let mut elf = None;
        timed(&mut summary, "build-image", || {
            elf = Some(image::build_hypervisor()?);
            Ok(())
        });
        elf
    };

    for test in tests {
        timed(&mut summary, test.name, || {
            let elf = elf.as_ref().ok_or("the hypervisor image did not build")?;
            run_boot_test(&test, elf)
        });
    }
    timed(&mut summary, "qemu-svm-gate", || {
        svm::svm_gate_boot_test(elf.as_ref().ok_or("the hypervisor image did not build")?)
    });
    timed(&mut summary, "qemu-svm-smollm2", || {
        svm::svm_smollm2_boot_test(elf.as_ref().ok_or("the hypervisor image did not build")?)
    });
    timed(&mut summary, "bochs-gate", || {
        gate_boot_test(elf.as_ref().ok_or("the hypervisor image did not build")?)
    });
    timed(&mut summary, "bochs-bridge", || {
        bridge::bridge_boot_test(elf.as_ref().ok_or("the hypervisor image did not build")?)
    });

    println!();
    if !summary.failed.is_empty() {
        println!("failed: {}", summary.failed.join(", "));
    }
    println!("{}", summary.line());
    if summary.failed.is_empty() {
        Ok(())
    } else {
        Err(format!("{} check(s) failed", summary.failed.len()))
    }
}

/// Builds the test's ISO, boots it, and returns the failure reason with the log tail.
fn run_boot_test(test: &BootTest, elf: &std::path::Path) -> Result<(), String> {
    let iso = image::make_iso(elf, test.cmdline, &[], test.name)?;
    let report = emulator::run(&RunConfig {
        name: test.name.to_string(),
        emulator: test.emulator.clone(),
        iso,
        timeout: test.timeout,
        expect: test.expect.clone(),
        stream: false,
    })?;
    if report.passed {
        Ok(())
    } else {
        Err(format!(
            "{}\n--- last {TAIL_LINES} lines of {} ---\n{}",
            report.reason,
            report.run_dir.join("serial.log").display(),
            report.tail(TAIL_LINES)
        ))
    }
}

/// `bochs-gate`: the default gated scenario (crate::gate_scenario: the tiny model,
/// policies/tiny-model.toml and an fs tar as boot modules, agents benign, destructive and mmio plus
/// the built-in `misbehave` guest, and `mxcsr-unmask`) under Bochs. Checks the verdicts' layers and reasons in the AUDIT
/// records, complete mediation (every tool call a guest made has its record), verifies the chain
/// with the host CLI against AUDIT-FINAL, and compares the hypervisor's logits digest with the host
/// CLI's scalar path. `cargo xtask run` runs the same scenario streamed (crate::run).
pub fn gate_boot_test(elf: &std::path::Path) -> Result<(), String> {
    // `mxcsr-unmask` makes its gated tool call with every SSE exception unmasked: the inference must
    // not run under the guest's MXCSR. Bochs raises SIMD exceptions (#XM in the host, printed
    // `EXCEPTION vector=19` before session 12's fix); QEMU TCG does not, so only this test sees it.
    let scenario = gate_scenario::Scenario {
        builtin: vec!["misbehave".into(), "mxcsr-unmask".into()],
        ..gate_scenario::Scenario::default()
    };
    let timeout = Duration::from_secs(scenario.timeout_s());
    run_gate_scenario(
        &scenario,
        elf,
        "bochs-gate",
        Emulator::bochs(),
        timeout,
        &[],
    )
}

/// Boots `scenario` under `emulator` as test `name`, waits for its markers and `extra_markers`,
/// then judges the log (records, mediation, chain, digest) and prints the per-guest table.
pub fn run_gate_scenario(
    scenario: &gate_scenario::Scenario,
    elf: &std::path::Path,
    name: &str,
    emulator: Emulator,
    timeout: Duration,
    extra_markers: &[&str],
) -> Result<(), String> {
    let prepared = gate_scenario::prepare(scenario, elf, name)?;
    let mut markers = scenario.markers();
    markers.extend(extra_markers.iter().map(|m| m.to_string()));
    let markers: Vec<&str> = markers.iter().map(String::as_str).collect();
    let engine = match &emulator {
        Emulator::Qemu { kvm: true, .. } => "QEMU/KVM",
        Emulator::Qemu { .. } => "QEMU TCG",
        Emulator::Bochs { .. } => "Bochs",
    };
    let report = emulator::run(&RunConfig {
        name: name.to_string(),
        emulator,
        iso: prepared.iso.clone(),
        timeout,
        expect: Expect::all(&markers),
        stream: false,
    })?;
    let fail = |why: String| {
        Err(format!(
            "{why}\n--- last {TAIL_LINES} lines of {} ---\n{}",
            report.run_dir.join("serial.log").display(),
            report.tail(TAIL_LINES)
        ))
    };
    println!(
        "xtask test: {name}: {engine} ran {:.1} s",
        report.elapsed.as_secs_f64()
    );
    if !report.passed {
        return fail(report.reason.clone());
    }
    let verdict = gate_scenario::judge(scenario, &prepared, &report.log, &report.run_dir, None);
    print!("{}", gate_scenario::table(&verdict.guests));
    if verdict.failures.is_empty() {
        Ok(())
    } else {
        fail(verdict.failures.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_and_formats() {
        let mut summary = Summary::default();
        summary.record("a", Duration::ZERO, Ok(()));
        summary.record("b", Duration::ZERO, Err("why".into()));
        summary.record("c", Duration::ZERO, Ok(()));
        assert_eq!(summary.line(), "2 passed, 1 failed");
        assert_eq!(summary.failed, vec!["b".to_string()]);
        assert!(summary.selected("anything"));
        summary.filters = vec!["qemu".into(), "setup".into()];
        assert!(summary.selected("qemu-tcg-no-vtx") && summary.selected("setup"));
        assert!(!summary.selected("bochs-vmxon"));
    }

    #[test]
    fn boot_tests_have_unique_names_and_markers() {
        let tests = boot_tests();
        let mut names: Vec<&str> = tests.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), tests.len());
        for test in &tests {
            assert!(test.expect.pass_if.iter().all(|set| !set.is_empty()));
            assert!(test.timeout <= Duration::from_secs(60));
        }
    }
}
