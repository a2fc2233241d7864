//! `probevisor bridge`: connects COM2 to an MCP server.

use crate::bridge::{run_bridge, Duplex};
use crate::client::{ClientOptions, McpClient};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const USAGE: &str =
    "usage: probevisor bridge --com2 SPEC --scratch DIR [--server ENTRY.js] [--node PROGRAM]
                        [--timeout-ms N] [--max-result BYTES] [--log FILE]
  SPEC: unix:PATH         connect to a socket (QEMU -serial unix:PATH,server)
        unix:PATH,server  listen on PATH and serve the first connection (QEMU -serial unix:PATH)
        tcp:HOST:PORT     connect to a TCP port (QEMU -serial tcp:...,server; Bochs com2 mode=socket-server)
        tcp:HOST:PORT,server  listen and serve the first connection (Bochs com2 mode=socket-client)
        pipe:BASE         read BASE.out, write BASE.in (QEMU -serial pipe:BASE FIFOs)
        stdio             frames on stdin, answers on stdout
  ENTRY defaults to $PROBEVISOR_MCP_SERVER, else the npm install in
  ${PROBEVISOR_CACHE:-$HOME/.cache/probevisor}/npm (cargo xtask setup)";

/// How long a frame may stay incomplete on a socket before it is refused as truncated.
const FRAME_GAP: Duration = Duration::from_secs(5);
/// How long `unix:PATH` keeps retrying the connection (the emulator may start after the bridge).
const CONNECT_WAIT: Duration = Duration::from_secs(30);

/// The filesystem server's entry script: `$PROBEVISOR_MCP_SERVER`, else the cache path.
pub fn default_server_entry() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PROBEVISOR_MCP_SERVER") {
        return Some(PathBuf::from(p));
    }
    let cache = match std::env::var_os("PROBEVISOR_CACHE").filter(|c| !c.is_empty()) {
        Some(c) => PathBuf::from(c),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".cache/probevisor"),
    };
    Some(cache.join("npm/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js"))
}

#[derive(Debug)]
struct Options {
    com2: String,
    scratch: PathBuf,
    server: Option<PathBuf>,
    node: String,
    client: ClientOptions,
    log: Option<PathBuf>,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        com2: String::new(),
        scratch: PathBuf::new(),
        server: None,
        node: "node".into(),
        client: ClientOptions::default(),
        log: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--com2" => o.com2 = value("--com2")?,
            "--scratch" => o.scratch = PathBuf::from(value("--scratch")?),
            "--server" => o.server = Some(PathBuf::from(value("--server")?)),
            "--node" => o.node = value("--node")?,
            "--log" => o.log = Some(PathBuf::from(value("--log")?)),
            "--timeout-ms" => {
                let v = value("--timeout-ms")?;
                let ms: u64 = v
                    .parse()
                    .map_err(|_| format!("--timeout-ms: not a number: {v}"))?;
                o.client.call_timeout = Duration::from_millis(ms.max(1));
            }
            "--max-result" => {
                let v = value("--max-result")?;
                o.client.max_result = v
                    .parse()
                    .map_err(|_| format!("--max-result: not a number: {v}"))?;
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown option '{other}'\n{USAGE}")),
        }
    }
    if o.com2.is_empty() || o.scratch.as_os_str().is_empty() {
        return Err(format!("--com2 and --scratch are required\n{USAGE}"));
    }
    let known = ["unix:", "tcp:", "pipe:"]
        .iter()
        .any(|p| o.com2.starts_with(p));
    if !(known || o.com2 == "stdio") {
        return Err(format!("bad --com2 '{}'\n{USAGE}", o.com2));
    }
    Ok(o)
}

fn connect_unix(path: &str) -> Result<UnixStream, String> {
    let start = Instant::now();
    loop {
        match UnixStream::connect(path) {
            Ok(s) => return Ok(s),
            Err(e) if start.elapsed() >= CONNECT_WAIT => {
                return Err(format!("connect {path}: {e}"))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn connect_tcp(addr: &str) -> Result<TcpStream, String> {
    let start = Instant::now();
    loop {
        match TcpStream::connect(addr) {
            Ok(s) => return Ok(s),
            Err(e) if start.elapsed() >= CONNECT_WAIT => {
                return Err(format!("connect {addr}: {e}"))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// `probevisor bridge ARGS...`.
pub fn cli_main(args: &[String]) -> Result<(), String> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let o = parse_args(args)?;
    std::fs::create_dir_all(&o.scratch)
        .map_err(|e| format!("scratch {}: {e}", o.scratch.display()))?;
    let entry = o
        .server
        .clone()
        .or_else(default_server_entry)
        .ok_or("no MCP server entry: pass --server")?;
    if !entry.is_file() {
        return Err(format!(
            "MCP server entry {} not found (run `cargo xtask setup` or pass --server)",
            entry.display()
        ));
    }
    let mut log: Box<dyn Write> = match &o.log {
        Some(p) => Box::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| format!("log {}: {e}", p.display()))?,
        ),
        None => Box::new(io::stderr()),
    };
    let mut server = McpClient::spawn_filesystem(&o.node, &entry, &o.scratch, o.client.clone())
        .map_err(|e| format!("MCP server: {e}"))?;
    writeln!(
        log,
        "bridge: server {} up (protocol {}), scratch {}, tools: {}",
        entry.display(),
        server.protocol_version(),
        server.scratch(),
        server.tools().join(",")
    )
    .map_err(|e| e.to_string())?;
    let stats = if let Some(rest) = o.com2.strip_prefix("unix:") {
        let stream = match rest.strip_suffix(",server") {
            Some(path) => {
                let _ = std::fs::remove_file(path);
                let listener =
                    UnixListener::bind(path).map_err(|e| format!("listen {path}: {e}"))?;
                listener
                    .accept()
                    .map_err(|e| format!("accept {path}: {e}"))?
                    .0
            }
            None => connect_unix(rest)?,
        };
        stream
            .set_read_timeout(Some(FRAME_GAP))
            .map_err(|e| e.to_string())?;
        run_bridge(stream, &mut server, &mut log)
    } else if let Some(rest) = o.com2.strip_prefix("tcp:") {
        let stream = match rest.strip_suffix(",server") {
            Some(addr) => {
                let listener =
                    TcpListener::bind(addr).map_err(|e| format!("listen {addr}: {e}"))?;
                listener
                    .accept()
                    .map_err(|e| format!("accept {addr}: {e}"))?
                    .0
            }
            None => connect_tcp(rest)?,
        };
        stream
            .set_read_timeout(Some(FRAME_GAP))
            .map_err(|e| e.to_string())?;
        run_bridge(stream, &mut server, &mut log)
    } else if let Some(base) = o.com2.strip_prefix("pipe:") {
        let reader = File::open(format!("{base}.out")).map_err(|e| format!("{base}.out: {e}"))?;
        let writer = OpenOptions::new()
            .write(true)
            .open(format!("{base}.in"))
            .map_err(|e| format!("{base}.in: {e}"))?;
        run_bridge(Duplex { reader, writer }, &mut server, &mut log)
    } else {
        run_bridge(
            Duplex {
                reader: io::stdin().lock(),
                writer: io::stdout().lock(),
            },
            &mut server,
            &mut log,
        )
    };
    let stats = stats.map_err(|e| format!("COM2: {e}"))?;
    writeln!(log, "bridge: done: {stats:?}").map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_options_and_refuses_bad_ones() {
        let o = parse_args(&s(&[
            "--com2",
            "stdio",
            "--scratch",
            "/tmp/x",
            "--timeout-ms",
            "250",
        ]))
        .unwrap();
        assert_eq!(o.client.call_timeout, Duration::from_millis(250));
        assert_eq!(o.com2, "stdio");
        assert!(parse_args(&s(&["--com2", "stdio"]))
            .unwrap_err()
            .contains("required"));
        assert!(parse_args(&s(&["--bogus"]))
            .unwrap_err()
            .contains("unknown option"));
        assert!(parse_args(&s(&["--com2"]))
            .unwrap_err()
            .contains("needs a value"));
        assert!(parse_args(&s(&["--timeout-ms", "x"]))
            .unwrap_err()
            .contains("not a number"));
    }

    #[test]
    fn bad_com2_spec_is_refused_before_anything_runs() {
        let err = parse_args(&s(&["--com2", "serial:1", "--scratch", "/tmp/x"])).unwrap_err();
        assert!(err.starts_with("bad --com2 'serial:1'"), "{err}");
        let err = cli_main(&s(&[
            "--com2",
            "stdio",
            "--scratch",
            "/tmp",
            "--server",
            "/nonexistent/x.js",
        ]))
        .unwrap_err();
        assert!(err.contains("not found"), "{err}");
    }
}
