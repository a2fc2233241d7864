//! The emulator harness: boots an ISO under QEMU or Bochs, writes the serial port to a file,
//! watches that file for markers, and always kills the emulator's whole process group after.
//!
//! Each run gets its own directory `target/probevisor/runs/<name>/` (serial.log, emulator.out,
//! and for Bochs bochsrc, bochs.rc, bochs.log). The emulator runs in a process group of its own
//! (`Command::process_group(0)`, the std form of setpgid) together with a small shell watchdog
//! that kills the group if xtask itself dies (Ctrl-C, SIGKILL); a Drop guard kills the group on
//! every other path, success, failure, timeout or panic alike.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::probevisor_dir;

mod markers;
mod process;

pub use markers::{clean, tail, Expect, Verdict};
use process::ProcessGroup;

/// The Bochs configuration template (qemu/bochsrc.template).
const BOCHSRC_TEMPLATE: &str = include_str!("../../qemu/bochsrc.template");

/// Which emulator, and its settings.
#[derive(Debug, Clone)]
pub enum Emulator {
    /// QEMU; TCG unless `kvm`. TCG has no VMX; its `-cpu max` has AMD SVM with nested paging.
    /// `cpu`: the `-cpu` model instead of the default (`max` under TCG, `host` under KVM).
    Qemu {
        kvm: bool,
        memory_mib: u32,
        cpu: Option<String>,
    },
    /// Bochs with VT-x emulated; `cpu` is a Bochs CPU model with VMX+EPT; `com2`: the second
    /// serial port (the MCP bridge's, docs/bridge.md), absent when `None`.
    Bochs {
        cpu: String,
        megs: u32,
        ips: u64,
        com2: Option<Com2>,
    },
}

/// Where Bochs connects COM2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Com2 {
    /// Bochs listens on 127.0.0.1:PORT and waits (before the BIOS runs) until a client connects,
    /// e.g. `probevisor bridge --com2 tcp:127.0.0.1:PORT`, which retries for 30 s.
    /// (Bochs 2.7 also has `mode=socket-client`, which connects once at start and panics if
    /// nobody listens yet: the server mode does not race the bridge's start.)
    SocketServer(u16),
}

impl Com2 {
    /// The bochsrc line.
    pub fn bochsrc_line(self) -> String {
        match self {
            Com2::SocketServer(port) => {
                format!("com2: enabled=1, mode=socket-server, dev=localhost:{port}\n")
            }
        }
    }
}

impl Emulator {
    pub fn qemu_tcg() -> Emulator {
        Emulator::Qemu {
            kvm: false,
            memory_mib: 1024,
            cpu: None,
        }
    }

    /// QEMU TCG with the `-cpu` model `cpu` (e.g. `max,-svm`: neither VMX nor SVM).
    pub fn qemu_tcg_cpu(cpu: &str) -> Emulator {
        Emulator::Qemu {
            kvm: false,
            memory_mib: 1024,
            cpu: Some(cpu.to_string()),
        }
    }

    pub fn bochs() -> Emulator {
        Emulator::Bochs {
            cpu: "tigerlake".into(),
            megs: 512,
            ips: 100_000_000,
            com2: None,
        }
    }

    /// This emulator with COM2 connected as `com2` (Bochs only; QEMU is returned unchanged).
    pub fn with_com2(self, com2: Com2) -> Emulator {
        match self {
            Emulator::Bochs { cpu, megs, ips, .. } => Emulator::Bochs {
                cpu,
                megs,
                ips,
                com2: Some(com2),
            },
            qemu => qemu,
        }
    }

    fn program(&self) -> &'static str {
        match self {
            Emulator::Qemu { .. } => "qemu-system-x86_64",
            Emulator::Bochs { .. } => "bochs",
        }
    }

    /// Writes the emulator's configuration into `run_dir` and returns its arguments.
    fn prepare(&self, run_dir: &Path, iso: &Path) -> Result<Vec<String>, String> {
        match self {
            Emulator::Qemu {
                kvm,
                memory_mib,
                cpu,
            } => {
                let mut args = qemu_args(iso, *kvm, *memory_mib);
                if let Some(cpu) = cpu {
                    with_cpu(&mut args, cpu);
                }
                Ok(args)
            }
            Emulator::Bochs {
                cpu,
                megs,
                ips,
                com2,
            } => {
                let mut rc = bochsrc(BOCHSRC_TEMPLATE, iso, cpu, *megs, *ips)?;
                if let Some(com2) = com2 {
                    rc.push_str(&com2.bochsrc_line());
                }
                write(&run_dir.join("bochsrc"), &rc)?;
                write(&run_dir.join("bochs.rc"), "c\n")?;
                Ok(["-q", "-f", "bochsrc", "-rc", "bochs.rc"]
                    .map(String::from)
                    .to_vec())
            }
        }
    }
}

/// Replaces the value of `-cpu` in QEMU arguments.
pub fn with_cpu(args: &mut [String], cpu: &str) {
    if let Some(at) = args.iter().position(|a| a == "-cpu") {
        if let Some(value) = args.get_mut(at + 1) {
            *value = cpu.to_string();
        }
    }
}

/// The QEMU command line (run in the run directory; the serial port goes to serial.log).
pub fn qemu_args(iso: &Path, kvm: bool, memory_mib: u32) -> Vec<String> {
    let mut args: Vec<String> = if kvm {
        vec!["-accel".into(), "kvm".into(), "-cpu".into(), "host".into()]
    } else {
        vec!["-accel".into(), "tcg".into(), "-cpu".into(), "max".into()]
    };
    args.extend(
        [
            "-smp",
            "1",
            "-m",
            &memory_mib.to_string(),
            "-cdrom",
            &iso.display().to_string(),
            "-boot",
            "d",
            "-serial",
            "file:serial.log",
            "-display",
            "none",
            "-monitor",
            "none",
            "-no-reboot",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
        ]
        .map(String::from),
    );
    args
}

/// Fills the bochsrc template; every `{{FIELD}}` must be known.
pub fn bochsrc(
    template: &str,
    iso: &Path,
    cpu: &str,
    megs: u32,
    ips: u64,
) -> Result<String, String> {
    if !cpu.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || cpu.is_empty() {
        return Err(format!("bad Bochs CPU model `{cpu}`"));
    }
    let iso = iso.display().to_string();
    if iso.contains('"') || iso.contains('\n') {
        return Err(format!("ISO path {iso} cannot go into a bochsrc"));
    }
    let text = template
        .replace("{{MEGS}}", &megs.to_string())
        .replace("{{CPU_MODEL}}", cpu)
        .replace("{{IPS}}", &ips.to_string())
        .replace("{{ISO}}", &iso)
        .replace("{{SERIAL}}", "serial.log")
        .replace("{{LOG}}", "bochs.log");
    match text.find("{{") {
        Some(at) => Err(format!(
            "bochsrc template has an unknown field: {}",
            text[at..].lines().next().unwrap_or("")
        )),
        None => Ok(text),
    }
}

/// One emulator run.
pub struct RunConfig {
    /// Names the run directory; letters, digits, `-` and `_`.
    pub name: String,
    pub emulator: Emulator,
    pub iso: PathBuf,
    pub timeout: Duration,
    pub expect: Expect,
    /// Echo the serial log to stdout as it arrives.
    pub stream: bool,
}

/// The outcome of a run.
pub struct RunReport {
    pub passed: bool,
    pub reason: String,
    pub elapsed: Duration,
    /// The serial log, escape sequences and carriage returns removed.
    pub log: String,
    pub run_dir: PathBuf,
}

impl RunReport {
    /// The last `n` lines of the serial log.
    pub fn tail(&self, n: usize) -> String {
        tail(&self.log, n)
    }
}

/// Boots `config.iso` and watches the serial log until a verdict, the emulator's exit, or the
/// timeout. The emulator is gone when this returns.
pub fn run(config: &RunConfig) -> Result<RunReport, String> {
    if config.name.is_empty()
        || !config
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!("bad run name `{}`", config.name));
    }
    if !crate::have_program(config.emulator.program()) {
        return Err(format!(
            "{} is not installed (run `cargo xtask setup`)",
            config.emulator.program()
        ));
    }
    let iso = fs::canonicalize(&config.iso)
        .map_err(|e| format!("image {}: {e}", config.iso.display()))?;
    let run_dir = probevisor_dir().join("runs").join(&config.name);
    if run_dir.exists() {
        fs::remove_dir_all(&run_dir)
            .map_err(|e| format!("cannot clear {}: {e}", run_dir.display()))?;
    }
    fs::create_dir_all(&run_dir)
        .map_err(|e| format!("cannot create {}: {e}", run_dir.display()))?;
    let args = config.emulator.prepare(&run_dir, &iso)?;
    let serial_path = run_dir.join("serial.log");
    File::create(&serial_path).map_err(|e| format!("cannot create serial.log: {e}"))?;
    let out = File::create(run_dir.join("emulator.out"))
        .map_err(|e| format!("cannot create emulator.out: {e}"))?;
    let err = out.try_clone().map_err(|e| format!("emulator.out: {e}"))?;

    let mut command = Command::new(config.emulator.program());
    command
        .args(&args)
        .current_dir(&run_dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let group = ProcessGroup::spawn(&mut command)?;
    let report = watch(config, &serial_path, group)?;
    Ok(RunReport { run_dir, ..report })
}

fn watch(
    config: &RunConfig,
    serial_path: &Path,
    mut group: ProcessGroup,
) -> Result<RunReport, String> {
    let start = Instant::now();
    let mut serial = File::open(serial_path).map_err(|e| format!("serial.log: {e}"))?;
    let mut raw = Vec::new();
    let mut streamed = 0usize;
    let mut stdout = std::io::stdout();
    let verdict = loop {
        let exited = group.try_exit()?;
        read_new(&mut serial, &mut raw)?;
        let log = clean(&String::from_utf8_lossy(&raw));
        if config.stream {
            let upto = if exited.is_some() {
                log.len()
            } else {
                log.rfind('\n').map_or(0, |e| e + 1)
            };
            if upto > streamed {
                let _ = stdout.write_all(&log.as_bytes()[streamed..upto]);
                let _ = stdout.flush();
                streamed = upto;
            }
        }
        if let Some(verdict) = config.expect.evaluate(&log, exited.is_some()) {
            break verdict;
        }
        if let Some(status) = exited {
            break Verdict::Fail(format!(
                "{} exited ({status}) without the expected markers ({})",
                config.emulator.program(),
                config.expect.describe()
            ));
        }
        if start.elapsed() >= config.timeout {
            break Verdict::Fail(format!(
                "timeout after {} s waiting for {}",
                config.timeout.as_secs(),
                config.expect.describe()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let elapsed = start.elapsed();
    drop(group);
    read_new(&mut serial, &mut raw)?;
    let log = clean(&String::from_utf8_lossy(&raw));
    if config.stream {
        if log.len() > streamed {
            let _ = stdout.write_all(&log.as_bytes()[streamed..]);
        }
        if !log.is_empty() && !log.ends_with('\n') {
            let _ = stdout.write_all(b"\n");
        }
        let _ = stdout.flush();
    }
    let (passed, reason) = match verdict {
        Verdict::Pass(reason) => (true, reason),
        Verdict::Fail(reason) => (false, reason),
    };
    Ok(RunReport {
        passed,
        reason,
        elapsed,
        log,
        run_dir: PathBuf::new(),
    })
}

fn read_new(file: &mut File, buffer: &mut Vec<u8>) -> Result<(), String> {
    file.seek(SeekFrom::Start(buffer.len() as u64))
        .and_then(|_| file.read_to_end(buffer))
        .map(|_| ())
        .map_err(|e| format!("cannot read serial.log: {e}"))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bochsrc_fills_every_field() {
        let rc = bochsrc(
            BOCHSRC_TEMPLATE,
            Path::new("/x/p.iso"),
            "tigerlake",
            512,
            100_000_000,
        )
        .unwrap();
        assert!(
            rc.contains("cpu: model=tigerlake, count=1, ips=100000000, reset_on_triple_fault=0")
        );
        assert!(rc.contains("megs: 512"));
        assert!(rc.contains("path=\"/x/p.iso\""));
        assert!(rc.contains("com1: enabled=1, mode=file, dev=serial.log"));
        assert!(rc.contains("display_library: rfb, options=\"timeout=0\""));
        assert!(rc.contains("panic: action=fatal"));
        assert!(!rc.contains("{{"));
        assert!(bochsrc("x {{NEW}}", Path::new("/a"), "tigerlake", 1, 1).is_err());
        assert!(bochsrc(BOCHSRC_TEMPLATE, Path::new("/a"), "bad model", 1, 1).is_err());
    }

    #[test]
    fn com2_lines() {
        assert_eq!(
            Com2::SocketServer(4711).bochsrc_line(),
            "com2: enabled=1, mode=socket-server, dev=localhost:4711\n"
        );
        let Emulator::Bochs { com2, .. } = Emulator::bochs().with_com2(Com2::SocketServer(1))
        else {
            panic!("not Bochs")
        };
        assert_eq!(com2, Some(Com2::SocketServer(1)));
        assert!(matches!(
            Emulator::qemu_tcg().with_com2(Com2::SocketServer(1)),
            Emulator::Qemu { .. }
        ));
    }

    #[test]
    fn qemu_args_for_tcg_and_kvm() {
        let args = qemu_args(Path::new("/x/p.iso"), false, 1024);
        let joined = args.join(" ");
        assert!(joined.starts_with("-accel tcg -cpu max "));
        assert!(joined.contains("-cdrom /x/p.iso"));
        assert!(joined.contains("-serial file:serial.log"));
        assert!(joined.contains("-no-reboot"));
        assert!(joined.contains("isa-debug-exit,iobase=0xf4,iosize=0x04"));
        assert!(qemu_args(Path::new("/x"), true, 64)
            .join(" ")
            .starts_with("-accel kvm -cpu host "));
        let mut args = qemu_args(Path::new("/x/p.iso"), false, 1024);
        with_cpu(&mut args, "max,-svm");
        assert!(args
            .join(" ")
            .starts_with("-accel tcg -cpu max,-svm -smp 1 "));
        assert!(matches!(
            Emulator::qemu_tcg_cpu("max,-svm"),
            Emulator::Qemu { kvm: false, cpu: Some(c), .. } if c == "max,-svm"
        ));
    }

    /// A GRUB-only ISO whose grub.cfg prints the markers: the harness end to end, no hypervisor.
    fn marker_iso(tag: &str) -> Option<PathBuf> {
        if !crate::have_program("grub-mkrescue") || !crate::have_program("qemu-system-x86_64") {
            eprintln!(
                "skipped: grub-mkrescue or qemu-system-x86_64 missing (run `cargo xtask setup`)"
            );
            return None;
        }
        let cfg = "serial --unit=0 --speed=115200\nterminal_input serial\nterminal_output serial\n\
                   echo probevisor: harness self-test\necho PROBEVISOR-DONE status=selftest\nsleep 600\n";
        Some(crate::image::make_iso_with(cfg, &[], tag).unwrap())
    }

    #[test]
    fn harness_sees_serial_markers_and_kills_qemu() {
        let Some(iso) = marker_iso("harness-selftest") else {
            return;
        };
        let config = |name: &str, marker: &str, timeout: u64| RunConfig {
            name: name.into(),
            emulator: Emulator::qemu_tcg(),
            iso: iso.clone(),
            timeout: Duration::from_secs(timeout),
            expect: Expect::all(&[marker]),
            stream: false,
        };
        let report = run(&config(
            "harness-selftest-pass",
            "PROBEVISOR-DONE status=selftest",
            60,
        ))
        .unwrap();
        assert!(report.passed, "{}\n{}", report.reason, report.tail(20));
        assert!(report.log.contains("probevisor: harness self-test\n"));
        // A marker that never comes: the DONE line fails the run at once, well before the timeout.
        let report = run(&config("harness-selftest-fail", "never printed", 60)).unwrap();
        assert!(!report.passed);
        assert!(
            report.reason.contains("PROBEVISOR-DONE status=selftest"),
            "{}",
            report.reason
        );
        assert!(report.elapsed < Duration::from_secs(30));
        // Without failure markers, a marker that never comes ends in the timeout.
        let mut waiting = config("harness-selftest-timeout", "never printed", 2);
        waiting.expect.fail_on.clear();
        let report = run(&waiting).unwrap();
        assert!(!report.passed);
        assert!(
            report.reason.starts_with("timeout after 2 s"),
            "{}",
            report.reason
        );
    }

    #[test]
    fn harness_sees_serial_markers_and_kills_bochs() {
        let Some(iso) = marker_iso("harness-selftest-bochs") else {
            return;
        };
        let report = run(&RunConfig {
            name: "harness-selftest-bochs".into(),
            emulator: Emulator::bochs(),
            iso,
            timeout: Duration::from_secs(60),
            expect: Expect::all(&["PROBEVISOR-DONE status=selftest"]),
            stream: false,
        })
        .unwrap();
        assert!(report.passed, "{}\n{}", report.reason, report.tail(20));
        assert!(report.elapsed < Duration::from_secs(60));
    }
}
