//! `qemu-svm-gate`: the gated scenario of `bochs-gate` (crate::gate_scenario: the tiny model,
//! policies/tiny-model.toml and an fs tar as boot modules, agents benign, destructive and mmio plus the
//! built-in `misbehave` guest) under QEMU TCG, whose `-cpu max` has AMD SVM with nested paging and no
//! VMX: the hypervisor picks its SVM backend. Same checks as `bochs-gate`: the verdicts' layers and
//! reasons in the AUDIT records, complete mediation, the audit chain verified with the host CLI against
//! AUDIT-FINAL, and the logits digest against the host CLI's scalar path.

use std::path::Path;
use std::time::Duration;

use crate::emulator::Emulator;
use crate::gate_scenario;

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
    crate::test::run_gate_scenario(
        &gate_scenario::Scenario::default(),
        elf,
        "qemu-svm-gate",
        Emulator::qemu_tcg(),
        TIMEOUT,
        &SVM_MARKERS,
    )
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
