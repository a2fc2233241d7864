//! `qemu-svm-gate`: the gated scenario of `bochs-gate` (crate::gate_scenario: the tiny model,
//! policies/tiny-model.toml and an fs tar as boot modules, agents benign, destructive and mmio plus the
//! built-in `misbehave` guest) under QEMU TCG, whose `-cpu max` has AMD SVM with nested paging and no
//! VMX: the hypervisor picks its SVM backend. Same checks as `bochs-gate`: the verdicts' layers and
//! reasons in the AUDIT records, complete mediation, the audit chain verified with the host CLI against
//! AUDIT-FINAL, and the logits digest against the host CLI's scalar path.
//!
//! `qemu-svm-smollm2`: the same under QEMU TCG with the real SmolLM2-135M and
//! policies/smollm2-tcg.toml, agent `mmio` only (one gated tool call: a token costs about a second
//! under TCG). Checks complete mediation, the audit chain, the logits digest against the host CLI's
//! scalar path (the image's exact kernels are bit-identical to it), and that the agent's tool call
//! got a real-model verdict: a `probe` layer with a probability, the model named by the blake3 of
//! the SmolLM2 file.

use std::path::Path;
use std::time::Duration;

use crate::emulator::{self, Emulator, Expect, RunConfig};
use crate::gate_scenario::{self, ModelChoice, Scenario};

/// QEMU TCG runs the scenario in well under a minute on a quiet machine (integer code is fast there);
/// the margin is for a loaded 2-core machine.
const TIMEOUT: Duration = Duration::from_secs(300);
/// The SVM bring-up and time slicing must have happened.
const SVM_MARKERS: [&str; 3] = [
    "probevisor: backend AMD SVM",
    "probevisor: SVM ok",
    "under SVM, round robin",
];

/// QEMU's CPU models report no TSC frequency (CPUID leaf 0x16), so the audit clock must have been
/// measured against the PIT rather than assumed.
const PIT_CLOCK_MARKER: &str = "TSC ticks per ms (measured against the PIT)";

/// Boots the default gated scenario under QEMU TCG with SVM and judges the log.
pub fn svm_gate_boot_test(elf: &Path) -> Result<(), String> {
    let mut markers = SVM_MARKERS.to_vec();
    markers.push(PIT_CLOCK_MARKER);
    crate::test::run_gate_scenario(
        &gate_scenario::Scenario::default(),
        elf,
        "qemu-svm-gate",
        Emulator::qemu_tcg(),
        TIMEOUT,
        &markers,
    )
}

/// The real model judged under QEMU TCG (a name of `setup`'s model table).
pub const SMOLLM2: &str = "smollm2";
/// Its policy: a short prompt prefix, prefilled once by the hypervisor.
pub const TCG_POLICY: &str = "policies/smollm2-tcg.toml";
/// The agent of `qemu-svm-smollm2`: one tool call that reaches the gate.
const SMOLLM2_AGENTS: &[&str] = &["mmio"];
/// Under TCG on a loaded 2-core machine about a second a token (docs/benchmarks.md): the run
/// prefills the digest prompt, the prefix, three content-free calibration inputs and one verdict,
/// 190 to 280 s of QEMU measured at load averages of 5 to 8.
const SMOLLM2_TIMEOUT: Duration = Duration::from_secs(540);

/// The SmolLM2 scenario for `agents` (QEMU TCG with SVM; also `cargo xtask run`'s TCG engine).
pub fn smollm2_scenario(agents: Vec<String>, model: std::path::PathBuf) -> Scenario {
    Scenario {
        agents,
        model: ModelChoice::File(model),
        policy: crate::workspace_root().join(TCG_POLICY),
        builtin: crate::gate_scenario::default_builtin(),
    }
}

/// How the TCG engine is named to the user.
pub const TCG_ENGINE: &str = "QEMU TCG (-cpu max: AMD SVM with nested paging emulated, no VT-x)";

/// Emulator time for the TCG engine: SmolLM2 costs about a second a token there on a loaded 2-core
/// machine (docs/benchmarks.md); boot and setup (digest prompt, prefix, calibration) take 2 to 3
/// minutes, each gated call 20 s to 2 minutes.
pub fn tcg_timeout_s(scenario: &Scenario) -> u64 {
    420 + 240 * scenario.guests().len() as u64
}

/// Example agents with a tool call that reaches the gate under policies/smollm2-tcg.toml (the
/// run checks that each got a verdict of the model).
pub const TCG_GATED_AGENTS: &[&str] = &["benign", "destructive", "mmio"];

/// Whether `policy` is policies/smollm2-tcg.toml.
pub fn is_tcg_policy(policy: &Path) -> bool {
    let tcg = crate::workspace_root().join(TCG_POLICY).canonicalize().ok();
    tcg.is_some() && policy.canonicalize().ok() == tcg
}

/// Failures unless some tool call of an agent in `agents` was decided with the real model: a
/// `probe` layer and a probability in its AUDIT record, the record naming the model `digest`.
pub fn check_real_verdicts(log: &str, agents: &[String], digest: &str) -> Vec<String> {
    let model = format!(r#""model":"{digest}""#);
    let mut failures = Vec::new();
    let records: Vec<&str> = log
        .lines()
        .filter_map(|l| l.strip_prefix("AUDIT "))
        .collect();
    if let Some(bad) = records.iter().find(|r| !r.contains(&model)) {
        failures.push(format!(
            "an AUDIT record does not name the model {digest}: {bad}"
        ));
    }
    let judged = |agent: &str| {
        records.iter().any(|r| {
            r.contains(&format!(r#""agent":"{agent}""#))
                && r.contains(r#""layer":"probe","status":"#)
                && !r.contains(r#""p_dangerous":null"#)
        })
    };
    for agent in agents {
        if !judged(agent) {
            failures.push(format!(
                "no tool call of {agent} got a verdict of the model"
            ));
        }
    }
    failures
}

/// Boots [`smollm2_scenario`] with agent `mmio` under QEMU TCG; skips (passes with a message) when
/// the SmolLM2 file is absent.
pub fn svm_smollm2_boot_test(elf: &Path) -> Result<(), String> {
    let model = crate::setup::model_path(SMOLLM2);
    if !model.is_file() {
        println!(
            "xtask test: qemu-svm-smollm2: SKIPPED: no {} (`cargo xtask setup` fetches it)",
            model.display()
        );
        return Ok(());
    }
    let agents: Vec<String> = SMOLLM2_AGENTS.iter().map(|a| a.to_string()).collect();
    let scenario = smollm2_scenario(agents.clone(), model.clone());
    let name = "qemu-svm-smollm2";
    let prepared = gate_scenario::prepare(&scenario, elf, name)?;
    let digest = prepared.file_digest(&model)?;
    let mut markers = scenario.markers();
    markers.extend(SVM_MARKERS.iter().map(|m| m.to_string()));
    let markers: Vec<&str> = markers.iter().map(String::as_str).collect();
    let report = emulator::run(&RunConfig {
        name: name.to_string(),
        emulator: Emulator::qemu_tcg(),
        iso: prepared.iso.clone(),
        timeout: SMOLLM2_TIMEOUT,
        expect: Expect::all(&markers),
        stream: false,
    })?;
    println!(
        "xtask test: {name}: QEMU TCG ran {:.1} s",
        report.elapsed.as_secs_f64()
    );
    let tail = || {
        format!(
            "\n--- last 40 lines of {} ---\n{}",
            report.run_dir.join("serial.log").display(),
            report.tail(40)
        )
    };
    if !report.passed {
        return Err(format!("{}{}", report.reason, tail()));
    }
    let mut verdict =
        gate_scenario::judge(&scenario, &prepared, &report.log, &report.run_dir, None);
    verdict
        .failures
        .extend(check_real_verdicts(&report.log, &agents, &digest));
    print!("{}", gate_scenario::table(&verdict.guests));
    if verdict.failures.is_empty() {
        Ok(())
    } else {
        Err(format!("{}{}", verdict.failures.join("\n"), tail()))
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
        assert!(SMOLLM2_TIMEOUT <= Duration::from_secs(600));
    }

    #[test]
    fn real_verdicts_need_a_probe_layer_and_the_model() {
        let agents = vec!["mmio".to_string()];
        let judged = r#"AUDIT {"agent":"mmio","tool":"list_dir","layers":[{"layer":"probe","status":"pass","reason":"p"}],"p_dangerous":0.4,"model":"ab"}"#;
        assert!(check_real_verdicts(judged, &agents, "ab").is_empty());
        assert_eq!(check_real_verdicts(judged, &agents, "cd").len(), 1);
        let unjudged = r#"AUDIT {"agent":"mmio","tool":"list_dir","layers":[{"layer":"schema","status":"deny","reason":"no model loaded"}],"p_dangerous":null,"model":"ab"}"#;
        let failures = check_real_verdicts(unjudged, &agents, "ab");
        assert_eq!(
            failures,
            ["no tool call of mmio got a verdict of the model"]
        );
        assert!(crate::workspace_root().join(TCG_POLICY).is_file());
        assert!(is_tcg_policy(&crate::workspace_root().join(TCG_POLICY)));
    }

    #[test]
    fn tcg_timeout_has_room_for_the_default_agents() {
        let agents = crate::gate_scenario::DEFAULT_AGENTS;
        let scenario = smollm2_scenario(
            agents.iter().map(|a| a.to_string()).collect(),
            "model.gguf".into(),
        );
        assert!(tcg_timeout_s(&scenario) >= 1200);
    }
}
