//! `cargo xtask`: the single entry point of probevisor (setup, build, image, emulators, tests, run).
//!
//! An ordinary std binary without dependencies. Every command is a function returning
//! `Result<(), String>`; the error is printed and the process exits non-zero.

mod agent;
mod bench;
mod emulator;
mod gate_scenario;
mod image;
mod kvm_nested;
mod mcp_server;
mod run;
mod setup;
mod test;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  run [--engine auto|kvm|tcg|bochs] [--model PATH] [--policy FILE] [--agents a,b,c] [--audit-out FILE]
                          the main job: setup, build, boot the agents under the gate (Bochs, or QEMU/KVM
                          with nested VT-x), stream each decision, verify the audit chain, print a table
  test                    every test: setup, host unit tests, clippy, emulator boot tests; ends with `N passed, M failed`
  setup [--models LIST]   install what is missing (Debian packages, rust target, models); LIST: smollm2,gemma3,qwen25coder|all|none
  build                   build the host crates and the hypervisor image ELF
  image [--cmdline STR] [--module PATH[:NAME]]...
                          build a bootable hybrid BIOS/UEFI ISO (GRUB, multiboot2) and print its path
  qemu [--cmdline STR] [--module PATH[:NAME]]... [--timeout SECS] [--kvm]
                          boot the image under QEMU (TCG unless --kvm) and stream the serial log
  bochs [--cmdline STR] [--module PATH[:NAME]]... [--timeout SECS] [--cpu MODEL]
                          boot the image under Bochs (VT-x emulated) and stream the serial log
  bench [...]             inference benchmarks
  agent [...]             guest agent tools
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match command.as_str() {
        "setup" => setup::command(rest),
        "build" => image::build_command(rest),
        "image" => image::image_command(rest),
        "qemu" => run::qemu_command(rest),
        "bochs" => run::bochs_command(rest),
        "test" => test::command(rest),
        "run" => run::run_command(rest),
        "bench" => bench::run(rest),
        "agent" => agent::run(rest),
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask {command}: error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of xtask/).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The workspace's own target directory. Builds started by xtask always go here, whatever
/// CARGO_TARGET_DIR the xtask binary itself was built with, so images land in one known place.
pub fn target_dir() -> PathBuf {
    workspace_root().join("target")
}

/// Where xtask puts its own outputs (images, emulator run directories).
pub fn probevisor_dir() -> PathBuf {
    target_dir().join("probevisor")
}

/// A `cargo` command run in the workspace root and building into [`target_dir`].
pub fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace_root())
        .env("CARGO_TARGET_DIR", target_dir());
    command
}

/// Runs a command to completion with inherited stdio; an error names the command on failure.
pub fn run_status(command: &mut Command) -> Result<(), String> {
    let shown = describe(command);
    let status = command
        .status()
        .map_err(|e| format!("cannot start `{shown}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{shown}` failed ({status})"))
    }
}

/// Runs a command and returns its stdout; stderr is passed through.
pub fn run_output(command: &mut Command) -> Result<String, String> {
    let shown = describe(command);
    let output = command
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot start `{shown}`: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!("`{shown}` failed ({})", output.status))
    }
}

/// Whether a program can be found on PATH.
pub fn have_program(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
}

fn describe(command: &Command) -> String {
    let mut text = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// A tiny option parser: `--flag VALUE` pairs, `--switch` booleans, nothing positional.
pub struct Options {
    values: Vec<(String, String)>,
    switches: Vec<String>,
}

impl Options {
    /// Parses `args`; `valued` lists options that take a value, `switches` those that do not.
    pub fn parse(args: &[String], valued: &[&str], switches: &[&str]) -> Result<Options, String> {
        let mut options = Options {
            values: Vec::new(),
            switches: Vec::new(),
        };
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) if name.starts_with("--") => (name, Some(value.to_string())),
                _ => (arg.as_str(), None),
            };
            if valued.contains(&name) {
                let value = match inline {
                    Some(value) => value,
                    None => iter
                        .next()
                        .ok_or_else(|| format!("option {name} needs a value"))?
                        .clone(),
                };
                options.values.push((name.to_string(), value));
            } else if switches.contains(&name) && inline.is_none() {
                options.switches.push(name.to_string());
            } else {
                return Err(format!("unexpected argument `{arg}`"));
            }
        }
        Ok(options)
    }

    /// The last value given for `name`.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value given for `name`, in order.
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.values
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn switch(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    /// A value parsed as whole seconds.
    pub fn seconds(&self, name: &str) -> Result<Option<u64>, String> {
        self.value(name)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| format!("{name} expects whole seconds, got `{v}`"))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_parse_values_switches_and_inline_form() {
        let args = strings(&[
            "--cmdline",
            "test=ud log=debug",
            "--module=a.gguf:model",
            "--module",
            "b",
            "--kvm",
        ]);
        let options = Options::parse(&args, &["--cmdline", "--module"], &["--kvm"]).unwrap();
        assert_eq!(options.value("--cmdline"), Some("test=ud log=debug"));
        assert_eq!(options.values("--module"), vec!["a.gguf:model", "b"]);
        assert!(options.switch("--kvm"));
        assert!(!options.switch("--other"));
    }

    #[test]
    fn options_reject_unknown_and_missing_value() {
        let err = Options::parse(&strings(&["--bogus"]), &["--cmdline"], &[]).err();
        assert_eq!(err.as_deref(), Some("unexpected argument `--bogus`"));
        let err = Options::parse(&strings(&["--cmdline"]), &["--cmdline"], &[]).err();
        assert_eq!(err.as_deref(), Some("option --cmdline needs a value"));
        let err = Options::parse(&strings(&["positional"]), &[], &[]).err();
        assert!(err.is_some());
    }

    #[test]
    fn options_seconds_checks_numbers() {
        let options = Options::parse(&strings(&["--timeout", "12"]), &["--timeout"], &[]).unwrap();
        assert_eq!(options.seconds("--timeout"), Ok(Some(12)));
        let options = Options::parse(&strings(&["--timeout", "x"]), &["--timeout"], &[]).unwrap();
        assert!(options.seconds("--timeout").is_err());
        assert_eq!(options.seconds("--absent"), Ok(None));
    }
}
