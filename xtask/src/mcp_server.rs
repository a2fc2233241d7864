//! The MCP server the bridge talks to by default: the reference filesystem server from npm
//! (`@modelcontextprotocol/server-filesystem`, pinned), installed under `<cache>/npm`
//! (`<cache>` = `$PROBEVISOR_CACHE`, else `$HOME/.cache/probevisor`). See docs/bridge.md.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const MCP_SERVER_PACKAGE: &str = "@modelcontextprotocol/server-filesystem";
/// Pinned version (`npm view @modelcontextprotocol/server-filesystem version` on 2026-11-23).
pub const MCP_SERVER_VERSION: &str = "2026.8.31";
/// Oldest Node.js major the server's SDK runs on.
const MIN_NODE_MAJOR: u32 = 18;

fn npm_dir() -> Result<PathBuf, String> {
    let cache = match std::env::var_os("PROBEVISOR_CACHE").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home =
                std::env::var_os("HOME").ok_or("neither PROBEVISOR_CACHE nor HOME is set")?;
            PathBuf::from(home).join(".cache").join("probevisor")
        }
    };
    Ok(cache.join("npm"))
}

fn package_dir(npm: &Path) -> PathBuf {
    npm.join("node_modules").join(MCP_SERVER_PACKAGE)
}

/// The `"version"` of an installed package.json, if readable.
fn installed_version(pkg: &Path) -> Option<String> {
    let text = std::fs::read_to_string(pkg.join("package.json")).ok()?;
    let after = &text[text.find("\"version\"")? + "\"version\"".len()..];
    let start = after.find('"')? + 1;
    let len = after[start..].find('"')?;
    Some(after[start..start + len].to_string())
}

fn node_major() -> Result<u32, String> {
    let out = Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| format!("node not found ({e}); install Node.js >= {MIN_NODE_MAJOR} (apt-get install nodejs npm)"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let major = text
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok());
    major.ok_or_else(|| format!("cannot read `node --version` output {:?}", text.trim()))
}

/// Installs the pinned filesystem MCP server if it is missing (or another version) and returns
/// the path of its entry script (`dist/index.js`, run as `node ENTRY SCRATCH_DIR`).
pub fn ensure_mcp_server() -> Result<PathBuf, String> {
    let npm = npm_dir()?;
    let pkg = package_dir(&npm);
    let entry = pkg.join("dist").join("index.js");
    if entry.is_file() && installed_version(&pkg).as_deref() == Some(MCP_SERVER_VERSION) {
        return Ok(entry);
    }
    let major = node_major()?;
    if major < MIN_NODE_MAJOR {
        return Err(format!(
            "node v{major} is too old for {MCP_SERVER_PACKAGE}: need >= {MIN_NODE_MAJOR}"
        ));
    }
    std::fs::create_dir_all(&npm).map_err(|e| format!("create {}: {e}", npm.display()))?;
    let spec = format!("{MCP_SERVER_PACKAGE}@{MCP_SERVER_VERSION}");
    eprintln!("xtask: npm install {spec} into {}", npm.display());
    let status = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(&npm)
        .arg(&spec)
        .status()
        .map_err(|e| format!("npm not found ({e}); install it (apt-get install npm)"))?;
    if !status.success() {
        return Err(format!("npm install {spec} failed ({status})"));
    }
    match installed_version(&pkg) {
        Some(v) if v == MCP_SERVER_VERSION && entry.is_file() => Ok(entry),
        Some(v) => Err(format!(
            "npm installed {MCP_SERVER_PACKAGE} {v}, expected {MCP_SERVER_VERSION}"
        )),
        None => Err(format!("npm install {spec} left no {}", entry.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_installed_version() {
        let dir = std::env::temp_dir().join(format!("pv-xtask-mcp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("package.json"),
            "{\n  \"name\": \"x\",\n  \"version\": \"2026.8.31\",\n}",
        )
        .unwrap();
        assert_eq!(installed_version(&dir).as_deref(), Some("2026.8.31"));
        std::fs::write(dir.join("package.json"), "{}").unwrap();
        assert_eq!(installed_version(&dir), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
