//! Running agent guests from boot modules under VT-x: load each ELF, build its vCPU, time-slice them round
//! robin on the boot CPU, and print a per-guest summary. A guest that cannot be loaded or misbehaves is
//! stopped alone; the hypervisor goes on.

use super::console::line;
use super::vmx_vcpu::{current_host_state, Platform, VmxVcpu};
use crate::exits::ExitEnv;
use crate::guest_loader;
use crate::guest_memory::{GUEST_RAM_SIZE, RESERVED_LOW};
use crate::host_services::{final_line, ToolService};
use crate::scheduler::{run_round_robin, Guest};
use crate::vm::{GuestState, LogSink};
use crate::vmx_bringup::VmxCapabilities;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use vmx::capabilities::VmxMisc;
use vmx::hw::real::RealVmx;
use vmx::hw::VmxHardware;
use vmx::msr;

/// TSC ticks per time slice.
const SLICE_TSC_TICKS: u64 = 20_000;
/// Exits handled in total before the guests still running are stopped.
const MAX_EXITS: u64 = 100_000;

/// An agent image from a boot module.
pub struct AgentModule {
    pub name: String,
    pub bytes: &'static [u8],
}

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
fn mask_pic() {
    // SAFETY: writing the interrupt mask registers of the legacy PICs only stops IRQ delivery.
    unsafe {
        core::arch::asm!("out 0x21, al", "out 0xA1, al", in("al") 0xFFu8, options(nomem, nostack, preserves_flags));
    }
}

/// Runs the agents in VMX operation (the VMXON region is live); returns when every guest has stopped.
pub fn run(
    hw: &mut RealVmx,
    caps: &VmxCapabilities,
    agents: &[AgentModule],
    host_xcr0: Option<u64>,
    services: &mut dyn ToolService,
) {
    let misc = VmxMisc::from_msr(hw.rdmsr(msr::IA32_VMX_MISC));
    let platform = Platform {
        caps: *caps,
        host: current_host_state(hw),
        cr0_fixed: (
            hw.rdmsr(msr::IA32_VMX_CR0_FIXED0),
            hw.rdmsr(msr::IA32_VMX_CR0_FIXED1),
        ),
        cr4_fixed: (
            hw.rdmsr(msr::IA32_VMX_CR4_FIXED0),
            hw.rdmsr(msr::IA32_VMX_CR4_FIXED1),
        ),
        slice: Some(vmx::invalidate::preemption_timer_value(
            SLICE_TSC_TICKS,
            misc.preemption_timer_rate,
        )),
        host_xcr0,
    };
    let mut guests: Vec<Guest<VmxVcpu>> = Vec::new();
    let mut not_started: Vec<(String, String)> = Vec::new();
    for (index, agent) in agents.iter().enumerate() {
        let vpid = index as u16 + 1;
        let built = guest_loader::parse(agent.bytes, RESERVED_LOW, GUEST_RAM_SIZE)
            .map_err(|e| alloc::format!("{e}"))
            .and_then(|image| {
                VmxVcpu::new(&platform, vpid, GUEST_RAM_SIZE as usize, |ram| {
                    image
                        .load(agent.bytes, ram)
                        .map_err(|e| alloc::format!("{e}"))?;
                    Ok(image.entry)
                })
            });
        match built {
            Ok(vcpu) => {
                line(format_args!(
                    "probevisor: guest {} loaded ({} bytes)",
                    agent.name,
                    agent.bytes.len()
                ));
                guests.push(Guest {
                    vcpu,
                    state: GuestState::new(&agent.name),
                });
            }
            Err(why) => {
                line(format_args!(
                    "probevisor: guest {} not started: {why}",
                    agent.name
                ));
                not_started.push((agent.name.clone(), why));
            }
        }
    }
    mask_pic();
    line(format_args!(
        "probevisor: running {} guest(s), round robin, slice {:?} timer ticks (rate {})",
        guests.len(),
        platform.slice,
        misc.preemption_timer_rate
    ));
    let mut log = SerialLog;
    let mut env = ExitEnv {
        log: &mut log,
        host_cpuid: &native_cpuid,
        xcr0_allowed: host_xcr0.unwrap_or(1),
        services,
    };
    let exits = run_round_robin(&mut guests, &mut env, MAX_EXITS);
    line(format_args!(
        "probevisor: all guests stopped after {exits} exits"
    ));
    for guest in &guests {
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
    for (name, why) in &not_started {
        line(format_args!(
            "probevisor: summary guest {name}: not started: {why}"
        ));
    }
    line(format_args!("{}", final_line(&env.services.audit_head())));
}
