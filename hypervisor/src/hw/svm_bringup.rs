//! AMD SVM bring-up on the real CPU: detect SVM with nested paging, set EFER.SVME and VM_HSAVE_PA, report
//! the capabilities, run the agent guests (one VMCB, NPT and ASID each), then clear EFER.SVME again.

use super::console::line;
use super::cpu::CpuFeatures;
use super::guest_runner::{self, mask_pic};
use super::guests::AgentModule;
use super::svm_timer::SliceTimer;
use super::svm_vcpu::{SvmPlatform, SvmVcpu};
use crate::guest_memory::GUEST_RAM_SIZE;
use crate::host_services::ToolService;
use crate::status::RunStatus;
use alloc::alloc::{alloc_zeroed, Layout};
use svm::asid::AsidAllocator;
use svm::capabilities::{detect, SvmCpuid, CPUID_SVM_LEAF};
use svm::hw::real::RealSvm;
use svm::hw::{enable_svm, SvmHardware};
use svm::msr::{EFER, EFER_SVME, VM_CR};

/// EFER.FFXSR: fast FXSAVE/FXRSTOR.
const EFER_FFXSR: u64 = 1 << 14;
/// IA32_TSC_AUX (read by RDTSCP and RDPID).
const IA32_TSC_AUX: u32 = 0xC000_0103;
/// CPUID.8000_0001h:EDX\[27\] RDTSCP; CPUID.(7,0):ECX\[22\] RDPID.
const CPUID_EXT1_EDX_RDTSCP: u32 = 1 << 27;
const CPUID7_ECX_RDPID: u32 = 1 << 22;

const PAGE: Layout = match Layout::from_size_align(4096, 4096) {
    Ok(l) => l,
    Err(_) => panic!("4096/4096 is a valid layout"),
};

/// The CPUID values SVM detection needs.
pub fn svm_cpuid() -> SvmCpuid {
    let leaf = |l: u32| core::arch::x86_64::__cpuid_count(l, 0);
    let max_extended_leaf = leaf(0x8000_0000).eax;
    let ext1_ecx = if max_extended_leaf >= 0x8000_0001 {
        leaf(0x8000_0001).ecx
    } else {
        0
    };
    let (leaf_a_eax, leaf_a_ebx, leaf_a_edx) = if max_extended_leaf >= CPUID_SVM_LEAF {
        let a = leaf(CPUID_SVM_LEAF);
        (a.eax, a.ebx, a.edx)
    } else {
        (0, 0, 0)
    };
    SvmCpuid {
        max_extended_leaf,
        ext1_ecx,
        leaf_a_eax,
        leaf_a_ebx,
        leaf_a_edx,
    }
}

fn page() -> Option<u64> {
    // SAFETY: non-zero size; checked for null. The page is never freed: the CPU may use it (host save
    // area, host VMSAVE state) until EFER.SVME is cleared, and the run ends soon after.
    let p = unsafe { alloc_zeroed(PAGE) };
    (!p.is_null()).then_some(p as u64)
}

/// Runs the bring-up and then the agent guests (if any) under SVM; says how the run ends: `Ok`, `NoVtx`
/// (no usable SVM: absent, no nested paging, or disabled by firmware) or `Fail`.
pub fn run(
    features: &CpuFeatures,
    agents: &[AgentModule],
    host_xcr0: Option<u64>,
    services: &mut dyn ToolService,
) -> RunStatus {
    let (Some(hsave), Some(host_vmcb)) = (page(), page()) else {
        line(format_args!(
            "probevisor: SVM bring-up failed: no memory for the host save area"
        ));
        return RunStatus::Fail;
    };
    // SAFETY: CPL 0 on the boot CPU; CPUID reported SVM (the caller chose this backend from it); the only
    // addresses passed through the handle are the two pages above, owned for the rest of the run.
    let mut hw = match unsafe { RealSvm::new(host_vmcb) } {
        Ok(hw) => hw,
        Err(err) => {
            line(format_args!("probevisor: SVM bring-up failed: {err}"));
            return RunStatus::Fail;
        }
    };
    let caps = match detect(svm_cpuid(), || hw.rdmsr(VM_CR)) {
        Ok((caps, _)) => caps,
        Err(err) => {
            line(format_args!("probevisor: no VT-x or SVM: {err}"));
            return RunStatus::NoVtx;
        }
    };
    if let Err(err) = enable_svm(&mut hw, hsave) {
        line(format_args!("probevisor: no VT-x or SVM: {err}"));
        return RunStatus::NoVtx;
    }
    line(format_args!(
        "probevisor: SVM ok (EFER.SVME set, VM_HSAVE_PA {hsave:#x})"
    ));
    // RDPID reads IA32_TSC_AUX and no SVM intercept catches it (RDTSCP's does): the value guests
    // can read is 0, not whatever the firmware left there (often the CPU number).
    let ext = core::arch::x86_64::__cpuid(0x8000_0001).edx;
    let leaf7 = core::arch::x86_64::__cpuid_count(7, 0).ecx;
    if ext & CPUID_EXT1_EDX_RDTSCP != 0 || leaf7 & CPUID7_ECX_RDPID != 0 {
        hw.wrmsr(IA32_TSC_AUX, 0);
    }
    // EFER.FFXSR (fast FXSAVE/FXRSTOR) makes them skip XMM0-15 at CPL 0 in long mode: the guests'
    // SSE registers would not be switched on a CPU without XSAVE (hw::xsave's fallback).
    let efer = hw.rdmsr(EFER);
    if efer & EFER_FFXSR != 0 {
        hw.wrmsr(EFER, efer & !EFER_FFXSR);
    }
    line(format_args!("{caps}"));
    if !agents.is_empty() {
        let slice = match SliceTimer::start(features.physical_address_bits) {
            Ok(timer) => Some(timer),
            Err(why) => {
                line(format_args!(
                    "probevisor: no time slices ({why}): guests cannot be stopped, none is started"
                ));
                None
            }
        };
        let platform = SvmPlatform {
            features: caps,
            host_vmcb_pa: host_vmcb,
            host_xcr0,
            physical_address_bits: features.physical_address_bits,
            slice,
        };
        let mut asids = AsidAllocator::new(caps.number_of_asids, caps.flush_by_asid());
        let mut loaded = guest_runner::load(agents, |_, image, bytes| {
            let asid = asids.allocate().map_err(|e| alloc::format!("ASID: {e}"))?;
            SvmVcpu::new(&platform, asid, GUEST_RAM_SIZE as usize, |ram| {
                image.load(bytes, ram).map_err(|e| alloc::format!("{e}"))?;
                Ok(image.entry)
            })
        });
        mask_pic();
        match slice {
            Some(timer) => {
                let (count, divide) = timer.describe();
                line(format_args!(
                    "probevisor: running {} guest(s) under SVM, round robin, slice = local APIC timer {count} x {divide} bus clocks (INTR intercepted)",
                    loaded.guests.len()
                ));
            }
            None => line(format_args!(
                "probevisor: running {} guest(s) under SVM, round robin, no time slices",
                loaded.guests.len()
            )),
        }
        guest_runner::run_and_report(&mut loaded, host_xcr0, services);
        if let Some(timer) = slice {
            timer.stop();
        }
    }
    let efer = hw.rdmsr(EFER);
    hw.wrmsr(EFER, efer & !EFER_SVME);
    line(format_args!("probevisor: SVM off (EFER.SVME cleared)"));
    RunStatus::Ok
}
