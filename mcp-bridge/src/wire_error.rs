//! Error frame payloads: `{"code": CODE, "message": TEXT}` (optionally `"truncated": TEXT`, the first bytes of an
//! oversized result). The hypervisor maps the code to an ABI status (docs/bridge.md).

use crate::json::Json;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request frame could not be decoded (id 0) or its payload is not `{"tool","args"}`.
    BadFrame,
    BadRequest,
    /// Not a tool the bridge knows.
    UnknownTool,
    /// A known tool that this server cannot carry out (delete_file, run_command, ... on the filesystem server).
    Unsupported,
    /// The path escapes the scratch directory or is malformed.
    BadPath,
    /// The server ran the tool and it failed (`isError`).
    ToolFailed,
    /// No answer within the per-call timeout.
    Timeout,
    /// The server process exited or closed its output.
    ServerExited,
    /// The result exceeded the bridge's limit; `truncated` holds its start.
    TooLarge,
    /// The server answered with a JSON-RPC error or an unreadable message.
    ServerError,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 10] = [
        Self::BadFrame,
        Self::BadRequest,
        Self::UnknownTool,
        Self::Unsupported,
        Self::BadPath,
        Self::ToolFailed,
        Self::Timeout,
        Self::ServerExited,
        Self::TooLarge,
        Self::ServerError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadFrame => "bad_frame",
            Self::BadRequest => "bad_request",
            Self::UnknownTool => "unknown_tool",
            Self::Unsupported => "unsupported",
            Self::BadPath => "bad_path",
            Self::ToolFailed => "tool_failed",
            Self::Timeout => "timeout",
            Self::ServerExited => "server_exited",
            Self::TooLarge => "too_large",
            Self::ServerError => "server_error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct BridgeError {
    pub code: ErrorCode,
    pub message: String,
    /// For `TooLarge`: the first bytes of the result (cut at a UTF-8 boundary).
    pub truncated: Option<String>,
}

impl BridgeError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        BridgeError {
            code,
            message: message.into(),
            truncated: None,
        }
    }

    /// The Error frame payload.
    pub fn to_payload(&self) -> Vec<u8> {
        let mut m = Vec::from([
            ("code", Json::str(self.code.as_str())),
            ("message", Json::str(&self.message)),
        ]);
        if let Some(t) = &self.truncated {
            m.push(("truncated", Json::str(t)));
        }
        format!("{}", Json::object(m)).into_bytes()
    }

    pub fn from_payload(payload: &[u8]) -> Result<Self, String> {
        let text = core::str::from_utf8(payload)
            .map_err(|_| String::from("error payload is not UTF-8"))?;
        let v = Json::parse(text).map_err(|e| format!("error payload: {e}"))?;
        let code_text = v
            .get("code")
            .and_then(Json::as_str)
            .ok_or("error payload lacks \"code\"")?;
        let code = ErrorCode::parse(code_text)
            .ok_or_else(|| format!("unknown error code {code_text:?}"))?;
        let message = v
            .get("message")
            .and_then(Json::as_str)
            .ok_or("error payload lacks \"message\"")?;
        let truncated = v.get("truncated").and_then(Json::as_str).map(String::from);
        Ok(BridgeError {
            code,
            message: String::from(message),
            truncated,
        })
    }
}

impl core::fmt::Display for BridgeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip_every_code() {
        for code in ErrorCode::ALL {
            let mut e = BridgeError::new(code, "why \"quoted\"\n");
            if code == ErrorCode::TooLarge {
                e.truncated = Some(String::from("first bytes"));
            }
            assert_eq!(BridgeError::from_payload(&e.to_payload()).unwrap(), e);
        }
        assert!(BridgeError::from_payload(br#"{"code":"nope","message":"x"}"#).is_err());
        assert!(BridgeError::from_payload(b"\xff").is_err());
    }
}
