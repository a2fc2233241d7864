//! The end-of-run marker `PROBEVISOR-DONE status=<status>` that the emulator harness waits for.

use core::fmt;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Everything the image was asked to do succeeded.
    Ok,
    /// The CPU has no usable VT-x (absent, or disabled by firmware).
    NoVtx,
    /// A CPU exception reached the exception handler.
    Exception,
    /// A Rust panic.
    Panic,
    /// A checked error (bad boot info, VMXON failure, ...).
    Fail,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::NoVtx => "no-vtx",
            Self::Exception => "exception",
            Self::Panic => "panic",
            Self::Fail => "fail",
        }
    }
}

/// Displays as the full marker line (without the newline).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoneMarker(pub RunStatus);

impl fmt::Display for DoneMarker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PROBEVISOR-DONE status={}", self.0.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_lines() {
        assert_eq!(
            DoneMarker(RunStatus::Ok).to_string(),
            "PROBEVISOR-DONE status=ok"
        );
        assert_eq!(
            DoneMarker(RunStatus::NoVtx).to_string(),
            "PROBEVISOR-DONE status=no-vtx"
        );
        assert_eq!(
            DoneMarker(RunStatus::Exception).to_string(),
            "PROBEVISOR-DONE status=exception"
        );
        assert_eq!(RunStatus::Fail.as_str(), "fail");
        assert_eq!(RunStatus::Panic.as_str(), "panic");
    }
}
