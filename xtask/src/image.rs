//! `cargo xtask build` and `cargo xtask image`: the hypervisor ELF and a bootable ISO around it.
//!
//! The ISO is a hybrid BIOS/UEFI image made by `grub-mkrescue`; GRUB talks on COM1 and loads the
//! hypervisor with `multiboot2`, plus any modules (`module2`), for example a model file.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{cargo, probevisor_dir, run_status, target_dir, Options};

/// The bare-metal target of the hypervisor image.
pub const IMAGE_TARGET: &str = "x86_64-unknown-none";

/// A file GRUB loads next to the hypervisor: its path on this machine and its name on the ISO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub path: PathBuf,
    pub name: String,
}

impl Module {
    /// Parses `PATH[:NAME]`; without NAME the file name is used.
    pub fn parse(spec: &str) -> Result<Module, String> {
        let (path, name) = match spec.rsplit_once(':') {
            Some((path, name)) if !name.contains('/') && !path.is_empty() => {
                (path, name.to_string())
            }
            _ => {
                let name = Path::new(spec)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(|| format!("module `{spec}` has no file name"))?;
                (spec, name.to_string())
            }
        };
        check_word(&name, "module name", false)?;
        if name == "hypervisor" || name == "grub" {
            return Err(format!("module name `{name}` is reserved"));
        }
        Ok(Module {
            path: PathBuf::from(path),
            name,
        })
    }
}

/// Characters allowed in a command line or module name: nothing GRUB's script language treats
/// specially (quotes, `$`, `;`, braces, backslash, newlines).
fn check_word(text: &str, what: &str, spaces: bool) -> Result<(), String> {
    let bad = text.chars().find(|c| {
        !(c.is_ascii_alphanumeric() || "=,._:/+-@%".contains(*c) || (spaces && *c == ' '))
    });
    match bad {
        Some(c) => Err(format!(
            "{what} `{text}` contains `{}`; allowed: letters, digits, = , . _ : / + - @ %{}",
            c.escape_default(),
            if spaces { " and spaces" } else { "" }
        )),
        None if text.is_empty() && !spaces => Err(format!("{what} is empty")),
        None => Ok(()),
    }
}

/// The grub.cfg for a hypervisor command line and modules.
pub fn grub_cfg(cmdline: &str, modules: &[Module]) -> Result<String, String> {
    check_word(cmdline, "command line", true)?;
    let mut cfg = String::from(
        "serial --unit=0 --speed=115200\n\
         terminal_input serial\n\
         terminal_output serial\n\
         set timeout=0\n",
    );
    let cmdline = cmdline.split_whitespace().collect::<Vec<_>>().join(" ");
    if cmdline.is_empty() {
        cfg.push_str("multiboot2 /boot/hypervisor\n");
    } else {
        cfg.push_str(&format!("multiboot2 /boot/hypervisor {cmdline}\n"));
    }
    for module in modules {
        check_word(&module.name, "module name", false)?;
        cfg.push_str(&format!("module2 /boot/{0} {0}\n", module.name));
    }
    cfg.push_str("boot\n");
    Ok(cfg)
}

/// `build`: host crates, then the hypervisor image ELF.
pub fn build_command(args: &[String]) -> Result<(), String> {
    Options::parse(args, &[], &[])?;
    run_status(cargo().args(["build", "--workspace"]))?;
    let elf = build_hypervisor()?;
    println!("{}", elf.display());
    Ok(())
}

/// Builds the hypervisor ELF (release, bare-metal target) and returns its path.
pub fn build_hypervisor() -> Result<PathBuf, String> {
    run_status(cargo().args([
        "build",
        "-p",
        "hypervisor",
        "--bin",
        "hypervisor",
        "--target",
        IMAGE_TARGET,
        "--release",
    ]))?;
    let elf = target_dir()
        .join(IMAGE_TARGET)
        .join("release")
        .join("hypervisor");
    if elf.is_file() {
        Ok(elf)
    } else {
        Err(format!("the build left no image at {}", elf.display()))
    }
}

/// `image [--cmdline STR] [--module PATH[:NAME]]...`
pub fn image_command(args: &[String]) -> Result<(), String> {
    let options = Options::parse(args, &["--cmdline", "--module"], &[])?;
    let modules = options
        .values("--module")
        .into_iter()
        .map(Module::parse)
        .collect::<Result<Vec<_>, _>>()?;
    let elf = build_hypervisor()?;
    let iso = make_iso(
        &elf,
        options.value("--cmdline").unwrap_or(""),
        &modules,
        "probevisor",
    )?;
    println!("{}", iso.display());
    Ok(())
}

/// Builds the hypervisor and an ISO named `tag` with the given command line; returns the ISO.
pub fn build_image(cmdline: &str, modules: &[Module], tag: &str) -> Result<PathBuf, String> {
    let elf = build_hypervisor()?;
    make_iso(&elf, cmdline, modules, tag)
}

/// Lays out `target/probevisor/iso/<tag>/boot/...` and runs grub-mkrescue into
/// `target/probevisor/<tag>.iso`.
pub fn make_iso(
    elf: &Path,
    cmdline: &str,
    modules: &[Module],
    tag: &str,
) -> Result<PathBuf, String> {
    let cfg = grub_cfg(cmdline, modules)?;
    let mut files = vec![(elf.to_path_buf(), "hypervisor".to_string())];
    for module in modules {
        if !module.path.is_file() {
            return Err(format!(
                "module file {} does not exist",
                module.path.display()
            ));
        }
        files.push((module.path.clone(), module.name.clone()));
    }
    make_iso_with(&cfg, &files, tag)
}

/// An ISO from a grub.cfg and files placed in /boot under the given names.
pub fn make_iso_with(cfg: &str, files: &[(PathBuf, String)], tag: &str) -> Result<PathBuf, String> {
    check_word(tag, "image tag", false)?;
    let staging = probevisor_dir().join("iso").join(tag);
    if staging.exists() {
        fs::remove_dir_all(&staging)
            .map_err(|e| format!("cannot clear {}: {e}", staging.display()))?;
    }
    let boot = staging.join("boot");
    fs::create_dir_all(boot.join("grub"))
        .map_err(|e| format!("cannot create {}: {e}", boot.display()))?;
    fs::write(boot.join("grub").join("grub.cfg"), cfg).map_err(|e| format!("grub.cfg: {e}"))?;
    for (path, name) in files {
        link_or_copy(path, &boot.join(name))?;
    }
    let iso = probevisor_dir().join(format!("{tag}.iso"));
    let output = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(&iso)
        .arg(&staging)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot start grub-mkrescue (run `cargo xtask setup`): {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "grub-mkrescue failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(iso)
}

/// Hard-links `from` to `to` (models are large), copying where a link is not possible.
fn link_or_copy(from: &Path, to: &Path) -> Result<(), String> {
    if fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grub_cfg_without_modules() {
        let cfg = grub_cfg("", &[]).unwrap();
        assert!(cfg.starts_with("serial --unit=0 --speed=115200\nterminal_input serial\nterminal_output serial\nset timeout=0\n"));
        assert!(cfg.ends_with("set timeout=0\nmultiboot2 /boot/hypervisor\nboot\n"));
        assert!(!cfg.contains("module2"));
    }

    #[test]
    fn grub_cfg_with_cmdline_and_modules() {
        let modules = vec![
            Module::parse("/tmp/models/SmolLM2.gguf:model").unwrap(),
            Module::parse("policy.toml").unwrap(),
        ];
        let cfg = grub_cfg("test=ud   log=debug", &modules).unwrap();
        assert!(cfg.contains("\nmultiboot2 /boot/hypervisor test=ud log=debug\n"));
        assert!(cfg.ends_with(
            "\nmodule2 /boot/model model\nmodule2 /boot/policy.toml policy.toml\nboot\n"
        ));
    }

    #[test]
    fn grub_cfg_rejects_script_characters() {
        assert!(grub_cfg("a; reboot", &[]).unwrap_err().contains("`;`"));
        assert!(grub_cfg("$x", &[]).is_err());
        assert!(grub_cfg("a\nb", &[]).is_err());
        assert!(grub_cfg("say \"hi\"", &[]).is_err());
    }

    #[test]
    fn module_spec_parsing() {
        assert_eq!(
            Module::parse("a/b/c.gguf:m").unwrap(),
            Module {
                path: "a/b/c.gguf".into(),
                name: "m".into()
            }
        );
        assert_eq!(Module::parse("a/b/c.gguf").unwrap().name, "c.gguf");
        assert!(Module::parse("x:hypervisor").is_err());
        assert!(Module::parse("x:bad name").is_err());
        assert!(Module::parse("..").is_err());
        assert!(Module::parse("x:").is_err());
    }
}
