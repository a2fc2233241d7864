//! The QEMU/KVM engine with nested VT-x: `qemu/kvm-nested.sh` checks the machine (`--check`) and
//! boots an image. xtask only calls the script, so `cargo xtask run --engine kvm` and a user running
//! the script by hand get the same checks and the same QEMU command line.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The script, relative to the workspace root.
pub const SCRIPT: &str = "qemu/kvm-nested.sh";

/// Why the script's checks failed: its exit code and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unusable {
    pub code: i32,
    pub message: String,
}

fn script() -> PathBuf {
    crate::workspace_root().join(SCRIPT)
}

/// Runs `kvm-nested.sh --check`: `Ok(its message)` when KVM with nested VT-x is usable here.
pub fn check() -> Result<String, Unusable> {
    check_with(&mut Command::new(script()))
}

fn check_with(command: &mut Command) -> Result<String, Unusable> {
    let output = command.arg("--check").output().map_err(|e| Unusable {
        code: -1,
        message: format!("cannot run {SCRIPT}: {e}"),
    })?;
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).trim().to_string();
    if output.status.success() {
        Ok(text(&output.stdout))
    } else {
        Err(Unusable {
            code: output.status.code().unwrap_or(-1),
            message: text(&output.stderr),
        })
    }
}

/// Boots `iso` with the script, COM1 into `serial`; returns the serial log (cleaned of escape
/// sequences) whatever the script's exit status, which is reported alongside.
pub fn boot(iso: &Path, serial: &Path, timeout: Duration) -> Result<(String, Option<i32>), String> {
    let _ = std::fs::remove_file(serial);
    let status = Command::new(script())
        .current_dir(crate::workspace_root())
        .arg("--iso")
        .arg(iso)
        .arg("--serial")
        .arg(serial)
        .args(["--timeout", &timeout.as_secs().to_string()])
        .status()
        .map_err(|e| format!("cannot run {SCRIPT}: {e}"))?;
    let raw = std::fs::read(serial).unwrap_or_default();
    Ok((
        crate::emulator::clean(&String::from_utf8_lossy(&raw)),
        status.code(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory with fake /dev/kvm, cpuinfo and nested-parameter files.
    struct Fake {
        dir: PathBuf,
    }

    const INTEL: &str = "vendor_id\t: GenuineIntel\nflags\t\t: fpu vme sse2 vmx ept avx2\n";

    impl Fake {
        fn new(name: &str) -> Fake {
            let dir = std::env::temp_dir().join(format!(
                "probevisor-kvm-nested-{name}-{}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Fake { dir }
        }

        fn file(&self, name: &str, text: &str) -> PathBuf {
            let path = self.dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        }

        /// The script with every path faked: `dev` for /dev/kvm, and the given file contents.
        fn command(&self, dev: &Path, cpuinfo: &str, nested: Option<&str>) -> Command {
            let mut command = Command::new(script());
            command
                .env("PROBEVISOR_KVM_DEV", dev)
                .env("PROBEVISOR_CPUINFO", self.file("cpuinfo", cpuinfo))
                .env(
                    "PROBEVISOR_NESTED_PARAM",
                    match nested {
                        Some(value) => self.file("nested", value),
                        None => self.dir.join("no-such-param"),
                    },
                )
                .env("PROBEVISOR_QEMU", "sh");
            command
        }
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn expect_unusable(result: Result<String, Unusable>, code: i32, needle: &str) {
        let err = result.expect_err("the check should fail");
        assert_eq!(err.code, code, "{}", err.message);
        assert!(
            err.message.starts_with("kvm-nested: ") && err.message.contains(needle),
            "{:?} lacks {needle:?}",
            err.message
        );
    }

    const CHAR_DEV: &str = "/dev/null";

    #[test]
    fn missing_kvm_device() {
        let fake = Fake::new("missing");
        let dev = fake.dir.join("kvm");
        expect_unusable(
            check_with(&mut fake.command(&dev, INTEL, Some("Y\n"))),
            10,
            "is missing",
        );
    }

    #[test]
    fn kvm_device_that_is_not_a_character_device() {
        let fake = Fake::new("notdev");
        let dev = fake.file("kvm", "");
        expect_unusable(
            check_with(&mut fake.command(&dev, INTEL, Some("Y\n"))),
            11,
            "not accessible",
        );
    }

    #[test]
    fn amd_cpu_is_refused() {
        let fake = Fake::new("amd");
        let amd = "vendor_id\t: AuthenticAMD\nflags\t\t: fpu svm\n";
        expect_unusable(
            check_with(&mut fake.command(Path::new(CHAR_DEV), amd, Some("Y\n"))),
            12,
            "not Intel (vendor_id AuthenticAMD)",
        );
    }

    #[test]
    fn intel_cpu_without_vmx() {
        let fake = Fake::new("novmx");
        // "vmxabc" must not count as the vmx flag.
        let cpuinfo = "vendor_id\t: GenuineIntel\nflags\t\t: fpu vmxabc sse2\n";
        expect_unusable(
            check_with(&mut fake.command(Path::new(CHAR_DEV), cpuinfo, Some("Y\n"))),
            13,
            "no vmx flag",
        );
    }

    #[test]
    fn nested_off_or_kvm_intel_not_loaded() {
        let fake = Fake::new("nested");
        for value in ["N\n", "0\n"] {
            expect_unusable(
                check_with(&mut fake.command(Path::new(CHAR_DEV), INTEL, Some(value))),
                14,
                "nested VT-x is off",
            );
        }
        expect_unusable(
            check_with(&mut fake.command(Path::new(CHAR_DEV), INTEL, None)),
            14,
            "kvm_intel is not loaded",
        );
    }

    #[test]
    fn qemu_missing() {
        let fake = Fake::new("noqemu");
        let mut command = fake.command(Path::new(CHAR_DEV), INTEL, Some("Y\n"));
        command.env("PROBEVISOR_QEMU", "no-such-qemu-binary");
        expect_unusable(check_with(&mut command), 15, "is not installed");
    }

    #[test]
    fn all_checks_pass() {
        let fake = Fake::new("ok");
        for value in ["Y\n", "1\n"] {
            let message =
                check_with(&mut fake.command(Path::new(CHAR_DEV), INTEL, Some(value))).unwrap();
            assert!(message.contains("nested VT-x on"), "{message}");
        }
    }

    #[test]
    fn boot_passes_kvm_arguments_and_maps_the_exit_status() {
        use std::os::unix::fs::PermissionsExt;
        let fake = Fake::new("boot");
        let iso = fake.file("probevisor.iso", "");
        let args_file = fake.dir.join("args");
        // A stand-in QEMU: records its arguments and exits with $FAKE_QEMU_STATUS (QEMU exits 33
        // after status=ok through isa-debug-exit, 35 after any other status).
        let qemu = fake.file(
            "fake-qemu",
            &format!(
                "#!/bin/sh\necho \"$@\" > {}\nexit $FAKE_QEMU_STATUS\n",
                args_file.display()
            ),
        );
        std::fs::set_permissions(&qemu, std::fs::Permissions::from_mode(0o755)).unwrap();
        for (status, code) in [("33", 0), ("35", 1), ("1", 1)] {
            let output = fake
                .command(Path::new(CHAR_DEV), INTEL, Some("Y\n"))
                .env("PROBEVISOR_QEMU", &qemu)
                .env("FAKE_QEMU_STATUS", status)
                .arg("--iso")
                .arg(&iso)
                .args(["--serial", "serial.log"])
                .args(["--com2", "unix:/tmp/x.sock,server,nowait"])
                .output()
                .unwrap();
            assert_eq!(output.status.code(), Some(code), "QEMU status {status}");
        }
        let args = std::fs::read_to_string(&args_file).unwrap();
        for needle in [
            "-enable-kvm -cpu host,+vmx",
            "-serial file:serial.log",
            "-serial unix:/tmp/x.sock,server,nowait",
            "-device isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-no-reboot",
        ] {
            assert!(args.contains(needle), "{args:?} lacks {needle:?}");
        }
        // No ISO: a distinct code before QEMU starts.
        let output = fake
            .command(Path::new(CHAR_DEV), INTEL, Some("Y\n"))
            .env("PROBEVISOR_QEMU", &qemu)
            .args(["--iso", "/no/such.iso"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(3));
    }
}
