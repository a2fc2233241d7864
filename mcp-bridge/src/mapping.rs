//! From probevisor tool calls (docs/hypercall-abi.md catalog) to filesystem-server `tools/call`s (no_std + alloc).

use crate::json::Json;
use crate::wire_error::{BridgeError, ErrorCode};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// What to do with the server's text before it goes back to the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultShape {
    AsIs,
    /// The server's status message about a path (`Successfully wrote to ...`): the host's scratch
    /// directory is removed, so the guest sees its own path.
    Status,
    /// `[DIR] a` / `[FILE] b` lines become `a/` / `b` (the catalog's list_dir format).
    Listing,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServerCall {
    pub name: String,
    pub arguments: Json,
    pub shape: ResultShape,
}

/// A guest path made relative to the scratch directory: leading `/` and `.` components dropped, `..` refused.
/// Returns `""` for the scratch directory itself. The guest's path must be absolute: the gate's rules
/// judged it as written (a relative `home/dev/.ssh/x` matches no `/home/**` rule), so it must not
/// reach the file the absolute one names.
pub fn confine_path(guest: &str) -> Result<String, BridgeError> {
    let bad = |why: &str| BridgeError::new(ErrorCode::BadPath, format!("path {guest:?} {why}"));
    if !guest.starts_with('/') {
        return Err(bad("is relative: tools take absolute paths"));
    }
    if guest.contains('\0') {
        return Err(bad("contains a NUL byte"));
    }
    // A line break in a name would add entries of its own to a listing (`list_dir` is a line
    // per entry), as the hypervisor's own file tree refuses.
    if guest.chars().any(char::is_control) {
        return Err(bad("contains a control character"));
    }
    if guest.contains('\\') {
        return Err(bad("contains a backslash"));
    }
    let mut parts: Vec<&str> = Vec::new();
    for comp in guest.split('/') {
        match comp {
            "" | "." => {}
            ".." => return Err(bad("escapes the scratch directory ('..')")),
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

fn absolute(scratch: &str, rel: &str) -> String {
    if rel.is_empty() {
        scratch.to_string()
    } else {
        format!("{}/{rel}", scratch.trim_end_matches('/'))
    }
}

fn str_arg<'a>(tool: &str, args: &'a Json, key: &str) -> Result<&'a str, BridgeError> {
    args.get(key).and_then(Json::as_str).ok_or_else(|| {
        BridgeError::new(
            ErrorCode::BadRequest,
            format!("{tool}: argument \"{key}\" must be a string"),
        )
    })
}

fn file_path(tool: &str, args: &Json, scratch: &str) -> Result<String, BridgeError> {
    let rel = confine_path(str_arg(tool, args, "path")?)?;
    if rel.is_empty() {
        return Err(BridgeError::new(
            ErrorCode::BadPath,
            format!("{tool}: path names the scratch directory, not a file"),
        ));
    }
    Ok(absolute(scratch, &rel))
}

/// Maps one tool call. `server_tools` is the server's `tools/list`; `scratch` the absolute scratch directory.
pub fn map_call(
    tool: &str,
    args: &Json,
    server_tools: &[String],
    scratch: &str,
) -> Result<ServerCall, BridgeError> {
    if !matches!(args, Json::Object(_)) {
        return Err(BridgeError::new(
            ErrorCode::BadRequest,
            format!("{tool}: args must be a JSON object"),
        ));
    }
    let has = |n: &str| server_tools.iter().any(|t| t == n);
    let need = |n: &'static str| -> Result<String, BridgeError> {
        if has(n) {
            Ok(n.to_string())
        } else {
            Err(BridgeError::new(
                ErrorCode::Unsupported,
                format!("{tool}: the server has no tool \"{n}\""),
            ))
        }
    };
    let call = |name: String, members: Vec<(&str, Json)>, shape| ServerCall {
        name,
        arguments: Json::object(members),
        shape,
    };
    match tool {
        "read_file" => {
            let name = if has("read_text_file") {
                "read_text_file".to_string()
            } else {
                need("read_file")?
            };
            let path = file_path(tool, args, scratch)?;
            Ok(call(
                name,
                Vec::from([("path", Json::String(path))]),
                ResultShape::AsIs,
            ))
        }
        "write_file" => {
            let name = need("write_file")?;
            let path = file_path(tool, args, scratch)?;
            let content = str_arg(tool, args, "content")?;
            Ok(call(
                name,
                Vec::from([
                    ("path", Json::String(path)),
                    ("content", Json::str(content)),
                ]),
                ResultShape::Status,
            ))
        }
        "list_dir" => {
            let name = need("list_directory")?;
            let rel = confine_path(str_arg(tool, args, "path")?)?;
            Ok(call(
                name,
                Vec::from([("path", Json::String(absolute(scratch, &rel)))]),
                ResultShape::Listing,
            ))
        }
        "delete_file" => Err(BridgeError::new(
            ErrorCode::Unsupported,
            "delete_file: unsupported by server (the MCP filesystem server has no delete tool)",
        )),
        "run_command" | "net_send" | "http_fetch" => Err(BridgeError::new(
            ErrorCode::Unsupported,
            format!("{tool}: unsupported by server (not a filesystem operation)"),
        )),
        other => Err(BridgeError::new(
            ErrorCode::UnknownTool,
            format!("unknown tool {other:?}"),
        )),
    }
}

/// Reshapes the server's text for the guest.
pub fn shape_result(shape: ResultShape, text: &str) -> String {
    match shape {
        ResultShape::AsIs | ResultShape::Status => text.to_string(),
        ResultShape::Listing => {
            let mut out = String::new();
            for line in text.lines().filter(|l| !l.is_empty()) {
                if let Some(d) = line.strip_prefix("[DIR] ") {
                    out.push_str(d);
                    out.push('/');
                } else if let Some(f) = line.strip_prefix("[FILE] ") {
                    out.push_str(f);
                } else {
                    out.push_str(line);
                }
                out.push('\n');
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn args(text: &str) -> Json {
        Json::parse(text).unwrap()
    }

    #[test]
    fn confine_strips_root_and_dots_and_refuses_dotdot() {
        assert_eq!(confine_path("/home/dev/./a.txt").unwrap(), "home/dev/a.txt");
        assert_eq!(confine_path("/a//b/").unwrap(), "a/b");
        assert_eq!(confine_path("/").unwrap(), "");
        let relative = ["a//b/", "home/dev/.ssh/id_rsa", "./a", ""];
        for bad in [
            "../x",
            "/a/../../etc/passwd",
            "/a/..",
            "/a\\b",
            "/a\0b",
            "/a\nb",
            "/a\u{7f}",
        ]
        .iter()
        .chain(&relative)
        {
            assert_eq!(
                confine_path(bad).unwrap_err().code,
                ErrorCode::BadPath,
                "{bad}"
            );
        }
    }

    #[test]
    fn read_file_prefers_read_text_file() {
        let a = args(r#"{"path":"/notes/a.txt"}"#);
        let m = map_call(
            "read_file",
            &a,
            &tools(&["read_file", "read_text_file"]),
            "/s",
        )
        .unwrap();
        assert_eq!(m.name, "read_text_file");
        assert_eq!(format!("{}", m.arguments), r#"{"path":"/s/notes/a.txt"}"#);
        let old = map_call("read_file", &a, &tools(&["read_file"]), "/s/").unwrap();
        assert_eq!(old.name, "read_file");
        assert_eq!(
            old.arguments.get("path").unwrap().as_str(),
            Some("/s/notes/a.txt")
        );
        assert_eq!(
            map_call("read_file", &a, &tools(&[]), "/s")
                .unwrap_err()
                .code,
            ErrorCode::Unsupported
        );
    }

    #[test]
    fn write_and_list_map_to_server_names() {
        let t = tools(&["write_file", "list_directory"]);
        let w = map_call(
            "write_file",
            &args(r#"{"path":"/x/y","content":"hi\n"}"#),
            &t,
            "/s",
        )
        .unwrap();
        assert_eq!(
            format!("{}", w.arguments),
            r#"{"path":"/s/x/y","content":"hi\n"}"#
        );
        let l = map_call("list_dir", &args(r#"{"path":"/"}"#), &t, "/s").unwrap();
        assert_eq!(
            (l.name.as_str(), l.shape),
            ("list_directory", ResultShape::Listing)
        );
        assert_eq!(l.arguments.get("path").unwrap().as_str(), Some("/s"));
    }

    #[test]
    fn refusals_have_the_right_codes() {
        let t = tools(&["read_text_file", "write_file", "list_directory"]);
        let code = |tool: &str, a: &str| map_call(tool, &args(a), &t, "/s").unwrap_err().code;
        assert_eq!(
            code("delete_file", r#"{"path":"a","recursive":true}"#),
            ErrorCode::Unsupported
        );
        assert_eq!(
            code("run_command", r#"{"cmd":"ls"}"#),
            ErrorCode::Unsupported
        );
        assert_eq!(
            code("net_send", r#"{"host":"h","port":1,"data":""}"#),
            ErrorCode::Unsupported
        );
        assert_eq!(
            code("http_fetch", r#"{"method":"GET","url":"u"}"#),
            ErrorCode::Unsupported
        );
        assert_eq!(code("format_disk", "{}"), ErrorCode::UnknownTool);
        assert_eq!(
            code("read_file", r#"{"path":"../../etc/passwd"}"#),
            ErrorCode::BadPath
        );
        assert_eq!(code("read_file", r#"{"path":"/"}"#), ErrorCode::BadPath);
        assert_eq!(code("read_file", r#"{"path":3}"#), ErrorCode::BadRequest);
        assert_eq!(
            code("write_file", r#"{"path":"/a"}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(code("read_file", "[]"), ErrorCode::BadRequest);
        let msg = map_call("delete_file", &args("{}"), &t, "/s")
            .unwrap_err()
            .message;
        assert!(msg.contains("unsupported by server"), "{msg}");
    }

    #[test]
    fn listing_reshaped() {
        let text = "[DIR] src\n[FILE] Cargo.toml\n\n[FILE] a b.txt";
        assert_eq!(
            shape_result(ResultShape::Listing, text),
            "src/\nCargo.toml\na b.txt\n"
        );
        assert_eq!(shape_result(ResultShape::AsIs, text), text);
    }
}
