//! Picks the virtualization backend from CPUID at boot: VT-x when the CPU has VMX, else AMD SVM when it
//! has SVM with nested paging (`crate::svm_exit::choose_backend`), else it says so and the run ends with
//! the no-VT-x status (`probevisor: no VT-x or SVM: ...`, `PROBEVISOR-DONE status=no-vtx`).

use super::console::line;
use super::cpu::CpuFeatures;
use super::guests::AgentModule;
use super::{svm_bringup, vmx_bringup};
use crate::host_services::ToolService;
use crate::status::RunStatus;
use crate::svm_exit::{choose_backend, Backend};

/// Runs the bring-up of the chosen backend and the agent guests under it.
pub fn run(
    features: &CpuFeatures,
    agents: &[AgentModule],
    host_xcr0: Option<u64>,
    services: &mut dyn ToolService,
) -> RunStatus {
    match choose_backend(features.has_vmx, &svm_bringup::svm_cpuid()) {
        Backend::Vmx => {
            line(format_args!("probevisor: backend VT-x (CPUID.1:ECX[5])"));
            vmx_bringup::run(features, agents, host_xcr0, services)
        }
        Backend::Svm => {
            line(format_args!(
                "probevisor: backend AMD SVM (CPUID 8000_0001h ECX[2], nested paging)"
            ));
            svm_bringup::run(features, agents, host_xcr0, services)
        }
        Backend::Neither(why) => {
            line(format_args!(
                "probevisor: no VT-x or SVM: {why} on this {} CPU",
                features.vendor_str()
            ));
            RunStatus::NoVtx
        }
    }
}
