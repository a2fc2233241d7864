//! The bridge against the reference filesystem server (@modelcontextprotocol/server-filesystem).
//! Skips with SKIP when node or the server is missing; PROBEVISOR_REQUIRE_MCP=1 turns that into a failure.

mod common;

use common::*;
use mcp_bridge::wire_error::ErrorCode;
use mcp_bridge::{ClientOptions, McpClient};
use std::io::{Cursor, Read};
use std::time::Duration;

fn start(test: &str, opts: ClientOptions) -> Option<(McpClient, Scratch)> {
    let entry = real_server(test)?;
    let dir = scratch(test);
    let client =
        McpClient::spawn_filesystem("node", &entry, &dir, opts).expect("filesystem server starts");
    Some((client, dir))
}

#[test]
fn write_read_list_reach_the_real_server() {
    let Some((mut client, dir)) = start("realfs", ClientOptions::default()) else {
        return;
    };
    assert!(
        client.tools().iter().any(|t| t == "list_directory"),
        "{:?}",
        client.tools()
    );
    std::fs::create_dir(dir.join("sub")).unwrap();
    let mut input = request(
        1,
        "write_file",
        r#"{"path":"/notes.txt","content":"hi from the guest\nline 2 é\n"}"#,
    );
    input.extend(request(2, "read_file", r#"{"path":"/notes.txt"}"#));
    input.extend(request(3, "list_dir", r#"{"path":"/"}"#));
    input.extend(request(
        4,
        "delete_file",
        r#"{"path":"/notes.txt","recursive":false}"#,
    ));
    input.extend(request(5, "read_file", r#"{"path":"/../../etc/passwd"}"#));
    input.extend(request(6, "run_command", r#"{"cmd":"rm -rf /"}"#));
    input.extend(request(7, "read_file", r#"{"path":"/missing.txt"}"#));
    let started = std::time::Instant::now();
    let (out, log) = bridge(&mut client, Cursor::new(input));
    println!(
        "realfs: 7 frames, 4 forwarded, in {:?}\n{log}",
        started.elapsed()
    );
    let frames = frames(&out);

    // The server's confirmation names the guest's path, not the host's scratch directory.
    let written = ok_text(&frames, 1);
    assert!(
        written.contains("/notes.txt") && !written.contains(client.scratch()),
        "{written}"
    );
    let on_disk =
        std::fs::read_to_string(dir.join("notes.txt")).expect("write_file created the file");
    assert_eq!(on_disk, "hi from the guest\nline 2 é\n");
    assert_eq!(ok_text(&frames, 2), on_disk);
    let listing = ok_text(&frames, 3);
    let mut entries: Vec<&str> = listing.lines().collect();
    entries.sort();
    assert_eq!(entries, ["notes.txt", "sub/"]);
    let e = error_of(&frames, 4);
    assert_eq!(e.code, ErrorCode::Unsupported);
    assert!(e.message.contains("unsupported by server"));
    assert!(
        dir.join("notes.txt").exists(),
        "delete_file must not reach the server"
    );
    assert_eq!(error_of(&frames, 5).code, ErrorCode::BadPath);
    assert_eq!(error_of(&frames, 6).code, ErrorCode::Unsupported);
    let e = error_of(&frames, 7);
    assert_eq!(e.code, ErrorCode::ToolFailed);
    assert!(e.message.contains("'/missing.txt'"), "{e}");
    assert!(
        !e.message.contains(client.scratch()),
        "host path leaked: {e}"
    );

    for id in [1, 2, 3, 7] {
        assert!(log.contains(&format!("bridge: id={id} tool=")), "{log}");
        assert!(log.contains(&format!("bridge: id={id} <- ")), "{log}");
    }
    for id in [4, 5, 6] {
        assert!(
            log.contains(&format!("bridge: id={id} tool=")) && log.contains("not forwarded"),
            "{log}"
        );
        assert!(!log.contains(&format!("bridge: id={id} <- ")), "{log}");
    }
    assert_eq!(log.matches(" -> server ").count(), 4, "{log}");
}

#[test]
fn oversized_file_is_refused_with_its_start() {
    let opts = ClientOptions {
        max_result: 4096,
        ..Default::default()
    };
    let Some((mut client, dir)) = start("realbig", opts) else {
        return;
    };
    std::fs::write(dir.join("big.txt"), "0123456789".repeat(1000)).unwrap();
    let (out, _) = bridge(
        &mut client,
        Cursor::new(request(1, "read_file", r#"{"path":"/big.txt"}"#)),
    );
    let e = error_of(&frames(&out), 1);
    assert_eq!(e.code, ErrorCode::TooLarge);
    assert_eq!(
        e.message,
        "result of 10000 bytes exceeds the limit of 4096 bytes"
    );
    assert_eq!(e.truncated.unwrap(), "0123456789".repeat(1000)[..4096]);
}

/// Hands out one chunk per read; before the second chunk it kills the server.
struct KillMidway {
    chunks: Vec<Vec<u8>>,
    served: usize,
    pid: u32,
}

impl Read for KillMidway {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.served == 1 {
            let status = std::process::Command::new("kill")
                .arg("-9")
                .arg(self.pid.to_string())
                .status()?;
            assert!(status.success());
            std::thread::sleep(Duration::from_millis(100));
        }
        let Some(chunk) = self.chunks.get(self.served) else {
            return Ok(0);
        };
        assert!(chunk.len() <= buf.len());
        buf[..chunk.len()].copy_from_slice(chunk);
        self.served += 1;
        Ok(chunk.len())
    }
}

#[test]
fn server_killed_midway_gives_error_frames() {
    let Some((mut client, _dir)) = start("realkill", ClientOptions::default()) else {
        return;
    };
    let pid = client.server_pid();
    let chunks = vec![
        request(1, "list_dir", r#"{"path":"/"}"#),
        request(2, "write_file", r#"{"path":"/a.txt","content":"x"}"#),
        request(3, "read_file", r#"{"path":"/a.txt"}"#),
    ];
    let (out, log) = bridge(
        &mut client,
        KillMidway {
            chunks,
            served: 0,
            pid,
        },
    );
    let frames = frames(&out);
    ok_text(&frames, 1);
    for id in [2, 3] {
        let e = error_of(&frames, id);
        assert_eq!(e.code, ErrorCode::ServerExited, "{e}");
        assert!(
            e.message.contains("signal: 9") || e.message.contains("SIGKILL"),
            "{e}"
        );
    }
    assert!(log.contains("bridge: end of stream"), "{log}");
}

#[test]
fn cli_serves_frames_over_a_unix_socket() {
    use std::io::Write;
    use std::os::unix::net::UnixListener;
    let Some(entry) = real_server("realcli") else {
        return;
    };
    let dir = scratch("realcli");
    let sock = dir.with_extension("sock");
    let log = dir.with_extension("log");
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).unwrap(); // plays QEMU's `-serial unix:PATH,server`
    let args: Vec<String> = [
        "--com2",
        &format!("unix:{}", sock.display()),
        "--scratch",
        &dir.display().to_string(),
        "--server",
        &entry.display().to_string(),
        "--log",
        &log.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let bridge = std::thread::spawn(move || mcp_bridge::cli_main(&args));
    let (mut com2, _) = listener.accept().unwrap();
    com2.write_all(&request(
        41,
        "write_file",
        r#"{"path":"/from-cli.txt","content":"ok"}"#,
    ))
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while frames_complete(&got) < 1 {
        let n = com2.read(&mut buf).unwrap();
        assert!(n > 0, "bridge closed COM2 early");
        got.extend_from_slice(&buf[..n]);
    }
    drop(com2); // end of stream: the bridge finishes
    bridge.join().unwrap().expect("cli_main succeeds");
    ok_text(&frames(&got), 41);
    assert_eq!(
        std::fs::read_to_string(dir.join("from-cli.txt")).unwrap(),
        "ok"
    );
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(
        log_text.contains("bridge: id=41 tool=write_file -> server write_file"),
        "{log_text}"
    );
    assert!(log_text.contains("bridge: done:"), "{log_text}");
    println!("{log_text}");
    let _ = std::fs::remove_file(&sock);
    let _ = std::fs::remove_file(&log);
}

fn frames_complete(bytes: &[u8]) -> usize {
    let mut d = mcp_bridge::frame::FrameDecoder::new();
    d.push(bytes);
    std::iter::from_fn(|| d.next_frame())
        .filter(|r| r.is_ok())
        .count()
}

#[test]
fn cli_serves_frames_over_tcp() {
    use std::io::Write;
    let Some(entry) = real_server("realtcp") else {
        return;
    };
    let dir = scratch("realtcp");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap(); // plays Bochs' socket-server
    let addr = listener.local_addr().unwrap();
    let args: Vec<String> = [
        "--com2".to_string(),
        format!("tcp:{addr}"),
        "--scratch".into(),
        dir.display().to_string(),
        "--server".into(),
        entry.display().to_string(),
        "--log".into(),
        "/dev/null".into(),
    ]
    .to_vec();
    let bridge = std::thread::spawn(move || mcp_bridge::cli_main(&args));
    let (mut com2, _) = listener.accept().unwrap();
    std::fs::write(dir.join("seen.txt"), "").unwrap();
    com2.write_all(&request(9, "list_dir", r#"{"path":"/"}"#))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while frames_complete(&got) < 1 {
        let n = com2.read(&mut buf).unwrap();
        assert!(n > 0, "bridge closed COM2 early");
        got.extend_from_slice(&buf[..n]);
    }
    drop(com2);
    bridge.join().unwrap().expect("cli_main succeeds");
    assert_eq!(ok_text(&frames(&got), 9), "seen.txt\n");
}
