//! Typed helpers for the tool catalog v1 (argument shapes documented in docs/hypercall-abi.md).

use crate::{Agent, ToolError, ToolResult, Transport};

/// Tool names of catalog v1.
pub mod names {
    pub const READ_FILE: &str = "read_file";
    pub const WRITE_FILE: &str = "write_file";
    pub const LIST_DIR: &str = "list_dir";
    pub const DELETE_FILE: &str = "delete_file";
    pub const RUN_COMMAND: &str = "run_command";
    pub const NET_SEND: &str = "net_send";
    pub const HTTP_FETCH: &str = "http_fetch";
    pub const ALL: [&str; 7] = [
        READ_FILE,
        WRITE_FILE,
        LIST_DIR,
        DELETE_FILE,
        RUN_COMMAND,
        NET_SEND,
        HTTP_FETCH,
    ];
}

type ToolOutcome<'a> = Result<ToolResult<'a>, ToolError<'a>>;

impl<T: Transport> Agent<T> {
    /// `read_file {"path"}`: the file's bytes.
    pub fn read_file(&mut self, path: &str) -> ToolOutcome<'_> {
        self.call_tool_json(names::READ_FILE, |o| {
            o.str_field("path", path);
        })
    }

    /// `write_file {"path","content"}`: creates or replaces the file.
    pub fn write_file(&mut self, path: &str, content: &str) -> ToolOutcome<'_> {
        self.call_tool_json(names::WRITE_FILE, |o| {
            o.str_field("path", path).str_field("content", content);
        })
    }

    /// `list_dir {"path"}`: one entry per line, directories end in `/`.
    pub fn list_dir(&mut self, path: &str) -> ToolOutcome<'_> {
        self.call_tool_json(names::LIST_DIR, |o| {
            o.str_field("path", path);
        })
    }

    /// `delete_file {"path","recursive"}`: `recursive` deletes a directory tree.
    pub fn delete_file(&mut self, path: &str, recursive: bool) -> ToolOutcome<'_> {
        self.call_tool_json(names::DELETE_FILE, |o| {
            o.str_field("path", path).bool_field("recursive", recursive);
        })
    }

    /// `run_command {"cmd"[,"cwd"]}`: a shell command line; the result is its output.
    pub fn run_command(&mut self, cmd: &str, cwd: Option<&str>) -> ToolOutcome<'_> {
        self.call_tool_json(names::RUN_COMMAND, |o| {
            o.str_field("cmd", cmd);
            if let Some(cwd) = cwd {
                o.str_field("cwd", cwd);
            }
        })
    }

    /// `net_send {"host","port","data"}`: send raw data over TCP.
    pub fn net_send(&mut self, host: &str, port: u16, data: &str) -> ToolOutcome<'_> {
        self.call_tool_json(names::NET_SEND, |o| {
            o.str_field("host", host)
                .u64_field("port", port.into())
                .str_field("data", data);
        })
    }

    /// `http_fetch {"method","url"[,"body"]}`: the response body.
    pub fn http_fetch(&mut self, method: &str, url: &str, body: Option<&str>) -> ToolOutcome<'_> {
        self.call_tool_json(names::HTTP_FETCH, |o| {
            o.str_field("method", method).str_field("url", url);
            if let Some(body) = body {
                o.str_field("body", body);
            }
        })
    }
}
