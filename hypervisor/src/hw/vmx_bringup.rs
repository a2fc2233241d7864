//! VT-x bring-up on the real CPU: detect VMX, enter VMX operation, report the capabilities, leave again.

use super::console::line;
use super::cpu::CpuFeatures;
use super::guests::{self, AgentModule};
use crate::host_services::ToolService;
use crate::status::RunStatus;
use crate::vmx_bringup::BringUpError;
use crate::vmx_bringup::{
    enter_vmx_operation, leave_vmx_operation, read_capabilities, vmxon_region_header,
};
use alloc::alloc::{alloc_zeroed, dealloc, Layout};
use vmx::capabilities::VmxBasic;
use vmx::hw::real::RealVmx;
use vmx::hw::VmxHardware;
use vmx::msr;

const REGION_LAYOUT: Layout = match Layout::from_size_align(4096, 4096) {
    Ok(layout) => layout,
    Err(_) => panic!("4096/4096 is a valid layout"),
};

/// Runs the bring-up, then the agent guests (if any) in VMX operation, and says how the run ends: `Ok`,
/// `NoVtx` (no VMX, or VMX disabled by firmware) or `Fail` (VMXON/VMXOFF failed, or no memory for the
/// VMXON region). `host_xcr0` is the hypervisor's XCR0 (None without XSAVE).
pub fn run(
    features: &CpuFeatures,
    agents: &[AgentModule],
    host_xcr0: Option<u64>,
    services: &mut dyn ToolService,
) -> RunStatus {
    if !features.has_vmx {
        let svm = if features.has_svm {
            ", AMD SVM is present"
        } else {
            ""
        };
        line(format_args!(
            "probevisor: no VT-x: CPUID.1:ECX[5] (VMX) is clear on this {} CPU{svm}",
            features.vendor_str()
        ));
        return RunStatus::NoVtx;
    }
    // SAFETY: we run at CPL 0 on a CPU whose CPUID reports VMX; the only address passed through the handle
    // is the VMXON region allocated below, owned by this function until after VMXOFF.
    let mut cpu = unsafe { RealVmx::new() };
    let basic = VmxBasic::from_msr(cpu.rdmsr(msr::IA32_VMX_BASIC));
    let header = match vmxon_region_header(&basic) {
        Ok(header) => header,
        Err(err) => return fail(err),
    };
    // SAFETY: the layout has a non-zero size; the pointer is checked for null before use.
    let region = unsafe { alloc_zeroed(REGION_LAYOUT) };
    if region.is_null() {
        line(format_args!(
            "probevisor: VMX bring-up failed: no memory for the VMXON region"
        ));
        return RunStatus::Fail;
    }
    // SAFETY: `region` is a fresh, 4 KiB aligned allocation of 4096 bytes; its first dword is written.
    unsafe { region.cast::<u32>().write(header) };
    let status = run_in_vmx_operation(&mut cpu, region as u64, agents, host_xcr0, services);
    // SAFETY: VMX operation has ended (or never started), so the CPU no longer uses the region.
    unsafe { dealloc(region, REGION_LAYOUT) };
    status
}

fn run_in_vmx_operation(
    cpu: &mut RealVmx,
    region_phys: u64,
    agents: &[AgentModule],
    host_xcr0: Option<u64>,
    services: &mut dyn ToolService,
) -> RunStatus {
    let entry = match enter_vmx_operation(cpu, region_phys) {
        Ok(entry) => entry,
        Err(err @ BringUpError::DisabledByFirmware { .. }) => {
            line(format_args!("probevisor: no VT-x: {err}"));
            return RunStatus::NoVtx;
        }
        Err(err) => return fail(err),
    };
    line(format_args!("probevisor: VMXON ok"));
    log::info!(
        "IA32_FEATURE_CONTROL {:#x} (written: {:?}), CR0 {:#x}, CR4 {:#x}, VMXON region {region_phys:#x}",
        entry.feature_control_before,
        entry.feature_control_written,
        entry.cr0,
        entry.cr4
    );
    let caps = read_capabilities(cpu);
    caps.report(line);
    if !agents.is_empty() {
        guests::run(cpu, &caps, agents, host_xcr0, services);
    }
    if let Err(err) = leave_vmx_operation(cpu) {
        return fail(err);
    }
    line(format_args!("probevisor: VMXOFF ok"));
    RunStatus::Ok
}

fn fail(err: BringUpError) -> RunStatus {
    line(format_args!("probevisor: VMX bring-up failed: {err}"));
    RunStatus::Fail
}
