//! Misbehaving agent: hypercalls with bad pointers (each must be refused with an error status, never
//! crash the hypervisor), then a store outside its memory, then a triple-fault attempt.
//! Exit code = number of bad requests the hypervisor did NOT refuse (reached only if it resumes us).
#![no_std]
#![no_main]

use core::fmt::Write as _;
use guest_agent_sdk::{agent_main, GuestAgent, Kind, Request, Status};

/// A guest-physical address far beyond any agent's RAM (docs/agents.md: agents get well under 1 GiB).
const OUTSIDE_RAM: u64 = 0x8000_0000;

/// A valid tool name (`read_file`, 9 bytes) followed by valid args (`{}`), staged together.
const NAME_AND_ARGS: &[u8] = b"read_file{}";

agent_main!(main);

fn main(agent: &mut GuestAgent) -> u32 {
    // The console writes below reuse the argument area, so the name and args are staged again
    // before each request (else a later case is judged on console text instead of its pointer).
    let name = agent.stage_bytes(NAME_AND_ARGS).unwrap_or(0);
    let mut good = Request::new(Kind::ToolCall);
    (good.name_gpa, good.name_len) = (name, 9);
    (good.args_gpa, good.args_len) = (name + 9, 2);
    let cases: [(&str, Request, u64); 6] = [
        (
            "name beyond RAM",
            Request {
                name_gpa: OUTSIDE_RAM,
                ..good
            },
            0,
        ),
        (
            "args wrapping around",
            Request {
                args_gpa: u64::MAX - 1,
                ..good
            },
            0,
        ),
        (
            "null result buffer",
            Request {
                result_gpa: 0,
                result_cap: 4096,
                ..good
            },
            0,
        ),
        (
            "result in the MMIO hole",
            Request {
                result_gpa: 0xFEE0_0000,
                result_cap: 4096,
                ..good
            },
            0,
        ),
        (
            "bad version",
            Request {
                version: 0xFFFF,
                ..good
            },
            0,
        ),
        ("misaligned request", good, 4),
    ];
    let mut accepted = 0;
    for (what, request, misalign) in cases {
        let _ = agent.stage_bytes(NAME_AND_ARGS);
        let gpa = agent.stage_request(&request) + misalign;
        let (rax, _) = agent.raw_hypercall(Kind::ToolCall as u64, gpa);
        let status = Status::from_u64(rax);
        let refused = !matches!(status, Some(Status::Ok));
        accepted += u32::from(!refused);
        let _ = writeln!(agent.console(), "misbehaving: {what}: {status:?}");
    }
    for (what, gpa) in [
        ("request beyond RAM", OUTSIDE_RAM),
        ("unknown call number", 0),
    ] {
        let number = if gpa == 0 {
            0x4141
        } else {
            Kind::ToolCall as u64
        };
        let (rax, _) = agent.raw_hypercall(number, gpa);
        let _ = writeln!(
            agent.console(),
            "misbehaving: {what}: {:?}",
            Status::from_u64(rax)
        );
    }
    let _ = writeln!(
        agent.console(),
        "misbehaving: storing to {OUTSIDE_RAM:#x}, outside guest RAM"
    );
    guest_agent_sdk::guest::mmio_write(OUTSIDE_RAM, 0xDEAD_BEEF);
    let _ = writeln!(
        agent.console(),
        "misbehaving: still running; loading an empty IDT and raising #BP"
    );
    triple_fault();
    accepted
}

/// Load a zero-limit IDT and execute INT3: #BP cannot be delivered (#GP), nor can #GP (#DF), nor #DF:
/// the CPU shuts down, which under a hypervisor is a triple-fault VM exit.
fn triple_fault() {
    let idtr = [0u8; 10];
    // SAFETY: deliberately faulting is this agent's purpose; the hypervisor must contain the shutdown.
    // `idtr` is a valid 10-byte IDTR image (limit 0, base 0) on the stack.
    unsafe { core::arch::asm!("lidt [{}]", "int3", in(reg) idtr.as_ptr(), options(nostack)) };
}
