//! `cargo xtask qemu`, `cargo xtask bochs` and `cargo xtask run` (the main job): build the image,
//! boot it, stream the serial log, and judge the run by its markers.

use std::time::Duration;

use crate::emulator::{self, Emulator, Expect, RunConfig};
use crate::gate_scenario::{ModelChoice, Scenario};
use crate::image::{self, Module};
use crate::test::svm;
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
            cpu: None,
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

/// Which machine runs the hypervisor in `run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// KVM when `qemu/kvm-nested.sh --check` passes, else QEMU TCG (AMD SVM emulated) with the
    /// real SmolLM2 when QEMU is installed, else Bochs.
    Auto,
    Kvm,
    /// QEMU TCG, `-cpu max`: AMD SVM with nested paging, no VT-x (the hypervisor's SVM backend).
    Tcg,
    Bochs,
}

/// The verdict model under KVM when `--model` is not given (a name of `setup`'s model table).
pub const VERDICT_MODEL: &str = "qwen25coder";
/// The policy under KVM when `--policy` is not given.
pub const KVM_POLICY: &str = "policies/default.toml";

/// `run`'s options, checked before anything is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    pub engine: Engine,
    pub model: Option<std::path::PathBuf>,
    pub policy: Option<std::path::PathBuf>,
    pub agents: Vec<String>,
    pub audit_out: Option<std::path::PathBuf>,
}

impl RunOptions {
    /// Parses `run`'s arguments; `known_agents` are the names under agents/.
    pub fn parse(args: &[String], known_agents: &[String]) -> Result<RunOptions, String> {
        let options = Options::parse(
            args,
            &["--engine", "--model", "--policy", "--agents", "--audit-out"],
            &[],
        )?;
        let engine = match options.value("--engine").unwrap_or("auto") {
            "auto" => Engine::Auto,
            "kvm" => Engine::Kvm,
            "tcg" => Engine::Tcg,
            "bochs" => Engine::Bochs,
            other => {
                return Err(format!(
                    "--engine expects auto, kvm, tcg or bochs, got `{other}`"
                ))
            }
        };
        let file = |name: &str| -> Result<Option<std::path::PathBuf>, String> {
            match options.value(name) {
                None => Ok(None),
                Some(v) => {
                    let path = std::path::PathBuf::from(v);
                    if path.is_file() {
                        Ok(Some(path))
                    } else {
                        Err(format!("{name}: no file at `{v}`"))
                    }
                }
            }
        };
        let agents = match options.value("--agents") {
            None => crate::gate_scenario::DEFAULT_AGENTS
                .iter()
                .map(|a| a.to_string())
                .collect(),
            Some(list) => {
                let agents: Vec<String> = list.split(',').map(|a| a.trim().to_string()).collect();
                if agents.iter().any(String::is_empty) {
                    return Err(format!(
                        "--agents expects a comma-separated list of names, got `{list}`"
                    ));
                }
                if let Some(unknown) = agents.iter().find(|a| !known_agents.contains(a)) {
                    return Err(format!(
                        "--agents: no agent `{unknown}` (agents/: {})",
                        known_agents.join(", ")
                    ));
                }
                let mut seen = agents.clone();
                seen.sort();
                seen.dedup();
                if seen.len() != agents.len() {
                    return Err(format!("--agents names an agent twice: `{list}`"));
                }
                agents
            }
        };
        Ok(RunOptions {
            engine,
            model: file("--model")?,
            policy: file("--policy")?,
            agents,
            audit_out: options.value("--audit-out").map(std::path::PathBuf::from),
        })
    }
}

/// The engine `auto` picks, and why (one line for the user).
fn choose_engine(engine: Engine) -> (Engine, String) {
    match engine {
        Engine::Bochs => (Engine::Bochs, "Bochs (asked for; VT-x emulated)".into()),
        Engine::Kvm => (Engine::Kvm, "QEMU/KVM with nested VT-x (asked for)".into()),
        Engine::Tcg => (Engine::Tcg, format!("{} (asked for)", svm::TCG_ENGINE)),
        Engine::Auto => match crate::kvm_nested::check() {
            Ok(why) => (
                Engine::Kvm,
                format!("QEMU/KVM with nested VT-x (auto: {why})"),
            ),
            Err(unusable) => {
                let why = format!(
                    "KVM not usable, {} exit {}: {}",
                    crate::kvm_nested::SCRIPT,
                    unusable.code,
                    unusable.message.trim_start_matches("kvm-nested: ").trim()
                );
                if crate::have_program("qemu-system-x86_64") {
                    (Engine::Tcg, format!("{} (auto: {why})", svm::TCG_ENGINE))
                } else {
                    (
                        Engine::Bochs,
                        format!("Bochs, VT-x emulated (auto: {why}; no qemu-system-x86_64)"),
                    )
                }
            }
        },
    }
}

/// `run`: the main job. Setup, build, then boot the hypervisor with the agents, a model, a policy
/// and an fs tar as boot modules, under QEMU/KVM with nested VT-x, QEMU TCG (AMD SVM emulated: the
/// SVM backend) or Bochs (VT-x emulated); stream the serial log (bring-up, each guest's console, one
/// AUDIT line per decision), then check the verdicts and complete mediation, verify the audit chain
/// on the host, print a table per guest, and fail if anything failed. Under TCG the default model is
/// the real SmolLM2-135M with policies/smollm2-tcg.toml, and every example agent's gated call must
/// get its verdict; under Bochs the tiny synthetic one (a real model is far too slow there). The run
/// names the engine and the model at the start.
pub fn run_command(args: &[String]) -> Result<(), String> {
    let options = RunOptions::parse(args, &crate::agent::agent_names()?)?;
    let (engine, why) = choose_engine(options.engine);
    println!("xtask: engine {why}");
    let (model, policy) = match engine {
        Engine::Tcg => (
            ModelChoice::File(
                options
                    .model
                    .clone()
                    .unwrap_or_else(|| crate::setup::model_path(svm::SMOLLM2)),
            ),
            options
                .policy
                .clone()
                .unwrap_or_else(|| crate::workspace_root().join(svm::TCG_POLICY)),
        ),
        Engine::Kvm => (
            ModelChoice::File(
                options
                    .model
                    .clone()
                    .unwrap_or_else(|| crate::setup::model_path(VERDICT_MODEL)),
            ),
            options
                .policy
                .clone()
                .unwrap_or_else(|| crate::workspace_root().join(KVM_POLICY)),
        ),
        _ => (
            options
                .model
                .clone()
                .map_or(ModelChoice::Tiny, ModelChoice::File),
            options.policy.clone().unwrap_or_else(|| {
                crate::workspace_root().join(crate::gate_scenario::DEFAULT_POLICY)
            }),
        ),
    };
    match (&model, engine) {
        (ModelChoice::Tiny, _) => println!(
            "xtask: model: Bochs is too slow for a real model: using the tiny synthetic model \
             (verdicts rest on the policy's rule layers; the gate's probability is recorded)"
        ),
        (ModelChoice::File(path), Engine::Bochs) => println!(
            "xtask: model: {} under Bochs: expect minutes per verdict (about 185 MIPS, soft-float), \
             and Bochs has 512 MiB of memory",
            path.display()
        ),
        (ModelChoice::File(path), Engine::Tcg) => println!(
            "xtask: model: {} inside the hypervisor under QEMU TCG (about a second a token: \
             expect minutes of setup, then 20 s to 2 minutes a gated tool call). Note: the verdicts are this model's (SmolLM2-135M \
             judges near chance, docs/evaluation.md), not the 1.5B verdict model's, which is far \
             too slow under TCG",
            path.display()
        ),
        (ModelChoice::File(path), _) => println!("xtask: model: {}", path.display()),
    }
    println!(
        "xtask: policy: {}; agents: {} (+ built-in guest test-{})",
        policy.display(),
        options.agents.join(", "),
        crate::gate_scenario::DEFAULT_BUILTIN.join(", test-")
    );
    if let ModelChoice::File(path) = &model {
        if !path.is_file() {
            return Err(format!(
                "no model at {} (cargo xtask setup fetches the verdict model, or give --model PATH)",
                path.display()
            ));
        }
    }
    let scenario = Scenario {
        agents: options.agents.clone(),
        model,
        policy,
        builtin: crate::gate_scenario::default_builtin(),
    };
    let default_tcg_policy = svm::is_tcg_policy(&scenario.policy);
    if engine == Engine::Tcg && default_tcg_policy {
        println!(
            "xtask: checks: complete mediation, the audit chain, the logits digest, and a verdict \
             of the model for each example agent's gated call (the verdicts themselves are the \
             model's)"
        );
    } else if !scenario.default_policy() {
        println!(
            "xtask: the expected verdicts are written for {}: with this policy only complete \
             mediation, the audit chain and the logits digest are checked",
            crate::gate_scenario::DEFAULT_POLICY
        );
    }
    crate::setup::setup(crate::setup::MODEL_NAMES)?;
    crate::run_status(crate::cargo().args(["build", "--workspace"]))?;
    let elf = image::build_hypervisor()?;
    let name = "run";
    let prepared = crate::gate_scenario::prepare(&scenario, &elf, name)?;
    let timeout = Duration::from_secs(match engine {
        Engine::Tcg => svm::tcg_timeout_s(&scenario),
        _ => scenario.timeout_s(),
    });
    let (log, run_dir, boot_failure) = match engine {
        Engine::Kvm => {
            // Untested here: no machine of this project has KVM with nested VT-x.
            let run_dir = crate::probevisor_dir().join("runs").join("run-kvm");
            std::fs::create_dir_all(&run_dir).map_err(|e| e.to_string())?;
            let serial = run_dir.join("serial.log");
            let (log, code) = crate::kvm_nested::boot(&prepared.iso, &serial, timeout)?;
            print!("{log}");
            let failure = (code != Some(0)).then(|| {
                format!(
                    "{} exited with {code:?} (log: {})",
                    crate::kvm_nested::SCRIPT,
                    serial.display()
                )
            });
            (log, run_dir, failure)
        }
        _ => {
            let markers = scenario.markers();
            let markers: Vec<&str> = markers.iter().map(String::as_str).collect();
            let (emulator, label) = match engine {
                Engine::Tcg => (Emulator::qemu_tcg(), "QEMU TCG"),
                _ => (Emulator::bochs(), "Bochs"),
            };
            let report = emulator::run(&RunConfig {
                name: name.to_string(),
                emulator,
                iso: prepared.iso.clone(),
                timeout,
                expect: Expect::all(&markers),
                stream: true,
            })?;
            println!(
                "xtask: {label} {} after {:.1} s: {}",
                if report.passed { "passed" } else { "FAILED" },
                report.elapsed.as_secs_f64(),
                report.reason
            );
            let failure = (!report.passed).then(|| report.reason.clone());
            (report.log, report.run_dir, failure)
        }
    };
    let mut verdict = crate::gate_scenario::judge(
        &scenario,
        &prepared,
        &log,
        &run_dir,
        options.audit_out.as_deref(),
    );
    verdict.failures.splice(0..0, boot_failure);
    if let (Engine::Tcg, ModelChoice::File(path), true) =
        (engine, &scenario.model, default_tcg_policy)
    {
        // With policies/smollm2-tcg.toml every example agent makes a tool call that the tiers let
        // through to the gate: each must get a verdict of the real model, and every record names
        // the model by its digest.
        let digest = prepared.file_digest(path)?;
        let gated: Vec<String> = scenario
            .agents
            .iter()
            .filter(|a| svm::TCG_GATED_AGENTS.contains(&a.as_str()))
            .cloned()
            .collect();
        verdict
            .failures
            .extend(svm::check_real_verdicts(&log, &gated, &digest));
    }
    println!();
    print!("{}", crate::gate_scenario::table(&verdict.guests));
    if let Some(file) = &verdict.audit_file {
        println!(
            "xtask: {} audit records verified on the host; audit log: {}",
            verdict.records,
            file.display()
        );
    }
    if verdict.failures.is_empty() {
        println!(
            "xtask: run passed (serial log: {})",
            run_dir.join("serial.log").display()
        );
        Ok(())
    } else {
        for failure in &verdict.failures {
            println!("xtask: FAILED: {failure}");
        }
        Err(format!(
            "{} check(s) failed (serial log: {})",
            verdict.failures.len(),
            run_dir.join("serial.log").display()
        ))
    }
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
        Emulator::Qemu { kvm: false, .. } => "QEMU (TCG: AMD SVM, no VT-x)".into(),
        Emulator::Bochs { cpu, .. } => format!("Bochs (cpu {cpu}, VT-x emulated)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<RunOptions, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let known: Vec<String> = ["benign", "destructive", "mmio", "exfiltrating"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        RunOptions::parse(&args, &known)
    }

    #[test]
    fn run_defaults() {
        let options = parse(&[]).unwrap();
        assert_eq!(options.engine, Engine::Auto);
        assert_eq!(options.agents, ["benign", "destructive", "mmio"]);
        assert_eq!(
            (options.model, options.policy, options.audit_out),
            (None, None, None)
        );
    }

    #[test]
    fn run_options_parse() {
        let policy = crate::workspace_root().join("policies/tiny-model.toml");
        let policy = policy.to_str().unwrap();
        let options = parse(&[
            "--engine=bochs",
            "--agents",
            "mmio,exfiltrating",
            "--policy",
            policy,
            "--audit-out",
            "/tmp/a.jsonl",
        ])
        .unwrap();
        assert_eq!(options.engine, Engine::Bochs);
        assert_eq!(options.agents, ["mmio", "exfiltrating"]);
        assert_eq!(
            options.policy.as_deref(),
            Some(std::path::Path::new(policy))
        );
        assert_eq!(parse(&["--engine", "kvm"]).unwrap().engine, Engine::Kvm);
    }

    #[test]
    fn run_parse_errors_are_clear() {
        for (args, message) in [
            (
                &["--engine", "vmware"][..],
                "--engine expects auto, kvm, tcg or bochs, got `vmware`",
            ),
            (
                &["--agents", "benign,,mmio"],
                "--agents expects a comma-separated list",
            ),
            (
                &["--agents", "benign,nope"],
                "--agents: no agent `nope` (agents/: benign, destructive, mmio, exfiltrating)",
            ),
            (&["--agents", "mmio,mmio"], "--agents names an agent twice"),
            (
                &["--model", "/no/such.gguf"],
                "--model: no file at `/no/such.gguf`",
            ),
            (
                &["--policy", "/no/such.toml"],
                "--policy: no file at `/no/such.toml`",
            ),
            (&["--engine"], "option --engine needs a value"),
            (&["--fast"], "unexpected argument `--fast`"),
        ] {
            let err = parse(args).expect_err(message);
            assert!(err.starts_with(message), "{err:?} for {args:?}");
        }
    }

    #[test]
    fn forced_engines_need_no_check() {
        assert_eq!(choose_engine(Engine::Bochs).0, Engine::Bochs);
        assert_eq!(choose_engine(Engine::Kvm).0, Engine::Kvm);
        assert_eq!(choose_engine(Engine::Tcg).0, Engine::Tcg);
        assert!(choose_engine(Engine::Tcg).1.contains("SVM"));
        assert_eq!(parse(&["--engine", "tcg"]).unwrap().engine, Engine::Tcg);
    }
}
