//! Running agent guests on any backend: load each ELF into a vCPU the backend builds, time-slice them
//! round robin on the boot CPU, and print a per-guest summary and the audit chain's last line. A guest
//! that cannot be loaded or misbehaves is stopped alone; the hypervisor goes on.

use super::console::line;
use super::guests::AgentModule;
use crate::exits::ExitEnv;
use crate::guest_loader::{self, ElfImage};
use crate::guest_memory::{GUEST_RAM_SIZE, RESERVED_LOW};
use crate::host_services::{final_line, ToolService};
use crate::scheduler::{run_round_robin, Guest, GuestBudget};
use crate::vcpu::Vcpu;
use crate::vm::{GuestState, LogSink};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// What each guest may spend before it is stopped (its own budget; the others go on): 100,000
/// exits, and 2,000 time slices (20 s of SVM's 10 ms slices; the agents in the tests use at most
/// a handful; a guest spinning without exits had held the run for ~1000 s on the exit budget).
pub const GUEST_BUDGET: GuestBudget = GuestBudget {
    exits: 100_000,
    slices: 2_000,
};

struct SerialLog;

impl LogSink for SerialLog {
    fn line(&mut self, args: fmt::Arguments<'_>) {
        line(args);
    }
}

fn native_cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// Masks both 8259 PICs: the hypervisor takes no device interrupts while guests run.
pub fn mask_pic() {
    // SAFETY: writing the interrupt mask registers of the legacy PICs only stops IRQ delivery.
    unsafe {
        core::arch::asm!("out 0x21, al", "out 0xA1, al", in("al") 0xFFu8, options(nomem, nostack, preserves_flags));
    }
}

/// The guests built, and those that could not be (name, why).
pub struct Loaded<V> {
    pub guests: Vec<Guest<V>>,
    pub not_started: Vec<(String, String)>,
}

/// Parses each agent and builds its vCPU with `build(index, image, bytes)` (guest RAM of
/// [`GUEST_RAM_SIZE`]); prints `probevisor: guest NAME loaded` or `not started: WHY`.
pub fn load<V>(
    agents: &[AgentModule],
    mut build: impl FnMut(usize, &ElfImage, &'static [u8]) -> Result<V, String>,
) -> Loaded<V> {
    let mut loaded = Loaded {
        guests: Vec::new(),
        not_started: Vec::new(),
    };
    for (index, agent) in agents.iter().enumerate() {
        let built = guest_loader::parse(agent.bytes, RESERVED_LOW, GUEST_RAM_SIZE)
            .map_err(|e| alloc::format!("{e}"))
            .and_then(|image| build(index, &image, agent.bytes));
        match built {
            Ok(vcpu) => {
                line(format_args!(
                    "probevisor: guest {} loaded ({} bytes)",
                    agent.name,
                    agent.bytes.len()
                ));
                loaded.guests.push(Guest {
                    vcpu,
                    state: GuestState::new(&agent.name),
                });
            }
            Err(why) => {
                line(format_args!(
                    "probevisor: guest {} not started: {why}",
                    agent.name
                ));
                loaded.not_started.push((agent.name.clone(), why));
            }
        }
    }
    loaded
}

/// Runs the loaded guests round robin until all have stopped, then prints the summaries and the audit
/// chain's final line.
pub fn run_and_report<V: Vcpu>(
    loaded: &mut Loaded<V>,
    host_xcr0: Option<u64>,
    services: &mut dyn ToolService,
) {
    let mut log = SerialLog;
    let mut env = ExitEnv {
        log: &mut log,
        host_cpuid: &native_cpuid,
        xcr0_allowed: host_xcr0.unwrap_or(1),
        services,
    };
    let exits = run_round_robin(&mut loaded.guests, &mut env, GUEST_BUDGET);
    line(format_args!(
        "probevisor: all guests stopped after {exits} exits"
    ));
    for guest in &loaded.guests {
        let s = &guest.state;
        let stats = s.stats;
        let reason = s
            .stopped
            .as_ref()
            .map_or(String::from("running"), |r| alloc::format!("{r}"));
        let kind = if s.stopped.as_ref().is_some_and(|r| r.is_voluntary()) {
            "finished"
        } else {
            "stopped"
        };
        line(format_args!(
            "probevisor: summary guest {}: {kind}: {reason}; exits {}, hypercalls {}, refused {}, tool calls {} (denied {}), slices {}",
            s.name, stats.exits, stats.hypercalls, stats.refused_requests, stats.tool_calls, stats.tool_calls_denied, stats.time_slices
        ));
    }
    for (name, why) in &loaded.not_started {
        line(format_args!(
            "probevisor: summary guest {name}: not started: {why}"
        ));
    }
    line(format_args!("{}", final_line(&env.services.audit_head())));
}
