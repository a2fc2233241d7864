//! The hypercall path (VMCALL/VMMCALL and the tool device doorbell): every request checked by
//! hypercall-abi against the guest's memory, then console write, exit, or tool call through
//! `host_services::handle_tool_call`. A bad request is an error status to the guest plus an `audit:` line.

use crate::host_services::{ToolOutcome, ToolRequest, ToolService};
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

/// Runs hypercall `number` with its request at `request_gpa` over guest memory `mem`.
pub fn handle(
    number: u64,
    request_gpa: u64,
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
                "audit: guest {} hypercall {number:#x} request {request_gpa:#x} refused ({}): {error}",
                guest.name,
                status.name()
            ));
            services.violation(
                &guest.name,
                "hypercall",
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
                ToolOutcome::Failed { error } => (Status::ToolFailed, error),
                ToolOutcome::Refused { reason } => {
                    guest.stats.tool_calls_denied += 1;
                    (Status::Denied, reason)
                }
            };
            log.line(format_args!(
                "audit: guest {} tool call {} {} -> {}: {}",
                guest.name,
                request.name,
                request.args,
                status.name(),
                payload
            ));
            HypercallResult::Reply(write_result(mem, result, status, payload.as_bytes()))
        }
    }
}
