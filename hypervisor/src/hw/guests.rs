//! Running agent guests from boot modules under VT-x: the VMX platform (host state, fixed CR bits, the
//! preemption timer's slice) and one VMCS per guest; loading, scheduling and the summary are shared with
//! the SVM backend (hw::guest_runner).

use super::console::line;
use super::guest_runner::{self, mask_pic};
use super::vmx_vcpu::{current_host_state, Platform, VmxVcpu};
use crate::guest_memory::GUEST_RAM_SIZE;
use crate::host_services::ToolService;
use crate::vmx_bringup::VmxCapabilities;
use alloc::string::String;
use vmx::capabilities::VmxMisc;
use vmx::hw::real::RealVmx;
use vmx::hw::VmxHardware;
use vmx::msr;

/// TSC ticks per time slice.
const SLICE_TSC_TICKS: u64 = 20_000;

/// An agent image from a boot module.
pub struct AgentModule {
    pub name: String,
    pub bytes: &'static [u8],
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
    let mut loaded = guest_runner::load(agents, |index, image, bytes| {
        let vpid = index as u16 + 1;
        VmxVcpu::new(&platform, vpid, GUEST_RAM_SIZE as usize, |ram| {
            image.load(bytes, ram).map_err(|e| alloc::format!("{e}"))?;
            Ok(image.entry)
        })
    });
    mask_pic();
    line(format_args!(
        "probevisor: running {} guest(s), round robin, slice {:?} timer ticks (rate {})",
        loaded.guests.len(),
        platform.slice,
        misc.preemption_timer_rate
    ));
    guest_runner::run_and_report(&mut loaded, host_xcr0, services);
}
