//! `qemu-svm-gate`: the gated scenario of `bochs-gate` (crate::gate_scenario: the tiny model,
//! policies/tiny-model.toml and an fs tar as boot modules, agents benign, destructive and mmio plus the
//! built-in `misbehave` guest) under QEMU TCG, whose `-cpu max` has AMD SVM with nested paging and no
//! VMX: the hypervisor picks its SVM backend. Same checks as `bochs-gate`: the verdicts' layers and
//! reasons in the AUDIT records, complete mediation, the audit chain verified with the host CLI against
//! AUDIT-FINAL, and the logits digest against the host CLI's scalar path.

use std::path::Path;
use std::time::Duration;

use crate::emulator::{self, Emulator, Expect, RunConfig};
use crate::gate_scenario;

/// Lines of serial log shown for a failed run.
const TAIL_LINES: usize = 40;
/// QEMU TCG runs the scenario in well under a minute on a quiet machine (integer code is fast there);
/// the margin is for a loaded 2-core machine.
const TIMEOUT: Duration = Duration::from_secs(300);
/// The SVM bring-up and time slicing must have happened.
const SVM_MARKERS: [&str; 3] = [
    "probevisor: backend AMD SVM",
    "probevisor: SVM ok",
    "under SVM, round robin",
];

/// Boots the default gated scenario under QEMU TCG with SVM and judges the log.
pub fn svm_gate_boot_test(elf: &Path) -> Result<(), String> {
    let name = "qemu-svm-gate";
    let scenario = gate_scenario::Scenario::default();
    let prepared = gate_scenario::prepare(&scenario, elf, name)?;
    let mut markers = scenario.markers();
    markers.extend(SVM_MARKERS.iter().map(|m| m.to_string()));
    let markers: Vec<&str> = markers.iter().map(String::as_str).collect();
    let report = emulator::run(&RunConfig {
        name: name.to_string(),
        emulator: Emulator::qemu_tcg(),
        iso: prepared.iso.clone(),
        timeout: TIMEOUT,
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
        "xtask test: {name}: QEMU TCG (SVM) ran {:.1} s",
        report.elapsed.as_secs_f64()
    );
    if !report.passed {
        return fail(report.reason.clone());
    }
    let verdict = gate_scenario::judge(&scenario, &prepared, &report.log, &report.run_dir, None);
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
    fn tcg_boot_tests_cover_svm_and_a_cpu_without_it() {
        let tests = super::super::boot_tests();
        let find = |name: &str| tests.iter().find(|t| t.name == name).expect(name);
        let no_vtx = find("qemu-tcg-no-vtx");
        assert!(matches!(
            &no_vtx.emulator,
            Emulator::Qemu { kvm: false, cpu: Some(cpu), .. } if cpu.contains("-svm")
        ));
        assert!(no_vtx.expect.pass_if[0].contains(&"probevisor: no VT-x or SVM".to_string()));
        let svm = find("qemu-tcg-svm");
        assert!(matches!(
            &svm.emulator,
            Emulator::Qemu {
                kvm: false,
                cpu: None,
                ..
            }
        ));
        assert!(SVM_MARKERS.iter().all(|m| m.contains("SVM")));
        assert!(TIMEOUT <= Duration::from_secs(600));
    }
}
