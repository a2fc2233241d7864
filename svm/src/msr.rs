//! MSRs and register bits SVM uses (APM Vol. 2, 15.4, 15.30).

/// EFER.
pub const EFER: u32 = 0xC000_0080;
/// VM_CR: SVM lock and disable bits.
pub const VM_CR: u32 = 0xC001_0114;
/// VM_HSAVE_PA: physical address of the 4-KiB host save area VMRUN uses.
pub const VM_HSAVE_PA: u32 = 0xC001_0117;
/// TSC_RATIO (present when CPUID 8000_000Ah EDX\[4\]).
pub const TSC_RATIO: u32 = 0xC000_0104;

/// EFER.SCE (syscall enable).
pub const EFER_SCE: u64 = 1 << 0;
/// EFER.LME (long mode enable).
pub const EFER_LME: u64 = 1 << 8;
/// EFER.LMA (long mode active).
pub const EFER_LMA: u64 = 1 << 10;
/// EFER.NXE (no-execute enable).
pub const EFER_NXE: u64 = 1 << 11;
/// EFER.SVME (secure virtual machine enable): VMRUN and friends #UD while clear.
pub const EFER_SVME: u64 = 1 << 12;

/// VM_CR.LOCK (bit 3): SVMDIS is read-only.
pub const VM_CR_LOCK: u64 = 1 << 3;
/// VM_CR.SVMDIS (bit 4): setting EFER.SVME faults.
pub const VM_CR_SVMDIS: u64 = 1 << 4;

/// CR0.PE.
pub const CR0_PE: u64 = 1 << 0;
/// CR0.MP.
pub const CR0_MP: u64 = 1 << 1;
/// CR0.ET.
pub const CR0_ET: u64 = 1 << 4;
/// CR0.NE.
pub const CR0_NE: u64 = 1 << 5;
/// CR0.WP.
pub const CR0_WP: u64 = 1 << 16;
/// CR0.NW.
pub const CR0_NW: u64 = 1 << 29;
/// CR0.CD.
pub const CR0_CD: u64 = 1 << 30;
/// CR0.PG.
pub const CR0_PG: u64 = 1 << 31;
/// CR4.PAE.
pub const CR4_PAE: u64 = 1 << 5;
/// CR4.OSFXSR.
pub const CR4_OSFXSR: u64 = 1 << 9;
/// CR4.OSXMMEXCPT.
pub const CR4_OSXMMEXCPT: u64 = 1 << 10;
