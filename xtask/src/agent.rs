//! `cargo xtask agent NAME|all|list`: build example agents (agents/NAME) for x86_64-unknown-none and check
//! that each image is what docs/agents.md promises: a static ELF EXEC, entry 0x400000, PT_LOAD segments
//! with virtual = physical addresses inside the agent window, a few tens of KiB.

use std::path::PathBuf;

/// Where agents are linked (guest virtual = guest physical); `_start` is the first byte.
pub const AGENT_BASE: u64 = 0x40_0000;
/// Every segment must end below this address (base + 4 MiB).
pub const AGENT_LIMIT: u64 = 0x80_0000;
/// Largest accepted image file.
pub const MAX_IMAGE_BYTES: u64 = 64 * 1024;
const TARGET: &str = "x86_64-unknown-none";

const USAGE: &str = "usage: cargo xtask agent <NAME|all|list>   (NAME: a folder of agents/)";

/// Entry point of `cargo xtask agent`.
pub fn run(args: &[String]) -> Result<(), String> {
    let names = match args {
        [one] if one == "list" => {
            for name in agent_names()? {
                println!("{name}");
            }
            return Ok(());
        }
        [one] if one == "all" => agent_names()?,
        [one] if !one.starts_with('-') => vec![one.clone()],
        _ => return Err(USAGE.into()),
    };
    for name in names {
        let path = build(&name)?;
        let bytes =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let image =
            check_elf(&bytes).map_err(|e| format!("agent {name}: {}: {e}", path.display()))?;
        println!(
            "agent {name}: {} ({} bytes, entry {:#x}, {} PT_LOAD, memory {:#x}..{:#x})",
            path.display(),
            bytes.len(),
            image.entry,
            image.loads,
            AGENT_BASE,
            image.end
        );
    }
    Ok(())
}

fn agents_dir() -> PathBuf {
    crate::workspace_root().join("agents")
}

/// Agent folder names (those with a Cargo.toml), sorted.
pub fn agent_names() -> Result<Vec<String>, String> {
    let dir = agents_dir();
    let entries =
        std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// Build agents/NAME in release for the bare-metal target; the path of its ELF image.
pub fn build(name: &str) -> Result<PathBuf, String> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
    if !valid || !agents_dir().join(name).join("Cargo.toml").is_file() {
        let known = agent_names()?.join(", ");
        return Err(format!("no agent `{name}` (agents/: {known})"));
    }
    let target_dir = crate::target_dir().join("agents");
    // Run inside agents/ so that its own workspace and .cargo/config.toml apply (plus the root's
    // static/no-PIE rustflags for the bare-metal target).
    let mut command = crate::cargo();
    command
        .current_dir(agents_dir())
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("RUSTFLAGS")
        .args(["build", "--release", "--target", TARGET, "--package"])
        .arg(format!("agent-{name}"));
    crate::run_status(&mut command)?;
    Ok(target_dir.join(TARGET).join("release").join(name))
}

/// What [`check_elf`] found.
#[derive(Debug, PartialEq, Eq)]
pub struct AgentImage {
    pub entry: u64,
    pub loads: usize,
    /// End of the highest PT_LOAD in memory.
    pub end: u64,
}

fn field(bytes: &[u8], offset: usize, len: usize) -> Result<u64, String> {
    let b = offset
        .checked_add(len)
        .and_then(|end| bytes.get(offset..end))
        .ok_or("ELF file truncated")?;
    Ok(b.iter().rev().fold(0u64, |acc, x| acc << 8 | u64::from(*x)))
}

/// Check an agent image against the documented format.
pub fn check_elf(bytes: &[u8]) -> Result<AgentImage, String> {
    if bytes.get(..4) != Some(b"\x7fELF") {
        return Err("not an ELF file".into());
    }
    if field(bytes, 4, 1)? != 2 || field(bytes, 5, 1)? != 1 {
        return Err("not a 64-bit little-endian ELF".into());
    }
    if bytes.len() as u64 > MAX_IMAGE_BYTES {
        return Err(format!(
            "image is {} bytes, limit {MAX_IMAGE_BYTES}",
            bytes.len()
        ));
    }
    match field(bytes, 16, 2)? {
        2 => {}
        3 => return Err("ELF type DYN (PIE); agents must be static EXEC".into()),
        t => return Err(format!("ELF type {t}, expected EXEC (2)")),
    }
    if field(bytes, 18, 2)? != 62 {
        return Err("machine is not x86_64".into());
    }
    let entry = field(bytes, 24, 8)?;
    if entry != AGENT_BASE {
        return Err(format!("entry point {entry:#x}, expected {AGENT_BASE:#x}"));
    }
    let phoff = usize::try_from(field(bytes, 32, 8)?).unwrap_or(usize::MAX);
    if field(bytes, 54, 2)? != 56 {
        return Err("program header size is not 56 (ELF64)".into());
    }
    let phnum = field(bytes, 56, 2)? as usize;
    let (mut loads, mut end) = (0, AGENT_BASE);
    for i in 0..phnum {
        // Past the end of the file (or of usize) reads as truncated below.
        let ph = phoff.saturating_add(i * 56);
        let p_type = field(bytes, ph, 4)?;
        let [offset, vaddr, paddr, filesz, memsz, align] =
            [8, 16, 24, 32, 40, 48].map(|o| field(bytes, ph + o, 8));
        match p_type {
            1 => {
                let (offset, vaddr, paddr, filesz, memsz, align) =
                    (offset?, vaddr?, paddr?, filesz?, memsz?, align?);
                if vaddr != paddr {
                    return Err(format!("segment {i}: vaddr {vaddr:#x} != paddr {paddr:#x}"));
                }
                let seg_end = vaddr
                    .checked_add(memsz)
                    .ok_or(format!("segment {i}: size overflows"))?;
                if vaddr < AGENT_BASE || seg_end > AGENT_LIMIT {
                    return Err(format!("segment {i}: {vaddr:#x}..{seg_end:#x} outside {AGENT_BASE:#x}..{AGENT_LIMIT:#x}"));
                }
                if align != 0x1000 || offset % align != vaddr % align || filesz > memsz {
                    return Err(format!(
                        "segment {i}: alignment {align:#x} or sizes are not as documented"
                    ));
                }
                loads += 1;
                end = end.max(seg_end);
            }
            2 | 3 => {
                return Err(format!(
                    "segment {i}: PT_DYNAMIC/PT_INTERP in a static agent"
                ))
            }
            _ => {}
        }
    }
    if loads == 0 {
        return Err("no PT_LOAD segment".into());
    }
    Ok(AgentImage { entry, loads, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 EXEC with the given entry, type and PT_LOAD segments (vaddr, paddr, memsz).
    fn elf(ty: u16, entry: u64, loads: &[(u64, u64, u64)]) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        (b[4], b[5]) = (2, 1);
        b[16..18].copy_from_slice(&ty.to_le_bytes());
        b[18..20].copy_from_slice(&62u16.to_le_bytes());
        b[24..32].copy_from_slice(&entry.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&(loads.len() as u16).to_le_bytes());
        for (i, (vaddr, paddr, memsz)) in loads.iter().enumerate() {
            let mut ph = [0u8; 56];
            ph[0..4].copy_from_slice(&1u32.to_le_bytes());
            ph[8..16].copy_from_slice(&(0x1000 * (i as u64 + 1)).to_le_bytes());
            ph[16..24].copy_from_slice(&vaddr.to_le_bytes());
            ph[24..32].copy_from_slice(&paddr.to_le_bytes());
            ph[32..40].copy_from_slice(&16u64.to_le_bytes());
            ph[40..48].copy_from_slice(&memsz.to_le_bytes());
            ph[48..56].copy_from_slice(&0x1000u64.to_le_bytes());
            b.extend_from_slice(&ph);
        }
        b
    }

    #[test]
    fn accepts_the_documented_layout() {
        let image = elf(
            2,
            AGENT_BASE,
            &[
                (AGENT_BASE, AGENT_BASE, 0x3000),
                (0x40_4000, 0x40_4000, 0x2_6000),
            ],
        );
        assert_eq!(
            check_elf(&image),
            Ok(AgentImage {
                entry: AGENT_BASE,
                loads: 2,
                end: 0x42_a000
            })
        );
    }

    #[test]
    fn rejects_what_the_loader_cannot_take() {
        let base = [(AGENT_BASE, AGENT_BASE, 0x1000)];
        assert!(check_elf(&elf(3, AGENT_BASE, &base))
            .unwrap_err()
            .contains("PIE"));
        assert!(check_elf(&elf(2, 0x40_1000, &base))
            .unwrap_err()
            .contains("entry point"));
        assert!(check_elf(&elf(2, AGENT_BASE, &[(AGENT_BASE, 0, 0x1000)]))
            .unwrap_err()
            .contains("paddr"));
        assert!(
            check_elf(&elf(2, AGENT_BASE, &[(AGENT_BASE, AGENT_BASE, 0x40_0001)]))
                .unwrap_err()
                .contains("outside")
        );
        assert!(check_elf(&elf(2, AGENT_BASE, &[]))
            .unwrap_err()
            .contains("no PT_LOAD"));
        assert!(check_elf(b"MZ\x90\x00").unwrap_err().contains("not an ELF"));
        let mut truncated = elf(2, AGENT_BASE, &base);
        truncated.truncate(70);
        assert!(check_elf(&truncated).unwrap_err().contains("truncated"));
        // A program header table offset near the end of the address space (it overflowed).
        let mut far = elf(2, AGENT_BASE, &base);
        far[32..40].copy_from_slice(&(u64::MAX - 8).to_le_bytes());
        assert!(check_elf(&far).unwrap_err().contains("truncated"));
        let mut odd = elf(2, AGENT_BASE, &base);
        odd[54..56].copy_from_slice(&64u16.to_le_bytes());
        assert!(check_elf(&odd).unwrap_err().contains("header size"));
    }
}
