//! The bridge against servers that misbehave on purpose: huge error texts, host paths in their
//! messages, output floods. The bridge must keep serving, keep the host's paths to itself and hold
//! a bounded amount of the server's output.

mod common;

use common::*;
use mcp_bridge::wire_error::ErrorCode;
use mcp_bridge::{ClientOptions, McpClient};
use std::io::Cursor;
use std::time::{Duration, Instant};

/// `node -e` server: answers the handshake; each tools/call by its `path` argument:
/// `/bigerror`: a JSON-RPC error with a 2 MB message of control characters (6 bytes each once escaped);
/// `/leak`: a JSON-RPC error naming the scratch directory (the last argument);
/// `/crash`: 3 KB of stderr, a line naming the scratch directory, a last line, then exit;
/// anything else: the text "ok".
const HOSTILE_JS: &str = r#"
const scratch = process.argv[process.argv.length - 1];
const send = m => process.stdout.write(JSON.stringify(m) + '\n');
require('readline').createInterface({ input: process.stdin }).on('line', l => {
  const m = JSON.parse(l);
  if (m.id === undefined || !m.method) return;
  if (m.method === 'initialize') {
    send({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: '2024-11-05', capabilities: {} } });
  } else if (m.method === 'tools/list') {
    send({ jsonrpc: '2.0', id: m.id, result: { tools: [{ name: 'read_text_file' }] } });
  } else {
    const p = m.params.arguments.path;
    if (p.endsWith('/bigerror')) {
      send({ jsonrpc: '2.0', id: m.id, error: { code: -1, message: '\u0001'.repeat(2000000) } });
    } else if (p.endsWith('/leak')) {
      send({ jsonrpc: '2.0', id: m.id, error: { code: -32603, message: `Access denied: ${scratch}/leak` } });
    } else if (p.endsWith('/crash')) {
      process.stderr.write('x'.repeat(3000) + `\nAllowed directories: [ '${scratch}' ]\nfatal: the last line\n`,
        () => process.exit(3));
    } else {
      send({ jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text: 'ok' }] } });
    }
  }
});
"#;

fn hostile(name: &str) -> Option<(McpClient, Scratch)> {
    if !have_node() {
        println!("SKIP {name}: node is not installed");
        return None;
    }
    let dir = scratch(name);
    let args = vec!["-e".to_string(), HOSTILE_JS.to_string()];
    let client = McpClient::spawn("node", &args, &dir, ClientOptions::default())
        .expect("hostile server starts");
    Some((client, dir))
}

#[test]
fn huge_server_error_message_does_not_stop_the_bridge() {
    let Some((mut client, _dir)) = hostile("bigerror") else {
        return;
    };
    let mut input = request(1, "read_file", r#"{"path":"/bigerror"}"#);
    input.extend(request(2, "read_file", r#"{"path":"/fine"}"#));
    let (out, log) = serve(&mut client, Cursor::new(input));
    let out = out.unwrap_or_else(|e| panic!("the bridge stopped: {e}\n{log}"));
    let frames = frames(&out);
    let e = error_of(&frames, 1);
    assert_eq!(e.code, ErrorCode::ServerError);
    assert!(e.message.starts_with("tools/call: \u{1}"), "{e:?}");
    assert!(e.message.len() <= 4096, "{} bytes", e.message.len());
    assert_eq!(ok_text(&frames, 2), "ok");
}

#[test]
fn guest_path_echoed_in_an_error_cannot_stop_the_bridge() {
    let Some((mut client, _dir)) = hostile("longpath") else {
        return;
    };
    // 200 KB of DEL: `{:?}` writes each as `\u{7f}` and JSON escapes its backslash, 7 bytes a byte.
    let path = "\u{7f}".repeat(200_000);
    let mut input = request(1, "read_file", &format!(r#"{{"path":"{path}"}}"#));
    input.extend(request(2, "read_file", r#"{"path":"/fine"}"#));
    let (out, log) = serve(&mut client, Cursor::new(input));
    let out = out.unwrap_or_else(|e| {
        panic!(
            "the bridge stopped: {e}\n{}",
            log.chars().take(200).collect::<String>()
        )
    });
    let frames = frames(&out);
    assert_eq!(error_of(&frames, 1).code, ErrorCode::BadPath);
    assert_eq!(ok_text(&frames, 2), "ok");
}

#[test]
fn host_paths_never_reach_the_guest_in_errors() {
    let Some((mut client, _dir)) = hostile("leak") else {
        return;
    };
    let scratch = client.scratch().to_string();
    let mut input = request(1, "read_file", r#"{"path":"/leak"}"#);
    input.extend(request(2, "read_file", r#"{"path":"/crash"}"#));
    let (out, log) = serve(&mut client, Cursor::new(input));
    let frames = frames(&out.unwrap());
    let leak = error_of(&frames, 1);
    assert_eq!(leak.code, ErrorCode::ServerError);
    assert_eq!(leak.message, "tools/call: Access denied: /leak");
    let crash = error_of(&frames, 2);
    assert_eq!(crash.code, ErrorCode::ServerExited);
    // The server's stderr (host paths) stays in the host's log; its excerpt there is the end of
    // the tail, where the reason is, not its start.
    assert!(!crash.message.contains(&scratch), "{}", crash.message);
    assert!(!crash.message.contains("stderr"), "{}", crash.message);
    assert!(log.contains("id=2 <- error server_exited"), "{log}");
    assert!(
        log.contains("id=2 server stderr: ") && log.contains("fatal: the last line"),
        "{log}"
    );
}

/// `sh -c`: answers the handshake (ids 1 and 2), then writes 10 MB of notifications and leaves a
/// flag in the scratch directory once all of it has been taken from the pipe.
const FLOOD_SH: &str = r#"
read -r l; echo '{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2024-11-05"}}'
read -r l; read -r l; echo '{"jsonrpc":"2.0","id":2,"result":{"tools":[]}}'
yes '{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info"}}' | head -c 10000000
echo done > "$1/flooded"
exec sleep 30
"#;

#[test]
fn server_output_between_calls_is_not_buffered_without_bound() {
    let dir = scratch("flood");
    let args = vec!["-c".to_string(), FLOOD_SH.to_string(), "sh".to_string()];
    let client = McpClient::spawn("sh", &args, &dir, ClientOptions::default()).expect("starts");
    // Nobody asks for anything: what the server writes must wait in the pipe, not in our memory.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        assert!(
            !dir.join("flooded").exists(),
            "the client took 10 MB of unrequested output into memory"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(client);
}
