//! CPU feature detection (raw-cpuid) and enabling SSE/AVX for the hypervisor's own code.

use crate::simd::{
    self, SimdError, SimdPlan, SimdSupport, XCR0_AVX, XCR0_PKRU, XCR0_SSE, XCR0_X87,
};
use raw_cpuid::CpuId;
use x86_64::registers::control::{Cr0, Cr4};
use x86_64::registers::model_specific::{Efer, EferFlags};
use x86_64::registers::xcontrol::XCr0;

/// What the boot path needs to know about the CPU.
#[derive(Debug, Clone, Copy)]
pub struct CpuFeatures {
    pub vendor: [u8; 12],
    pub has_vmx: bool,
    pub has_svm: bool,
    pub has_1g_pages: bool,
    pub nx_enabled: bool,
    pub has_avx2: bool,
    pub has_fma: bool,
    pub hypervisor_present: bool,
    /// MAXPHYADDR (CPUID 0x8000_0008 EAX\[7:0\]); 36 when the leaf is missing, as the SDM prescribes.
    pub physical_address_bits: u8,
    pub simd: SimdSupport,
}

impl CpuFeatures {
    pub fn vendor_str(&self) -> &str {
        core::str::from_utf8(&self.vendor).unwrap_or("?")
    }
}

pub fn detect() -> CpuFeatures {
    let cpuid = CpuId::new();
    let mut vendor = [b'?'; 12];
    if let Some(info) = cpuid.get_vendor_info() {
        let name = info.as_str().as_bytes();
        let len = name.len().min(12);
        vendor[..len].copy_from_slice(&name[..len]);
    }
    let features = cpuid.get_feature_info();
    let has = |f: fn(&raw_cpuid::FeatureInfo) -> bool| features.as_ref().is_some_and(f);
    let extended = cpuid.get_extended_processor_and_feature_identifiers();
    let xcr0_supported = cpuid.get_extended_state_info().map_or(0, |state| {
        let bit = |on: bool, mask: u64| if on { mask } else { 0 };
        bit(state.xcr0_supports_legacy_x87(), XCR0_X87)
            | bit(state.xcr0_supports_sse_128(), XCR0_SSE)
            | bit(state.xcr0_supports_avx_256(), XCR0_AVX)
            | bit(state.xcr0_supports_pkru(), XCR0_PKRU)
    });
    CpuFeatures {
        vendor,
        has_vmx: has(|f| f.has_vmx()),
        has_svm: extended.as_ref().is_some_and(|e| e.has_svm()),
        has_1g_pages: extended.as_ref().is_some_and(|e| e.has_1gib_pages()),
        nx_enabled: Efer::read().contains(EferFlags::NO_EXECUTE_ENABLE),
        has_avx2: cpuid
            .get_extended_feature_info()
            .is_some_and(|e| e.has_avx2()),
        has_fma: has(|f| f.has_fma()),
        hypervisor_present: has(|f| f.has_hypervisor()),
        physical_address_bits: cpuid
            .get_processor_capacity_feature_info()
            .map_or(36, |c| c.physical_address_bits()),
        simd: SimdSupport {
            sse2: has(|f| f.has_sse2()),
            fxsave: has(|f| f.has_fxsave_fxstor()),
            xsave: has(|f| f.has_xsave()),
            avx: has(|f| f.has_avx()),
            xcr0_supported,
        },
    }
}

/// CR4.PKE: protection keys for user pages.
const CR4_PKE: u64 = 1 << 22;

/// Turns on SSE (and AVX when possible): CR0.MP=1, CR0.EM=0, CR4.OSFXSR/OSXMMEXCPT/OSXSAVE, XCR0.
pub fn enable_simd(support: SimdSupport) -> Result<SimdPlan, SimdError> {
    let plan = simd::plan(support)?;
    // SAFETY: the plan only sets the bits that enable SSE/AVX state, which CPUID says the CPU has; no code
    // runs with SIMD until this returns, and no other state depends on these bits.
    unsafe {
        Cr0::write_raw((Cr0::read_raw() | plan.cr0_set) & !plan.cr0_clear);
        // CR4.PKE off in the host whatever the firmware left: guests' PKRU values are live in
        // host context between their XRSTOR and XSAVE (hw::xsave) and must not restrict it.
        Cr4::write_raw((Cr4::read_raw() | plan.cr4_set) & !CR4_PKE);
        if let Some(xcr0) = plan.xcr0 {
            XCr0::write_raw(xcr0);
        }
    }
    Ok(plan)
}
