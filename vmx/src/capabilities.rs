//! Decoded VMX capability MSRs (SDM Vol. 3, Appendix A).

use core::fmt;

/// Memory type number for uncacheable (UC).
pub const MEMORY_TYPE_UC: u8 = 0;
/// Memory type number for write-back (WB).
pub const MEMORY_TYPE_WB: u8 = 6;

fn memory_type_name(ty: u8) -> &'static str {
    match ty {
        MEMORY_TYPE_UC => "UC",
        MEMORY_TYPE_WB => "WB",
        _ => "reserved",
    }
}

fn yes_no(flag: bool) -> &'static str {
    if flag {
        "yes"
    } else {
        "no"
    }
}

/// IA32_VMX_BASIC (0x480).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmxBasic {
    /// The raw MSR value.
    pub raw: u64,
    /// VMCS revision identifier (bits 30:0), written to the first dword of VMXON/VMCS regions.
    pub revision_id: u32,
    /// Bytes to allocate for the VMXON region and each VMCS (bits 44:32, at most 4096).
    pub region_size: u32,
    /// Region addresses limited to 32 bits (bit 48).
    pub physical_address_32bit: bool,
    /// Dual-monitor treatment of SMIs and SMM supported (bit 49).
    pub dual_monitor_smm: bool,
    /// Memory type the CPU uses to access the VMCS (bits 53:50, 6 = WB).
    pub memory_type: u8,
    /// VM exits for INS/OUTS report instruction information (bit 54).
    pub ins_outs_info: bool,
    /// The IA32_VMX_TRUE_*_CTLS MSRs exist and should be used (bit 55).
    pub true_controls: bool,
    /// VM entry may inject hardware exceptions with or without an error code (bit 56).
    pub exception_error_code_relaxed: bool,
}

impl VmxBasic {
    /// Decodes the raw MSR value.
    pub fn from_msr(raw: u64) -> Self {
        Self {
            raw,
            revision_id: (raw & 0x7FFF_FFFF) as u32,
            region_size: ((raw >> 32) & 0x1FFF) as u32,
            physical_address_32bit: raw & (1 << 48) != 0,
            dual_monitor_smm: raw & (1 << 49) != 0,
            memory_type: ((raw >> 50) & 0xF) as u8,
            ins_outs_info: raw & (1 << 54) != 0,
            true_controls: raw & (1 << 55) != 0,
            exception_error_code_relaxed: raw & (1 << 56) != 0,
        }
    }
}

impl fmt::Display for VmxBasic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "vmx basic revision={:#x} region_size={} memory_type={} true_controls={} ins_outs_info={} addr32={}",
            self.revision_id,
            self.region_size,
            memory_type_name(self.memory_type),
            yes_no(self.true_controls),
            yes_no(self.ins_outs_info),
            yes_no(self.physical_address_32bit),
        )
    }
}

/// A VMX control capability MSR: allowed 0-settings (low 32 bits) and allowed 1-settings (high 32 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllowedControls {
    /// A bit set here must be 1 in the control (allowed 0-settings, bits 31:0).
    pub allowed0: u32,
    /// A bit clear here must be 0 in the control (allowed 1-settings, bits 63:32).
    pub allowed1: u32,
}

impl AllowedControls {
    /// Decodes the raw MSR value.
    pub fn from_msr(raw: u64) -> Self {
        Self {
            allowed0: raw as u32,
            allowed1: (raw >> 32) as u32,
        }
    }

    /// Bits that must be 1.
    pub fn required_ones(&self) -> u32 {
        self.allowed0
    }

    /// True when `bits` may all be set to 1.
    pub fn can_set(&self, bits: u32) -> bool {
        bits & !self.allowed1 == 0
    }
}

impl fmt::Display for AllowedControls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "must_be_one={:#010x} may_be_one={:#010x}",
            self.allowed0, self.allowed1
        )
    }
}

/// IA32_VMX_EPT_VPID_CAP (0x48C).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EptVpidCap {
    /// The raw MSR value.
    pub raw: u64,
    /// Execute-only EPT translations (bit 0).
    pub execute_only: bool,
    /// Page-walk length of 4 (bit 6).
    pub page_walk_4: bool,
    /// Page-walk length of 5 (bit 7).
    pub page_walk_5: bool,
    /// EPT paging structures may be UC (bit 8).
    pub memory_type_uc: bool,
    /// EPT paging structures may be WB (bit 14).
    pub memory_type_wb: bool,
    /// 2-MiB pages via EPT PDEs (bit 16).
    pub pages_2m: bool,
    /// 1-GiB pages via EPT PDPTEs (bit 17).
    pub pages_1g: bool,
    /// INVEPT supported (bit 20).
    pub invept: bool,
    /// Accessed and dirty flags for EPT (bit 21).
    pub accessed_dirty: bool,
    /// Advanced VM-exit information for EPT violations (bit 22).
    pub advanced_exit_info: bool,
    /// Single-context INVEPT (bit 25).
    pub invept_single_context: bool,
    /// All-context INVEPT (bit 26).
    pub invept_all_context: bool,
    /// INVVPID supported (bit 32).
    pub invvpid: bool,
    /// Individual-address INVVPID (bit 40).
    pub invvpid_individual_address: bool,
    /// Single-context INVVPID (bit 41).
    pub invvpid_single_context: bool,
    /// All-context INVVPID (bit 42).
    pub invvpid_all_context: bool,
    /// Single-context-retaining-globals INVVPID (bit 43).
    pub invvpid_single_context_retaining_globals: bool,
}

impl EptVpidCap {
    /// Decodes the raw MSR value.
    pub fn from_msr(raw: u64) -> Self {
        let bit = |n: u32| raw & (1u64 << n) != 0;
        Self {
            raw,
            execute_only: bit(0),
            page_walk_4: bit(6),
            page_walk_5: bit(7),
            memory_type_uc: bit(8),
            memory_type_wb: bit(14),
            pages_2m: bit(16),
            pages_1g: bit(17),
            invept: bit(20),
            accessed_dirty: bit(21),
            advanced_exit_info: bit(22),
            invept_single_context: bit(25),
            invept_all_context: bit(26),
            invvpid: bit(32),
            invvpid_individual_address: bit(40),
            invvpid_single_context: bit(41),
            invvpid_all_context: bit(42),
            invvpid_single_context_retaining_globals: bit(43),
        }
    }
}

impl fmt::Display for EptVpidCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "vmx ept/vpid caps walk4={} wb={} uc={} 2m={} 1g={} exec_only={} ad={} invept={} (single={} all={}) invvpid={} (addr={} single={} all={})",
            yes_no(self.page_walk_4),
            yes_no(self.memory_type_wb),
            yes_no(self.memory_type_uc),
            yes_no(self.pages_2m),
            yes_no(self.pages_1g),
            yes_no(self.execute_only),
            yes_no(self.accessed_dirty),
            yes_no(self.invept),
            yes_no(self.invept_single_context),
            yes_no(self.invept_all_context),
            yes_no(self.invvpid),
            yes_no(self.invvpid_individual_address),
            yes_no(self.invvpid_single_context),
            yes_no(self.invvpid_all_context),
        )
    }
}

/// IA32_VMX_MISC (0x485), the parts a hypervisor setup needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmxMisc {
    /// The raw MSR value.
    pub raw: u64,
    /// The preemption timer counts down once every 2^rate TSC ticks (bits 4:0).
    pub preemption_timer_rate: u8,
    /// VM exits store EFER.LMA into the "IA-32e mode guest" entry control (bit 5).
    pub stores_lma: bool,
    /// Number of CR3-target values (bits 24:16).
    pub cr3_targets: u16,
}

impl VmxMisc {
    /// Decodes the raw MSR value.
    pub fn from_msr(raw: u64) -> Self {
        Self {
            raw,
            preemption_timer_rate: (raw & 0x1F) as u8,
            stores_lma: raw & (1 << 5) != 0,
            cr3_targets: ((raw >> 16) & 0x1FF) as u16,
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    // IA32_VMX_BASIC of a Skylake client CPU.
    const SKYLAKE_BASIC: u64 = 0x00DA_0400_0000_0004;
    // IA32_VMX_EPT_VPID_CAP of the same CPU.
    const SKYLAKE_EPT_VPID: u64 = 0x0000_0F01_0673_4141;

    #[test]
    fn vmx_basic_decodes_fields() {
        let b = VmxBasic::from_msr(SKYLAKE_BASIC);
        assert_eq!(b.revision_id, 4);
        assert_eq!(b.region_size, 1024);
        assert_eq!(b.memory_type, MEMORY_TYPE_WB);
        assert!(b.true_controls);
        assert!(b.ins_outs_info);
        assert!(!b.physical_address_32bit);
        let text = b.to_string();
        assert!(text.starts_with("vmx basic revision=0x4 region_size=1024 memory_type=WB"));
        assert!(text.contains("true_controls=yes"));
    }

    #[test]
    fn vmx_basic_without_true_controls() {
        let b = VmxBasic::from_msr(0x0018_1000_0000_0001);
        assert_eq!(b.revision_id, 1);
        assert_eq!(b.region_size, 4096);
        assert_eq!(b.memory_type, MEMORY_TYPE_WB);
        assert!(!b.true_controls);
        assert!(!b.ins_outs_info);
    }

    #[test]
    fn allowed_controls_split_low_and_high() {
        let c = AllowedControls::from_msr(0x0000_007F_0000_0016);
        assert_eq!(c.allowed0, 0x16);
        assert_eq!(c.allowed1, 0x7F);
        assert!(c.can_set(0x41));
        assert!(!c.can_set(0x80));
        assert_eq!(
            c.to_string(),
            "must_be_one=0x00000016 may_be_one=0x0000007f"
        );
    }

    #[test]
    fn ept_vpid_cap_decodes_fields() {
        let e = EptVpidCap::from_msr(SKYLAKE_EPT_VPID);
        assert!(e.execute_only && e.page_walk_4 && e.memory_type_wb && e.memory_type_uc);
        assert!(e.pages_2m && e.pages_1g && e.invept && e.accessed_dirty);
        assert!(e.invept_single_context && e.invept_all_context);
        assert!(e.invvpid && e.invvpid_single_context && e.invvpid_all_context);
        assert!(!e.page_walk_5);
        let text = e.to_string();
        assert!(text.starts_with("vmx ept/vpid caps walk4=yes wb=yes"));
        assert!(EptVpidCap::from_msr(0).to_string().contains("invept=no"));
    }

    #[test]
    fn vmx_misc_decodes_timer_rate() {
        let m = VmxMisc::from_msr(0x7004_C1E7);
        assert_eq!(m.preemption_timer_rate, 7);
        assert!(m.stores_lma);
        assert_eq!(m.cr3_targets, 4);
    }
}
