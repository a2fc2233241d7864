use super::*;

const NOTE: &str =
    r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info"}}"#;

/// A client whose server side is the test: `incoming` stands for the server's output; the returned
/// receiver holds what the client queued for the server's input (never read: a server that does
/// not read its stdin). The child is only a placeholder process.
fn client(incoming: Receiver<Incoming>, call_timeout: Duration) -> (McpClient, Receiver<Vec<u8>>) {
    let child = Command::new("sleep")
        .arg("30")
        .stdin(Stdio::null())
        .spawn()
        .expect("sleep starts");
    let (out_tx, out_rx) = outgoing_channel();
    let opts = ClientOptions {
        call_timeout,
        ..ClientOptions::default()
    };
    let client = McpClient {
        child,
        outgoing: Some(out_tx),
        incoming,
        stderr_tail: Arc::new(Mutex::new(Vec::new())),
        next_id: 1,
        tools: Vec::new(),
        scratch: "/scratch".into(),
        opts,
        dead: None,
        protocol_version: PROTOCOL_VERSION.into(),
    };
    (client, out_rx)
}

#[test]
fn a_stream_of_other_messages_cannot_hold_a_call_past_its_deadline() {
    // The server writes notifications faster than they are read (a 1 KB line is quicker to copy
    // than to parse), and never answers: there is always one waiting when the deadline passes.
    let (tx, rx) = mpsc::sync_channel(10_000);
    let note = NOTE.replace("info", &"i".repeat(1000));
    thread::spawn(move || while tx.send(Incoming::Line(note.clone())).is_ok() {});
    let (mut client, _out) = client(rx, Duration::from_millis(200));
    let (done_tx, done_rx) = mpsc::channel();
    thread::spawn(move || {
        let r = client.request("tools/call", Json::Object(Vec::new()));
        let _ = done_tx.send(r.map_err(|e| e.code));
    });
    let r = done_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the call is still waiting 5 s after its 200 ms deadline");
    assert_eq!(r, Err(ErrorCode::Timeout));
}

#[test]
fn replies_to_a_server_that_does_not_read_are_not_queued_without_bound() {
    // 1000 server->client requests, each with a 10 KB id the reply must echo, then our answer.
    let (tx, rx) = mpsc::sync_channel(2000);
    let big_id = "x".repeat(10_000);
    for _ in 0..1000 {
        let line = format!(r#"{{"jsonrpc":"2.0","id":"{big_id}","method":"roots/list"}}"#);
        tx.send(Incoming::Line(line)).unwrap();
    }
    let answer = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#;
    tx.send(Incoming::Line(answer.into())).unwrap();
    let (mut client, out) = client(rx, Duration::from_secs(5));
    let r = client.request("tools/call", Json::Object(Vec::new()));
    assert!(r.is_ok(), "{r:?}");
    let queued = out.try_iter().count();
    assert!(
        queued <= 32,
        "{queued} messages queued for a server that reads none"
    );
}
#[test]
fn stderr_excerpt_is_the_end_of_the_tail() {
    let text = format!("start {}\nfatal: the reason é", "x".repeat(3000));
    let tail = tail_utf8(&text, 512);
    assert!(tail.len() <= 512);
    assert!(tail.ends_with("fatal: the reason é"));
    assert_eq!(tail_utf8("é", 1), "");
    assert_eq!(tail_utf8("short", 512), "short");
}
