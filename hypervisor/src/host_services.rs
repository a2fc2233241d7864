//! Host services: what the hypervisor does for a guest's tool call.
//!
//! NOT the policy gate yet. The probe pipeline (ToolCall -> probe::Pipeline -> verdict -> carry out or
//! refuse -> audit) plugs in here next; until then [`handle_tool_call`] fails closed: it refuses every tool
//! call with the reason [`NO_POLICY_REASON`] and runs nothing.

use alloc::string::String;

/// Reason text returned for every tool call while no policy is loaded.
pub const NO_POLICY_REASON: &str = "no policy loaded";

/// A checked tool call (name and JSON arguments already validated by hypercall-abi).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolRequest {
    pub name: String,
    pub args: String,
}

/// What became of a tool call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolOutcome {
    /// The tool ran; its output goes to the guest's result buffer.
    Completed { output: String },
    /// The call was refused; the reason goes to the guest's result buffer.
    Refused { reason: String },
}

/// Decides and carries out a tool call of guest `guest`. Fails closed: no policy, so everything is refused.
pub fn handle_tool_call(guest: &str, request: &ToolRequest) -> ToolOutcome {
    let _ = (guest, request);
    ToolOutcome::Refused {
        reason: String::from(NO_POLICY_REASON),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_is_refused_without_a_policy() {
        let request = ToolRequest {
            name: "read_file".into(),
            args: "{\"path\":\"/etc/hostname\"}".into(),
        };
        assert_eq!(
            handle_tool_call("benign", &request),
            ToolOutcome::Refused {
                reason: NO_POLICY_REASON.into()
            }
        );
    }
}
