//! Helpers shared by the bridge integration tests.
#![allow(dead_code)]

use mcp_bridge::bridge::Duplex;
use mcp_bridge::frame::{encode, Frame, FrameDecoder, FrameKind};
use mcp_bridge::json::Json;
use mcp_bridge::wire_error::BridgeError;
use mcp_bridge::{run_bridge, McpClient};
use std::io::Read;
use std::path::PathBuf;
use std::process::Command;

/// A fresh scratch directory under the system temp dir, removed when dropped.
pub struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn scratch(name: &str) -> Scratch {
    let d = std::env::temp_dir().join(format!("pv-bridge-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Scratch(d)
}

pub fn request(id: u32, tool: &str, args: &str) -> Vec<u8> {
    let payload = format!(r#"{{"tool":{},"args":{args}}}"#, Json::str(tool));
    encode(FrameKind::Request, id, payload.as_bytes()).unwrap()
}

/// Every frame in `bytes`; panics on a garbled one (the bridge must only write good frames).
pub fn frames(bytes: &[u8]) -> Vec<Frame> {
    let mut d = FrameDecoder::new();
    d.push(bytes);
    let mut out = Vec::new();
    while let Some(r) = d.next_frame() {
        out.push(r.expect("the bridge wrote a bad frame"));
    }
    assert_eq!(d.pending(), 0, "the bridge left a partial frame");
    out
}

pub fn response(frames: &[Frame], id: u32) -> &Frame {
    frames
        .iter()
        .find(|f| f.id == id)
        .unwrap_or_else(|| panic!("no answer for id {id}: {frames:?}"))
}

pub fn ok_text(frames: &[Frame], id: u32) -> String {
    let f = response(frames, id);
    assert_eq!(
        f.kind,
        FrameKind::Response,
        "id {id}: {}",
        String::from_utf8_lossy(&f.payload)
    );
    String::from_utf8(f.payload.clone()).unwrap()
}

pub fn error_of(frames: &[Frame], id: u32) -> BridgeError {
    let f = response(frames, id);
    assert_eq!(
        f.kind,
        FrameKind::Error,
        "id {id}: {}",
        String::from_utf8_lossy(&f.payload)
    );
    BridgeError::from_payload(&f.payload).unwrap()
}

pub fn have_node() -> bool {
    Command::new("node")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// `Some(entry)` of the real filesystem server, or `None` after printing SKIP (a panic with
/// PROBEVISOR_REQUIRE_MCP=1).
pub fn real_server(test: &str) -> Option<PathBuf> {
    let entry = std::env::var_os("PROBEVISOR_MCP_SERVER")
        .map(PathBuf::from)
        .or_else(|| {
            let cache = std::env::var_os("PROBEVISOR_CACHE")
                .filter(|c| !c.is_empty())
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/probevisor"))
                })?;
            Some(
                cache
                    .join("npm/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js"),
            )
        });
    let why = match &entry {
        Some(e) if e.is_file() && have_node() => return entry,
        Some(e) if e.is_file() => "node is not installed".to_string(),
        Some(e) => format!("{} missing (cargo xtask setup installs it)", e.display()),
        None => "no server path (set PROBEVISOR_MCP_SERVER)".to_string(),
    };
    if std::env::var("PROBEVISOR_REQUIRE_MCP").as_deref() == Ok("1") {
        panic!("{test}: MCP server required but {why}");
    }
    println!("SKIP {test}: {why}");
    None
}

/// A scripted MCP server for `node -e`: answers initialize and tools/list; tools/call by mode
/// (echo: text = the arguments, after a notification and a server->client request; hang; crash; huge).
pub const FAKE_SERVER_JS: &str = r#"
const mode = process.argv[1];
const send = m => process.stdout.write(JSON.stringify(m) + '\n');
require('readline').createInterface({ input: process.stdin }).on('line', l => {
  const m = JSON.parse(l);
  if (m.id === undefined || !m.method) return;
  if (m.method === 'initialize') {
    send({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: '2024-11-05', capabilities: { tools: {} }, serverInfo: { name: 'fake', version: '0' } } });
  } else if (m.method === 'tools/list') {
    send({ jsonrpc: '2.0', id: m.id, result: { tools: [{ name: 'read_text_file' }, { name: 'write_file' }, { name: 'list_directory' }] } });
  } else if (mode === 'hang') {
  } else if (mode === 'crash') {
    process.stderr.write('fake server: crashing on purpose\n');
    process.exit(3);
  } else if (mode === 'huge') {
    send({ jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text: 'x'.repeat(300000) }] } });
  } else {
    send({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'hello' } });
    send({ jsonrpc: '2.0', id: 'srv-1', method: 'roots/list' });
    send({ jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text: JSON.stringify(m.params.arguments) }] } });
  }
});
"#;

/// `node -e FAKE_SERVER_JS MODE` arguments for `McpClient::spawn("node", ...)`.
pub fn fake_args(mode: &str) -> Vec<String> {
    vec!["-e".into(), FAKE_SERVER_JS.into(), mode.into()]
}

/// Runs the bridge over `input` to its end with `client` as the server: the frames it wrote back
/// (or why it stopped) and its log.
pub fn serve(client: &mut McpClient, input: impl Read) -> (std::io::Result<Vec<u8>>, String) {
    let mut io = Duplex {
        reader: input,
        writer: Vec::new(),
    };
    let mut log = Vec::new();
    let r = run_bridge(&mut io, client, &mut log).map(|_| io.writer);
    (r, String::from_utf8_lossy(&log).into_owned())
}

/// [`serve`] that must reach the end of the stream.
pub fn bridge(client: &mut McpClient, input: impl Read) -> (Vec<u8>, String) {
    let (out, log) = serve(client, input);
    (out.expect("bridge runs to end of stream"), log)
}
