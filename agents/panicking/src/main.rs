//! Panicking agent: writes one console line, then panics. The SDK's panic handler must report it
//! with an Exit hypercall carrying EXIT_CODE_PANIC (0xDEAD0001) and the panic message.
#![no_std]
#![no_main]

use core::fmt::Write as _;
use guest_agent_sdk::{agent_main, GuestAgent};

agent_main!(main);

fn main(agent: &mut GuestAgent) -> u32 {
    let _ = writeln!(
        agent.console(),
        "panicking: about to index past the end of a slice"
    );
    let numbers = [1u32, 2, 3];
    let index = agent
        .list_dir("/nonexistent")
        .map_or(7, |r| r.output.len() + 7);
    numbers[index]
}
