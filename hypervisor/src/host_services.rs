//! Host services: what the hypervisor does for a guest's tool call.
//!
//! Every tool call goes through the probe governance pipeline (schema, tier, rate limit, pre-filter,
//! ProbeLogits gate, rules) before anything runs; only an allowed call is carried out, on the
//! in-memory file system, the console, or the tool device (`net_send`, logged). Every decision, and
//! every refused malformed hypercall or memory violation, becomes one hash-chained audit record,
//! printed as `AUDIT <record>`. Without a model or a policy every call is refused (fail closed).
//! With the MCP bridge on (`bridge=com2`), the allowed file tools (`bridge_client::BRIDGED_TOOLS`)
//! go out over COM2 to a real MCP server instead of the in-memory file system; the gate has decided
//! (and the audit recorded) before any frame leaves, and each outcome is a `bridge:` log line.
//! The exit handler calls this synchronously: the vCPU is not resumed before the verdict is in.

use crate::bridge_client::{ToolBridge, BRIDGED_TOOLS};
use crate::host_fs::MemFs;
use crate::log_text::Shown;
use crate::vm::LogSink;
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use probe::audit::{hex, AuditChain, Provenance};
use probe::json::Value;
use probe::pipeline::{Layer, LayerOutcome, Status};
use probe::{Action, Decision, LogitModel, Pipeline, Verdict};

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
    /// The call was allowed but the tool failed (no such file, the bridge timed out, ...); `status`
    /// is the ABI status the guest gets (ToolFailed, or what a bridge failure stands for).
    Failed {
        status: hypercall_abi::Status,
        error: String,
    },
    /// The call was refused; the reason goes to the guest's result buffer.
    Refused { reason: String },
}

/// What the exit handlers ask of the host.
pub trait ToolService {
    /// Decide, and on allow carry out, one tool call of guest `guest`.
    fn tool_call(
        &mut self,
        guest: &str,
        request: &ToolRequest,
        log: &mut dyn LogSink,
    ) -> ToolOutcome;
    /// Record a refused malformed hypercall, bad pointer or memory violation (`kind` names it).
    fn violation(&mut self, guest: &str, kind: &str, detail: &str, log: &mut dyn LogSink);
    /// The hash of the last audit record (all zeros before the first).
    fn audit_head(&self) -> [u8; 32];
}

/// The gate, the audit chain and the guests' world.
pub struct GovernedServices<'m, M: LogitModel> {
    pipeline: Result<Pipeline<'m, M>, String>,
    chain: AuditChain,
    model_digest: [u8; 32],
    fs: MemFs,
    clock_ms: fn() -> u64,
    /// Where the allowed file tools go instead of `fs`, when set.
    bridge: Option<Box<dyn ToolBridge>>,
    /// Bytes sent through the tool device, in total.
    pub sent_bytes: u64,
}

fn refusal(layer: Layer, reason: &str) -> Decision {
    Decision {
        verdict: Verdict::Deny,
        layer,
        reason: reason.to_string(),
        p_dangerous: None,
        p_injection: None,
        score: None,
        layers: vec![LayerOutcome {
            layer,
            status: Status::Deny,
            reason: reason.to_string().into(),
        }],
    }
}

fn str_arg<'a>(args: &'a Value, key: &str) -> Result<&'a str, String> {
    args.get(key)
        .and_then(Value::as_str)
        .ok_or(format!("missing string argument {key:?}"))
}

impl<'m, M: LogitModel> GovernedServices<'m, M> {
    /// `pipeline`: the built pipeline, or why there is none (every call is then refused with it).
    pub fn new(
        pipeline: Result<Pipeline<'m, M>, String>,
        model_digest: [u8; 32],
        fs: MemFs,
        clock_ms: fn() -> u64,
    ) -> Self {
        Self {
            pipeline,
            chain: AuditChain::new(),
            model_digest,
            fs,
            clock_ms,
            bridge: None,
            sent_bytes: 0,
        }
    }

    /// Sends the allowed file tools (`BRIDGED_TOOLS`) to `bridge` instead of the in-memory file system.
    pub fn with_bridge(mut self, bridge: Box<dyn ToolBridge>) -> Self {
        self.bridge = Some(bridge);
        self
    }

    /// Carries out an allowed file tool call over the bridge; logs its outcome.
    fn perform_bridged(
        bridge: &mut dyn ToolBridge,
        guest: &str,
        action: &Action,
        log: &mut dyn LogSink,
    ) -> ToolOutcome {
        let mut args = String::new();
        action.args.write_json(&mut args);
        let call = bridge.call(&action.tool, &args);
        match call.result {
            Ok(output) => {
                log.line(format_args!(
                    "bridge: guest {guest} id={} {} -> ok ({} bytes)",
                    call.id,
                    Shown::new(&action.tool),
                    output.len()
                ));
                ToolOutcome::Completed {
                    output: String::from_utf8_lossy(&output).into_owned(),
                }
            }
            Err(failure) => {
                log.line(format_args!(
                    "bridge: guest {guest} id={} {} -> error ({}): {}",
                    call.id,
                    Shown::new(&action.tool),
                    failure.status.name(),
                    Shown::new(&alloc::format!("{failure}"))
                ));
                ToolOutcome::Failed {
                    status: failure.status,
                    error: failure.message,
                }
            }
        }
    }

    pub fn audit_records(&self) -> u64 {
        self.chain.len()
    }

    fn audit(
        &mut self,
        now: u64,
        guest: &str,
        action: &Action,
        d: &Decision,
        log: &mut dyn LogSink,
    ) {
        // The policy that decided (zeros when none loaded: every call is then refused).
        let provenance = Provenance {
            model: self.model_digest,
            policy: self
                .pipeline
                .as_ref()
                .map_or([0; 32], |p| p.policy().digest),
        };
        let record = self.chain.record(now, guest, action, d, &provenance);
        log.line(format_args!("AUDIT {}", record.trim_end()));
    }

    /// Carries out an allowed action.
    fn perform(&mut self, guest: &str, action: &Action, log: &mut dyn LogSink) -> ToolOutcome {
        if let Some(bridge) = self.bridge.as_mut() {
            if BRIDGED_TOOLS.contains(&action.tool.as_str()) {
                return Self::perform_bridged(bridge.as_mut(), guest, action, log);
            }
        }
        let args = &action.args;
        let result: Result<String, String> = match action.tool.as_str() {
            "read_file" => str_arg(args, "path").and_then(|p| {
                self.fs
                    .read_file(p)
                    .map(|b| String::from_utf8_lossy(b).into_owned())
            }),
            "list_dir" => str_arg(args, "path").and_then(|p| self.fs.list_dir(p)),
            "write_file" => str_arg(args, "path").and_then(|p| {
                let content = str_arg(args, "content")?;
                self.fs
                    .write_file(p, content.as_bytes())
                    .map(|()| format!("wrote {} bytes to {p}", content.len()))
            }),
            "delete_file" => str_arg(args, "path")
                .and_then(|p| self.fs.delete_file(p).map(|()| format!("deleted {p}"))),
            "text" => str_arg(args, "text").map(|t| {
                log.line(format_args!("[{guest}] console: {}", Shown::new(t)));
                String::from("ok")
            }),
            "net_send" => str_arg(args, "host").and_then(|host| {
                let data = str_arg(args, "data")?;
                self.sent_bytes += data.len() as u64;
                log.line(format_args!(
                    "tool-device: guest {guest} send {} bytes to {}: approved",
                    data.len(),
                    Shown::new(host)
                ));
                Ok(format!("sent {} bytes", data.len()))
            }),
            other => Err(format!("tool {other:?} has no host service")),
        };
        match result {
            Ok(output) => ToolOutcome::Completed { output },
            Err(error) => ToolOutcome::Failed {
                status: hypercall_abi::Status::ToolFailed,
                error,
            },
        }
    }
}

impl<M: LogitModel> ToolService for GovernedServices<'_, M> {
    fn tool_call(
        &mut self,
        guest: &str,
        request: &ToolRequest,
        log: &mut dyn LogSink,
    ) -> ToolOutcome {
        let now = (self.clock_ms)();
        let json = format!(
            "{{\"tool\":{},\"args\":{}}}",
            quote(&request.name),
            request.args
        );
        let action = match Action::from_json(&json) {
            Ok(action) => action,
            Err(why) => {
                // The parser's error may quote the guest's text (a duplicate key of 30 KiB): cut, so
                // the record stays near the size the arguments' digest keeps it to.
                let reason = format!("malformed tool call: {}", Shown::new(&why));
                let action = Action::new(&request.name, Value::Object(BTreeMap::new()));
                self.audit(now, guest, &action, &refusal(Layer::Schema, &reason), log);
                return ToolOutcome::Refused { reason };
            }
        };
        let decision = match &mut self.pipeline {
            Ok(pipeline) => pipeline.decide(&action, guest, now),
            Err(why) => refusal(Layer::Schema, why),
        };
        self.audit(now, guest, &action, &decision, log);
        match decision.verdict {
            Verdict::Allow => self.perform(guest, &action, log),
            Verdict::Deny => ToolOutcome::Refused {
                reason: decision.reason,
            },
        }
    }

    fn violation(&mut self, guest: &str, kind: &str, detail: &str, log: &mut dyn LogSink) {
        let now = (self.clock_ms)();
        let mut args = BTreeMap::new();
        args.insert("detail".to_string(), Value::String(detail.to_string()));
        let action = Action::new(kind, Value::Object(args));
        let reason = format!("{kind}: {detail}");
        self.audit(now, guest, &action, &refusal(Layer::Schema, &reason), log);
    }

    fn audit_head(&self) -> [u8; 32] {
        self.chain.head()
    }
}

/// A JSON string literal of `text`.
fn quote(text: &str) -> String {
    let mut out = String::new();
    probe::json::write_string(&mut out, text);
    out
}

/// Services with no pipeline: every tool call is refused with `reason` (and audited).
pub fn fail_closed(
    reason: &str,
    clock_ms: fn() -> u64,
) -> GovernedServices<'static, probe::mock::MockModel> {
    GovernedServices::new(Err(reason.to_string()), [0; 32], MemFs::default(), clock_ms)
}

/// The final line after a run: `AUDIT-FINAL <hex hash of the last record>`.
pub fn final_line(head: &[u8; 32]) -> String {
    format!("AUDIT-FINAL {}", hex(head))
}

#[cfg(test)]
#[path = "host_services_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "host_services_bridge_tests.rs"]
mod bridge_tests;
