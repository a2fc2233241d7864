//! The hypercall path (VMCALL/VMMCALL and the tool device doorbell): every request checked by
//! hypercall-abi against the guest's memory, then console write, exit, or tool call through
//! [`ToolService::tool_call`] (the probe pipeline, then the host service). A bad request is an error
//! status to the guest plus an audit record (kind `hypercall`, or `tool_device` for the doorbell) and
//! an `audit:` line; the console line of a doorbell tool call says `via tool device`.

use crate::host_services::{ToolOutcome, ToolRequest, ToolService};
use crate::log_text::Shown;
use crate::vm::{GuestState, LogSink, StopReason};
use alloc::format;
use alloc::string::String;
use hypercall_abi::{decode_call, write_result, Call, Kind, Response, Status};

/// What the guest gets back, or that it stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HypercallResult {
    /// `(status, result length)` for RAX and RDX.
    Reply(Response),
    Stop(StopReason),
}

/// How a request reached the hypervisor: VMCALL/VMMCALL, or the tool device's doorbell (MMIO).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Hypercall,
    ToolDevice,
}

impl Transport {
    /// The audit record kind of a refused request on this transport (`"hypercall"`, `"tool_device"`).
    pub fn audit_kind(self) -> &'static str {
        match self {
            Transport::Hypercall => "hypercall",
            Transport::ToolDevice => "tool_device",
        }
    }

    /// How the `audit:` console line names the transport.
    pub fn describe(self) -> &'static str {
        match self {
            Transport::Hypercall => "hypercall",
            Transport::ToolDevice => "tool device doorbell",
        }
    }
}

/// Runs call `number` with its request at `request_gpa` over guest memory `mem`, submitted through
/// `transport`.
pub fn handle(
    number: u64,
    request_gpa: u64,
    transport: Transport,
    mem: &mut [u8],
    guest: &mut GuestState,
    log: &mut dyn LogSink,
    services: &mut dyn ToolService,
) -> HypercallResult {
    guest.stats.hypercalls += 1;
    let call = match decode_call(number, request_gpa, mem) {
        Ok(call) => call,
        Err(error) => {
            guest.stats.refused_requests += 1;
            let status = error.status();
            log.line(format_args!(
                "audit: guest {} {} {number:#x} request {request_gpa:#x} refused ({}): {error}",
                guest.name,
                transport.describe(),
                status.name()
            ));
            services.violation(
                &guest.name,
                transport.audit_kind(),
                &format!(
                    "{number:#x} request {request_gpa:#x} refused ({}): {error}",
                    status.name()
                ),
                log,
            );
            if number == Kind::Exit as u64 {
                return HypercallResult::Stop(StopReason::MalformedExit(format!("{error}")));
            }
            return HypercallResult::Reply(Response::error(error));
        }
    };
    match call {
        Call::ConsoleWrite { text } => {
            let text = String::from(text);
            guest.console_write(text.as_bytes(), log);
            HypercallResult::Reply(Response {
                status: Status::Ok,
                len: text.len() as u64,
            })
        }
        Call::Exit { code, message } => {
            let message = String::from(message);
            guest.flush_console(log);
            HypercallResult::Stop(StopReason::Exited { code, message })
        }
        Call::ToolCall { name, args, result } => {
            let request = ToolRequest {
                name: String::from(name),
                args: String::from(args),
            };
            guest.stats.tool_calls += 1;
            let (status, payload) = match services.tool_call(&guest.name, &request, log) {
                ToolOutcome::Completed { output } => (Status::Ok, output),
                ToolOutcome::Failed { status, error } => (status, error),
                ToolOutcome::Refused { reason } => {
                    guest.stats.tool_calls_denied += 1;
                    (Status::Denied, reason)
                }
            };
            let via = match transport {
                Transport::Hypercall => "",
                Transport::ToolDevice => " via tool device",
            };
            // The line names the status the guest gets: an output larger than the buffer is
            // TooLarge to the guest, though the tool completed.
            let response = write_result(mem, result, status, payload.as_bytes());
            // Name, arguments and output are the guest's or the tool's: shown escaped and cut.
            log.line(format_args!(
                "audit: guest {} tool call{via} {} {} -> {}: {}",
                guest.name,
                Shown::new(&request.name),
                Shown::new(&request.args),
                response.status.name(),
                Shown::new(&payload)
            ));
            HypercallResult::Reply(response)
        }
    }
}

#[cfg(test)]
#[path = "hypercall_tests.rs"]
mod tests;
