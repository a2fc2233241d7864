//! SVM detection (APM Vol. 2, 15.4 "Enabling SVM"): CPUID 8000_0001h ECX\[2\], the feature leaf
//! 8000_000Ah, and what VM_CR says about whether firmware left SVM usable.

use crate::msr::{VM_CR_LOCK, VM_CR_SVMDIS};
use core::fmt;

/// CPUID 8000_0001h ECX bit 2: SVM.
pub const CPUID_EXT1_ECX_SVM: u32 = 1 << 2;
/// The SVM feature leaf.
pub const CPUID_SVM_LEAF: u32 = 0x8000_000A;

/// CPUID 8000_000Ah EDX bits (APM Vol. 3, Appendix E.4.9).
pub mod edx {
    /// Nested paging.
    pub const NP: u32 = 1 << 0;
    /// LBR virtualization.
    pub const LBR_VIRT: u32 = 1 << 1;
    /// SVM lock (VM_CR.LOCK can be unlocked with a key).
    pub const SVML: u32 = 1 << 2;
    /// nRIP save on #VMEXIT.
    pub const NRIPS: u32 = 1 << 3;
    /// TSC rate MSR.
    pub const TSC_RATE_MSR: u32 = 1 << 4;
    /// VMCB clean bits.
    pub const VMCB_CLEAN: u32 = 1 << 5;
    /// TLB_CONTROL flush by ASID.
    pub const FLUSH_BY_ASID: u32 = 1 << 6;
    /// Decode assists (instruction bytes, EXITINFO for CR/DR/INVLPG).
    pub const DECODE_ASSISTS: u32 = 1 << 7;
    /// PAUSE intercept filter.
    pub const PAUSE_FILTER: u32 = 1 << 10;
    /// PAUSE filter threshold.
    pub const PAUSE_FILTER_THRESHOLD: u32 = 1 << 12;
    /// AVIC.
    pub const AVIC: u32 = 1 << 13;
    /// Virtualized VMSAVE/VMLOAD.
    pub const VMSAVE_VIRT: u32 = 1 << 15;
    /// Virtual GIF.
    pub const VGIF: u32 = 1 << 16;
    /// Guest mode execute trap.
    pub const GMET: u32 = 1 << 17;
}

/// Decoded CPUID 8000_000Ah.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SvmFeatures {
    /// SVM revision (EAX\[7:0\]).
    pub revision: u8,
    /// Number of ASIDs (EBX); valid guest ASIDs are 1..number_of_asids.
    pub number_of_asids: u32,
    /// The raw EDX feature bits.
    pub edx: u32,
}

impl SvmFeatures {
    /// Decodes EAX, EBX and EDX of CPUID 8000_000Ah.
    pub fn from_cpuid(eax: u32, ebx: u32, edx: u32) -> Self {
        Self {
            revision: (eax & 0xFF) as u8,
            number_of_asids: ebx,
            edx,
        }
    }
    fn has(self, bit: u32) -> bool {
        self.edx & bit != 0
    }
    /// Nested paging.
    pub fn nested_paging(self) -> bool {
        self.has(edx::NP)
    }
    /// LBR virtualization.
    pub fn lbr_virt(self) -> bool {
        self.has(edx::LBR_VIRT)
    }
    /// SVM lock.
    pub fn svm_lock(self) -> bool {
        self.has(edx::SVML)
    }
    /// nRIP save: the VMCB's NRIP holds the next RIP after intercepted instructions.
    pub fn nrip_save(self) -> bool {
        self.has(edx::NRIPS)
    }
    /// TSC rate MSR.
    pub fn tsc_rate(self) -> bool {
        self.has(edx::TSC_RATE_MSR)
    }
    /// VMCB clean bits.
    pub fn vmcb_clean(self) -> bool {
        self.has(edx::VMCB_CLEAN)
    }
    /// Flush by ASID.
    pub fn flush_by_asid(self) -> bool {
        self.has(edx::FLUSH_BY_ASID)
    }
    /// Decode assists.
    pub fn decode_assists(self) -> bool {
        self.has(edx::DECODE_ASSISTS)
    }
    /// PAUSE filter.
    pub fn pause_filter(self) -> bool {
        self.has(edx::PAUSE_FILTER)
    }
    /// AVIC.
    pub fn avic(self) -> bool {
        self.has(edx::AVIC)
    }
    /// Virtual GIF.
    pub fn vgif(self) -> bool {
        self.has(edx::VGIF)
    }
}

fn yes_no(flag: bool) -> &'static str {
    if flag {
        "yes"
    } else {
        "no"
    }
}

impl fmt::Display for SvmFeatures {
    /// One line: `svm caps rev=1 asids=16 np=yes nrips=yes ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "svm caps rev={} asids={} np={} nrips={} flush-by-asid={} decode-assists={} \
             vmcb-clean={} lbr-virt={} tsc-rate={} pause-filter={} avic={} vgif={} svml={}",
            self.revision,
            self.number_of_asids,
            yes_no(self.nested_paging()),
            yes_no(self.nrip_save()),
            yes_no(self.flush_by_asid()),
            yes_no(self.decode_assists()),
            yes_no(self.vmcb_clean()),
            yes_no(self.lbr_virt()),
            yes_no(self.tsc_rate()),
            yes_no(self.pause_filter()),
            yes_no(self.avic()),
            yes_no(self.vgif()),
            yes_no(self.svm_lock()),
        )
    }
}

/// What to do with VM_CR before setting EFER.SVME.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmCrAction {
    /// SVMDIS clear: EFER.SVME may be set.
    Enabled,
    /// SVMDIS set but not locked: write this value (SVMDIS cleared) to VM_CR first.
    ClearSvmdis(u64),
    /// SVMDIS set and locked: firmware disabled SVM.
    DisabledByFirmware,
}

/// Decides from VM_CR (0xC001_0114) whether SVM can be enabled.
pub fn decide_vm_cr(vm_cr: u64) -> VmCrAction {
    match (vm_cr & VM_CR_SVMDIS != 0, vm_cr & VM_CR_LOCK != 0) {
        (false, _) => VmCrAction::Enabled,
        (true, false) => VmCrAction::ClearSvmdis(vm_cr & !VM_CR_SVMDIS),
        (true, true) => VmCrAction::DisabledByFirmware,
    }
}

/// Why SVM cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SvmUnavailable {
    /// CPUID 8000_0001h ECX\[2\] is clear (or the extended leaf does not exist).
    NotSupported,
    /// The CPU reports SVM but no leaf 8000_000Ah.
    NoFeatureLeaf,
    /// VM_CR.SVMDIS and VM_CR.LOCK are set.
    DisabledByFirmware {
        /// The SVM lock key mechanism exists (CPUID 8000_000Ah EDX\[2\]).
        unlockable_with_key: bool,
    },
    /// Nested paging is required and absent.
    NoNestedPaging,
}

impl fmt::Display for SvmUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotSupported => f.write_str("CPU lacks AMD SVM (CPUID 8000_0001h ECX[2] = 0)"),
            Self::NoFeatureLeaf => f.write_str("CPU reports SVM but has no CPUID leaf 8000_000Ah"),
            Self::DisabledByFirmware {
                unlockable_with_key,
            } => write!(
                f,
                "SVM disabled by firmware (VM_CR.SVMDIS and LOCK set{})",
                if *unlockable_with_key {
                    "; an SVM lock key could unlock it"
                } else {
                    ""
                }
            ),
            Self::NoNestedPaging => {
                f.write_str("SVM without nested paging (CPUID 8000_000Ah EDX[0] = 0)")
            }
        }
    }
}

/// The CPUID values detection needs: max extended leaf (8000_0000h EAX), 8000_0001h ECX,
/// and EAX/EBX/EDX of 8000_000Ah (ignored when the max leaf is lower).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SvmCpuid {
    /// CPUID 8000_0000h EAX.
    pub max_extended_leaf: u32,
    /// CPUID 8000_0001h ECX.
    pub ext1_ecx: u32,
    /// CPUID 8000_000Ah EAX.
    pub leaf_a_eax: u32,
    /// CPUID 8000_000Ah EBX.
    pub leaf_a_ebx: u32,
    /// CPUID 8000_000Ah EDX.
    pub leaf_a_edx: u32,
}

/// Detects usable SVM with nested paging. `vm_cr` is read only after CPUID says SVM exists
/// (the MSR #GPs otherwise), hence the closure. Returns the features and the VM_CR action.
pub fn detect(
    cpuid: SvmCpuid,
    read_vm_cr: impl FnOnce() -> u64,
) -> Result<(SvmFeatures, VmCrAction), SvmUnavailable> {
    if cpuid.max_extended_leaf < 0x8000_0001 || cpuid.ext1_ecx & CPUID_EXT1_ECX_SVM == 0 {
        return Err(SvmUnavailable::NotSupported);
    }
    if cpuid.max_extended_leaf < CPUID_SVM_LEAF {
        return Err(SvmUnavailable::NoFeatureLeaf);
    }
    let features = SvmFeatures::from_cpuid(cpuid.leaf_a_eax, cpuid.leaf_a_ebx, cpuid.leaf_a_edx);
    let action = decide_vm_cr(read_vm_cr());
    if action == VmCrAction::DisabledByFirmware {
        return Err(SvmUnavailable::DisabledByFirmware {
            unlockable_with_key: features.svm_lock(),
        });
    }
    if !features.nested_paging() {
        return Err(SvmUnavailable::NoNestedPaging);
    }
    Ok((features, action))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    fn qemu_like() -> SvmCpuid {
        SvmCpuid {
            max_extended_leaf: 0x8000_0021,
            ext1_ecx: CPUID_EXT1_ECX_SVM,
            leaf_a_eax: 1,
            leaf_a_ebx: 16,
            leaf_a_edx: edx::NP | edx::NRIPS,
        }
    }

    #[test]
    fn features_decode_edx_bits() {
        let f = SvmFeatures::from_cpuid(1, 0x8000, 0xC9);
        assert!(f.nested_paging() && f.nrip_save() && f.flush_by_asid() && f.decode_assists());
        assert!(!f.lbr_virt() && !f.svm_lock() && !f.vmcb_clean() && !f.avic());
        assert_eq!(f.number_of_asids, 0x8000);
        let line = f.to_string();
        assert!(line.starts_with("svm caps rev=1 asids=32768 np=yes nrips=yes flush-by-asid=yes"));
        assert!(line.contains("avic=no"));
    }

    #[test]
    fn vm_cr_decisions() {
        assert_eq!(decide_vm_cr(0), VmCrAction::Enabled);
        assert_eq!(decide_vm_cr(VM_CR_LOCK), VmCrAction::Enabled);
        assert_eq!(decide_vm_cr(VM_CR_SVMDIS | 1), VmCrAction::ClearSvmdis(1));
        assert_eq!(
            decide_vm_cr(VM_CR_SVMDIS | VM_CR_LOCK),
            VmCrAction::DisabledByFirmware
        );
    }

    #[test]
    fn detect_reports_each_reason() {
        let (f, action) = detect(qemu_like(), || 0).unwrap();
        assert!(f.nested_paging());
        assert_eq!(action, VmCrAction::Enabled);

        let mut no_svm = qemu_like();
        no_svm.ext1_ecx = 0;
        assert_eq!(
            detect(no_svm, || unreachable!()),
            Err(SvmUnavailable::NotSupported)
        );
        let mut no_leaf = qemu_like();
        no_leaf.max_extended_leaf = 0x8000_0008;
        assert_eq!(
            detect(no_leaf, || unreachable!()),
            Err(SvmUnavailable::NoFeatureLeaf)
        );
        let err = detect(qemu_like(), || VM_CR_SVMDIS | VM_CR_LOCK).unwrap_err();
        assert_eq!(
            err.to_string(),
            "SVM disabled by firmware (VM_CR.SVMDIS and LOCK set)"
        );
        let mut no_np = qemu_like();
        no_np.leaf_a_edx = edx::NRIPS;
        assert_eq!(detect(no_np, || 0), Err(SvmUnavailable::NoNestedPaging));
    }
}
