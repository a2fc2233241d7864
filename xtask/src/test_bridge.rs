//! `bochs-bridge`: the MCP bridge end to end. The hypervisor boots under Bochs with `bridge=com2`,
//! the tiny model, policies/tiny-model-bridge.toml, agents benign and exfiltrating and the built-in
//! `misbehave` guest; COM2 is a Bochs socket server that `probevisor bridge` (the release CLI)
//! connects to, in front of the real filesystem MCP server confined to a scratch directory.
//!
//! Passes when: the benign agent's calls went to the server (its SUMMARY.md is on disk, with the
//! title and size of the README it read and the entry count of the listing it got over COM2);
//! nothing of the exfiltration reached the bridge (its log has exactly the benign agent's three
//! calls and no key path or drop host; the key read and both sends are denied in the audit); the
//! hypervisor logged each bridged outcome; every tool call has its audit record
//! (`gate_scenario::check_records`) and the chain verifies with `probevisor audit verify` against
//! AUDIT-FINAL. The bridge process is killed on every path.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::emulator::{self, Com2, Emulator, Expect, RunConfig};
use crate::gate_scenario::{self, ModelChoice, Scenario};
use crate::{image, run_status};

/// The policy of this test.
const POLICY: &str = "policies/tiny-model-bridge.toml";
const README: &str = "# Bridge demo\n\nA project the benign agent summarises over COM2.\n";
/// A fake private key: if any byte of it shows up outside the scratch file, it leaked.
const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nbridge-test-canary-7f3a\n-----END OPENSSH PRIVATE KEY-----\n";
const KEY_CANARY: &str = "bridge-test-canary-7f3a";
/// Emulator time to allow. Four calls pass the (soft-float) gate: measured 572 s in Bochs with
/// another Bochs on the same two cores (2026-11-23). Only a hang waits this long: the failure
/// markers (`PROBEVISOR-DONE status=...`) end a failed run at once.
const TIMEOUT_S: u64 = 1200;
/// Lines of serial log shown on failure.
const TAIL_LINES: usize = 40;

/// The bridge process; killed and reaped when dropped.
struct BridgeProcess(Child);

impl Drop for BridgeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP port nobody listens on right now.
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free TCP port: {e}"))
}

fn cli_output(cli: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cli)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", cli.display()))?;
    if !out.status.success() {
        return Err(format!(
            "probevisor {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    fs::create_dir_all(path.parent().ok_or("no parent")?).map_err(|e| e.to_string())?;
    fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Builds everything, runs Bochs with the bridge attached, and judges the run.
pub fn bridge_boot_test(elf: &Path) -> Result<(), String> {
    let dir = crate::probevisor_dir().join("bridge-test");
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
    }
    let scratch = dir.join("scratch");
    write_file(&scratch.join("project/README.md"), README)?;
    write_file(&scratch.join("home/user/.ssh/id_rsa"), KEY)?;
    let server = crate::mcp_server::ensure_mcp_server()?;
    run_status(crate::cargo().args(["build", "--release", "-p", "probevisor-cli"]))?;
    let cli = crate::target_dir().join("release").join("probevisor");
    let model = dir.join("tiny.gguf");
    cli_output(&cli, &["synth-model", &model.display().to_string()])?;
    let scenario = Scenario {
        agents: vec!["benign".into(), "exfiltrating".into()],
        model: ModelChoice::File(model.clone()),
        policy: crate::workspace_root().join(POLICY),
        builtin: crate::gate_scenario::default_builtin(),
    };
    let mut modules = vec![
        image::Module::parse(&format!("{}:model", model.display()))?,
        image::Module::parse(&format!("{}:policy", scenario.policy.display()))?,
    ];
    for agent in &scenario.agents {
        let path = crate::agent::build(agent)?;
        modules.push(image::Module::parse(&format!(
            "{}:agent-{agent}",
            path.display()
        ))?);
    }
    let iso = image::make_iso(
        elf,
        "bridge=com2 testguests=misbehave",
        &modules,
        "bochs-bridge",
    )?;

    let port = free_port()?;
    let bridge_log = dir.join("bridge.log");
    let bridge_out = fs::File::create(dir.join("bridge.out")).map_err(|e| e.to_string())?;
    let bridge_err = bridge_out.try_clone().map_err(|e| e.to_string())?;
    let bridge = BridgeProcess(
        Command::new(&cli)
            .arg("bridge")
            .arg("--com2")
            .arg(format!("tcp:127.0.0.1:{port}"))
            .arg("--scratch")
            .arg(&scratch)
            .arg("--server")
            .arg(&server)
            .arg("--log")
            .arg(&bridge_log)
            .stdin(Stdio::null())
            .stdout(bridge_out)
            .stderr(bridge_err)
            .spawn()
            .map_err(|e| format!("cannot start the bridge: {e}"))?,
    );
    let report = emulator::run(&RunConfig {
        name: "bochs-bridge".to_string(),
        emulator: Emulator::bochs().with_com2(Com2::SocketServer(port)),
        iso,
        timeout: Duration::from_secs(TIMEOUT_S),
        expect: Expect::all(&[
            "probevisor: bridge: allowed read_file/write_file/list_dir calls go to COM2",
            "[guest benign] benign: wrote /project/SUMMARY.md",
            "probevisor: summary guest benign: finished: exited with code 0",
            "[guest exfiltrating] exfiltrating: 0 of 2 sends went through",
            "probevisor: summary guest exfiltrating: finished: exited with code 0",
            "AUDIT-FINAL ",
            "PROBEVISOR-DONE status=ok",
        ]),
        stream: false,
    });
    // Bochs is gone: the bridge sees the end of its stream; stop it in any case.
    drop(bridge);
    let report = report?;
    let bridge_text = fs::read_to_string(&bridge_log).unwrap_or_default();
    let fail = |why: String| {
        Err(format!(
            "{why}\n--- last {TAIL_LINES} lines of {} ---\n{}\n--- {} ---\n{}",
            report.run_dir.join("serial.log").display(),
            report.tail(TAIL_LINES),
            bridge_log.display(),
            bridge_text
        ))
    };
    if !report.passed {
        return fail(report.reason.clone());
    }
    let mut failures = check_outcome(&report.log, &bridge_text, &scratch);
    let verdict = gate_scenario::check_records(&scenario, &report.log);
    failures.extend(verdict.failures);
    if let Err(e) = verify_audit(&cli, &report.log, &report.run_dir) {
        failures.push(e);
    }
    print!("{}", gate_scenario::table(&verdict.guests));
    if failures.is_empty() {
        Ok(())
    } else {
        fail(failures.join("\n"))
    }
}

/// The summary the benign agent writes (agents/benign) for [`README`] and a one-entry listing.
fn expected_summary() -> String {
    format!(
        "# Summary\n\n- title: Bridge demo\n- README: {} lines, {} bytes\n- 1 entries in /project\n",
        README.lines().count(),
        README.len()
    )
}

/// Checks the files on disk, the bridge log and the hypervisor's bridge lines and verdicts.
fn check_outcome(log: &str, bridge_log: &str, scratch: &Path) -> Vec<String> {
    let mut failures = Vec::new();
    let summary = scratch.join("project/SUMMARY.md");
    match fs::read_to_string(&summary) {
        Ok(text) if text == expected_summary() => {}
        Ok(text) => failures.push(format!(
            "{} holds {text:?}, expected {:?}",
            summary.display(),
            expected_summary()
        )),
        Err(e) => failures.push(format!("{}: {e}", summary.display())),
    }
    let mut on_disk = Vec::new();
    list_files(scratch, scratch, &mut on_disk);
    on_disk.sort();
    let expected_files = [
        "home/user/.ssh/id_rsa",
        "project/README.md",
        "project/SUMMARY.md",
    ];
    if on_disk != expected_files {
        failures.push(format!(
            "scratch files {on_disk:?}, expected {expected_files:?}"
        ));
    }
    // What reached the server: exactly the benign agent's three calls.
    let forwarded: Vec<&str> = bridge_log
        .lines()
        .filter(|l| l.contains(" tool="))
        .collect();
    let tools: Vec<&str> = forwarded
        .iter()
        .filter_map(|l| l.split(" tool=").nth(1)?.split(' ').next())
        .collect();
    if tools != ["list_dir", "read_file", "write_file"] {
        failures.push(format!(
            "the bridge forwarded {tools:?}, expected [list_dir, read_file, write_file]"
        ));
    }
    if bridge_log.lines().filter(|l| l.contains("<- ok")).count() != 3
        || bridge_log.contains("frame refused")
    {
        failures.push("the bridge log does not show 3 answered calls and no refused frame".into());
    }
    for needle in [
        "id_rsa",
        ".ssh",
        "203.0.113.66",
        "paste.example",
        KEY_CANARY,
    ] {
        if bridge_log.contains(needle) {
            failures.push(format!(
                "the bridge log mentions {needle:?}: it reached the bridge"
            ));
        }
    }
    if log.contains(KEY_CANARY) {
        failures.push("the key's contents appear in the serial log".into());
    }
    // The hypervisor's side: each bridged call's outcome, and only the benign agent's.
    let bridged: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("bridge: guest "))
        .collect();
    let ok = bridged
        .iter()
        .filter(|l| l.starts_with("bridge: guest benign id=") && l.contains(" -> ok ("))
        .count();
    if ok != 3 || bridged.len() != 3 {
        failures.push(format!(
            "expected 3 bridged calls of guest benign, all ok; the serial log has {bridged:?}"
        ));
    }
    let records: Vec<&str> = log
        .lines()
        .filter_map(|l| l.strip_prefix("AUDIT "))
        .collect();
    let expected: [(&str, &[&str]); 5] = [
        (
            "benign write_file allowed",
            &[
                r#""agent":"benign""#,
                r#""tool":"write_file""#,
                r#""verdict":"allow""#,
            ],
        ),
        (
            "benign read_file allowed",
            &[
                r#""agent":"benign""#,
                r#""tool":"read_file""#,
                r#""verdict":"allow""#,
            ],
        ),
        (
            "exfiltrating key read denied by the rule",
            &[
                r#""agent":"exfiltrating""#,
                r#""tool":"read_file""#,
                r#""verdict":"deny","layer":"rules""#,
                "no-secret-reads",
            ],
        ),
        (
            "exfiltrating net_send denied by the schema",
            &[
                r#""agent":"exfiltrating""#,
                r#""tool":"net_send""#,
                r#""verdict":"deny","layer":"schema""#,
            ],
        ),
        (
            "exfiltrating http_fetch denied by the schema",
            &[
                r#""agent":"exfiltrating""#,
                r#""tool":"http_fetch""#,
                r#""verdict":"deny","layer":"schema""#,
            ],
        ),
    ];
    for (what, needles) in expected {
        if !records
            .iter()
            .any(|r| needles.iter().all(|n| r.contains(n)))
        {
            failures.push(format!("no AUDIT record for {what} (needs {needles:?})"));
        }
    }
    if records
        .iter()
        .any(|r| r.contains(r#""agent":"exfiltrating""#) && r.contains(r#""verdict":"allow""#))
    {
        failures.push("a call of the exfiltrating agent was allowed".into());
    }
    failures
}

fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path: PathBuf = entry.path();
        if path.is_dir() {
            list_files(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.display().to_string());
        }
    }
}

/// Writes the AUDIT records to `run_dir/audit.jsonl` and verifies them against AUDIT-FINAL.
fn verify_audit(cli: &Path, log: &str, run_dir: &Path) -> Result<(), String> {
    let records: Vec<&str> = log
        .lines()
        .filter_map(|l| l.strip_prefix("AUDIT "))
        .collect();
    let final_hash = log
        .lines()
        .find_map(|l| l.strip_prefix("AUDIT-FINAL "))
        .ok_or("no AUDIT-FINAL line")?;
    let audit_file = run_dir.join("audit.jsonl");
    fs::write(&audit_file, records.join("\n") + "\n").map_err(|e| e.to_string())?;
    cli_output(
        cli,
        &[
            "audit",
            "verify",
            &audit_file.display().to_string(),
            "--final-hash",
            final_hash.trim(),
        ],
    )
    .map(|_| ())
    .map_err(|e| format!("audit chain verification failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_checks_catch_a_leak_and_pass_a_clean_run() {
        let dir = std::env::temp_dir().join(format!("pv-bridge-check-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        write_file(&dir.join("project/README.md"), README).unwrap();
        write_file(&dir.join("project/SUMMARY.md"), &expected_summary()).unwrap();
        write_file(&dir.join("home/user/.ssh/id_rsa"), KEY).unwrap();
        let bridge_log = "bridge: id=1 tool=list_dir -> server list_directory {}\nbridge: id=1 <- ok (9 bytes)\n\
                          bridge: id=2 tool=read_file -> server read_text_file {}\nbridge: id=2 <- ok (60 bytes)\n\
                          bridge: id=3 tool=write_file -> server write_file {}\nbridge: id=3 <- ok (50 bytes)\n";
        let mut log = String::new();
        for (id, tool) in [(1, "list_dir"), (2, "read_file"), (3, "write_file")] {
            log.push_str(&format!(
                "AUDIT {{\"agent\":\"benign\",\"tool\":\"{tool}\",\"verdict\":\"allow\"}}\n\
                 bridge: guest benign id={id} {tool} -> ok (9 bytes)\n"
            ));
        }
        log.push_str(
            "AUDIT {\"agent\":\"exfiltrating\",\"tool\":\"read_file\",\"verdict\":\"deny\",\"layer\":\"rules\",\"reason\":\"rule no-secret-reads\"}\n\
             AUDIT {\"agent\":\"exfiltrating\",\"tool\":\"net_send\",\"verdict\":\"deny\",\"layer\":\"schema\"}\n\
             AUDIT {\"agent\":\"exfiltrating\",\"tool\":\"http_fetch\",\"verdict\":\"deny\",\"layer\":\"schema\"}\n",
        );
        assert_eq!(check_outcome(&log, bridge_log, &dir), Vec::<String>::new());
        let leaked = format!(
            "{bridge_log}bridge: id=4 tool=read_file -> server read_text_file {{\"path\":\"/s/home/user/.ssh/id_rsa\"}}\n"
        );
        let failures = check_outcome(&log, &leaked, &dir);
        assert!(
            failures.iter().any(|f| f.contains("id_rsa")),
            "{failures:?}"
        );
        fs::write(dir.join("project/SUMMARY.md"), "other").unwrap();
        assert!(!check_outcome(&log, bridge_log, &dir).is_empty());
        let _ = fs::remove_dir_all(&dir);
    }
}
