//! A mock hypervisor for host tests: guest memory as a Vec, requests decoded and checked with
//! hypercall-abi's validation, tools answered from a table.

use crate::Transport;
use hypercall_abi::{decode_call, write_result, Call, Response, Status};

pub const MEM_SIZE: usize = 0x2_0000;
pub const STAGING_GPA: u64 = 0x1_0000;

pub struct MockHypervisor {
    pub mem: Vec<u8>,
    pub staging_len: usize,
    /// `(tool, status, payload)`; unknown tools get `UnknownTool`.
    pub answers: Vec<(String, Status, Vec<u8>)>,
    /// Replaces the decoded answer with raw `(RAX, RDX)` (a misbehaving hypervisor).
    pub forced: Option<(u64, u64)>,
    pub calls: Vec<(String, String)>,
    pub console: String,
    pub exits: Vec<(u32, String)>,
    pub hypercalls: usize,
    pub last_status: Option<Status>,
}

impl MockHypervisor {
    pub fn new(staging_len: usize) -> MockHypervisor {
        MockHypervisor {
            mem: vec![0; MEM_SIZE],
            staging_len,
            answers: Vec::new(),
            forced: None,
            calls: Vec::new(),
            console: String::new(),
            exits: Vec::new(),
            hypercalls: 0,
            last_status: None,
        }
    }

    pub fn answer(mut self, tool: &str, status: Status, payload: &str) -> Self {
        self.answers
            .push((tool.to_string(), status, payload.as_bytes().to_vec()));
        self
    }

    fn handle(&mut self, number: u64, request_gpa: u64) -> Response {
        let call = match decode_call(number, request_gpa, &self.mem) {
            Ok(call) => call,
            Err(e) => return Response::error(e),
        };
        match call {
            Call::ToolCall { name, args, result } => {
                let (name, args) = (name.to_string(), args.to_string());
                let answer = self.answers.iter().find(|(tool, _, _)| *tool == name);
                let (status, payload) = match answer {
                    Some((_, status, payload)) => (*status, payload.clone()),
                    None => (Status::UnknownTool, Vec::new()),
                };
                self.calls.push((name, args));
                write_result(&mut self.mem, result, status, &payload)
            }
            Call::ConsoleWrite { text } => {
                self.console.push_str(text);
                Response {
                    status: Status::Ok,
                    len: 0,
                }
            }
            Call::Exit { code, message } => {
                self.exits.push((code, message.to_string()));
                Response {
                    status: Status::Ok,
                    len: 0,
                }
            }
        }
    }
}

impl Transport for MockHypervisor {
    fn staging(&mut self) -> (u64, &mut [u8]) {
        let start = STAGING_GPA as usize;
        (STAGING_GPA, &mut self.mem[start..start + self.staging_len])
    }

    fn hypercall(&mut self, number: u64, request_gpa: u64) -> (u64, u64) {
        self.hypercalls += 1;
        let response = self.handle(number, request_gpa);
        self.last_status = Some(response.status);
        self.forced.unwrap_or(response.registers())
    }

    fn halt(&mut self) -> ! {
        panic!("agent halted")
    }
}
