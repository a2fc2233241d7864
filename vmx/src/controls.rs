//! VM-execution, VM-exit and VM-entry controls checked against the capability MSRs
//! (SDM Vol. 3, 25.6-25.8 and Appendix A.3-A.5).

use crate::capabilities::{AllowedControls, VmxBasic};
use crate::hw::VmxHardware;
use crate::msr;
use core::fmt;

/// Pin-based VM-execution control bits.
pub mod pin {
    /// External-interrupt exiting.
    pub const EXTERNAL_INTERRUPT_EXITING: u32 = 1 << 0;
    /// NMI exiting.
    pub const NMI_EXITING: u32 = 1 << 3;
    /// Virtual NMIs.
    pub const VIRTUAL_NMIS: u32 = 1 << 5;
    /// Activate VMX-preemption timer.
    pub const PREEMPTION_TIMER: u32 = 1 << 6;
    /// Process posted interrupts.
    pub const POSTED_INTERRUPTS: u32 = 1 << 7;
}

/// Primary processor-based VM-execution control bits.
pub mod primary {
    /// Interrupt-window exiting.
    pub const INTERRUPT_WINDOW_EXITING: u32 = 1 << 2;
    /// Use TSC offsetting.
    pub const USE_TSC_OFFSETTING: u32 = 1 << 3;
    /// HLT exiting.
    pub const HLT_EXITING: u32 = 1 << 7;
    /// INVLPG exiting.
    pub const INVLPG_EXITING: u32 = 1 << 9;
    /// MWAIT exiting.
    pub const MWAIT_EXITING: u32 = 1 << 10;
    /// RDPMC exiting.
    pub const RDPMC_EXITING: u32 = 1 << 11;
    /// RDTSC exiting.
    pub const RDTSC_EXITING: u32 = 1 << 12;
    /// CR3-load exiting.
    pub const CR3_LOAD_EXITING: u32 = 1 << 15;
    /// CR3-store exiting.
    pub const CR3_STORE_EXITING: u32 = 1 << 16;
    /// Activate tertiary controls.
    pub const ACTIVATE_TERTIARY_CONTROLS: u32 = 1 << 17;
    /// CR8-load exiting.
    pub const CR8_LOAD_EXITING: u32 = 1 << 19;
    /// CR8-store exiting.
    pub const CR8_STORE_EXITING: u32 = 1 << 20;
    /// Use TPR shadow.
    pub const USE_TPR_SHADOW: u32 = 1 << 21;
    /// NMI-window exiting.
    pub const NMI_WINDOW_EXITING: u32 = 1 << 22;
    /// MOV-DR exiting.
    pub const MOV_DR_EXITING: u32 = 1 << 23;
    /// Unconditional I/O exiting.
    pub const UNCONDITIONAL_IO_EXITING: u32 = 1 << 24;
    /// Use I/O bitmaps.
    pub const USE_IO_BITMAPS: u32 = 1 << 25;
    /// Monitor trap flag.
    pub const MONITOR_TRAP_FLAG: u32 = 1 << 27;
    /// Use MSR bitmaps.
    pub const USE_MSR_BITMAPS: u32 = 1 << 28;
    /// MONITOR exiting.
    pub const MONITOR_EXITING: u32 = 1 << 29;
    /// PAUSE exiting.
    pub const PAUSE_EXITING: u32 = 1 << 30;
    /// Activate secondary controls.
    pub const ACTIVATE_SECONDARY_CONTROLS: u32 = 1 << 31;
}

/// Secondary processor-based VM-execution control bits.
pub mod secondary {
    /// Virtualize APIC accesses.
    pub const VIRTUALIZE_APIC_ACCESSES: u32 = 1 << 0;
    /// Enable EPT.
    pub const ENABLE_EPT: u32 = 1 << 1;
    /// Descriptor-table exiting.
    pub const DESCRIPTOR_TABLE_EXITING: u32 = 1 << 2;
    /// Enable RDTSCP.
    pub const ENABLE_RDTSCP: u32 = 1 << 3;
    /// Virtualize x2APIC mode.
    pub const VIRTUALIZE_X2APIC: u32 = 1 << 4;
    /// Enable VPID.
    pub const ENABLE_VPID: u32 = 1 << 5;
    /// WBINVD exiting.
    pub const WBINVD_EXITING: u32 = 1 << 6;
    /// Unrestricted guest.
    pub const UNRESTRICTED_GUEST: u32 = 1 << 7;
    /// RDRAND exiting.
    pub const RDRAND_EXITING: u32 = 1 << 11;
    /// Enable INVPCID.
    pub const ENABLE_INVPCID: u32 = 1 << 12;
    /// Enable VM functions.
    pub const ENABLE_VMFUNC: u32 = 1 << 13;
    /// RDSEED exiting.
    pub const RDSEED_EXITING: u32 = 1 << 16;
    /// Enable PML.
    pub const ENABLE_PML: u32 = 1 << 17;
    /// Enable XSAVES/XRSTORS.
    pub const ENABLE_XSAVES: u32 = 1 << 20;
    /// Mode-based execute control for EPT.
    pub const MODE_BASED_EXECUTE: u32 = 1 << 22;
    /// Use TSC scaling.
    pub const USE_TSC_SCALING: u32 = 1 << 25;
    /// Enable user wait and pause.
    pub const ENABLE_USER_WAIT_PAUSE: u32 = 1 << 26;
}

/// VM-exit control bits.
pub mod exit {
    /// Save debug controls.
    pub const SAVE_DEBUG_CONTROLS: u32 = 1 << 2;
    /// Host address-space size (64-bit host).
    pub const HOST_ADDRESS_SPACE_SIZE: u32 = 1 << 9;
    /// Load IA32_PERF_GLOBAL_CTRL.
    pub const LOAD_PERF_GLOBAL_CTRL: u32 = 1 << 12;
    /// Acknowledge interrupt on exit.
    pub const ACK_INTERRUPT_ON_EXIT: u32 = 1 << 15;
    /// Save IA32_PAT.
    pub const SAVE_PAT: u32 = 1 << 18;
    /// Load IA32_PAT.
    pub const LOAD_PAT: u32 = 1 << 19;
    /// Save IA32_EFER.
    pub const SAVE_EFER: u32 = 1 << 20;
    /// Load IA32_EFER.
    pub const LOAD_EFER: u32 = 1 << 21;
    /// Save VMX-preemption timer value.
    pub const SAVE_PREEMPTION_TIMER: u32 = 1 << 22;
}

/// VM-entry control bits.
pub mod entry {
    /// Load debug controls.
    pub const LOAD_DEBUG_CONTROLS: u32 = 1 << 2;
    /// IA-32e mode guest.
    pub const IA32E_MODE_GUEST: u32 = 1 << 9;
    /// Entry to SMM.
    pub const ENTRY_TO_SMM: u32 = 1 << 10;
    /// Load IA32_PERF_GLOBAL_CTRL.
    pub const LOAD_PERF_GLOBAL_CTRL: u32 = 1 << 13;
    /// Load IA32_PAT.
    pub const LOAD_PAT: u32 = 1 << 14;
    /// Load IA32_EFER.
    pub const LOAD_EFER: u32 = 1 << 15;
}

/// The five 32-bit control fields and the MSRs that describe them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlKind {
    /// Pin-based VM-execution controls.
    PinBased,
    /// Primary processor-based VM-execution controls.
    PrimaryProcBased,
    /// Secondary processor-based VM-execution controls.
    SecondaryProcBased,
    /// VM-exit controls.
    Exit,
    /// VM-entry controls.
    Entry,
}

impl ControlKind {
    /// The capability MSR to read: the TRUE_* variant when VMX_BASIC bit 55 says it exists
    /// (the secondary controls have no TRUE variant).
    pub fn capability_msr(self, basic: &VmxBasic) -> u32 {
        let t = basic.true_controls;
        match self {
            Self::PinBased if t => msr::IA32_VMX_TRUE_PINBASED_CTLS,
            Self::PinBased => msr::IA32_VMX_PINBASED_CTLS,
            Self::PrimaryProcBased if t => msr::IA32_VMX_TRUE_PROCBASED_CTLS,
            Self::PrimaryProcBased => msr::IA32_VMX_PROCBASED_CTLS,
            Self::SecondaryProcBased => msr::IA32_VMX_PROCBASED_CTLS2,
            Self::Exit if t => msr::IA32_VMX_TRUE_EXIT_CTLS,
            Self::Exit => msr::IA32_VMX_EXIT_CTLS,
            Self::Entry if t => msr::IA32_VMX_TRUE_ENTRY_CTLS,
            Self::Entry => msr::IA32_VMX_ENTRY_CTLS,
        }
    }

    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::PinBased => "pin-based",
            Self::PrimaryProcBased => "primary processor-based",
            Self::SecondaryProcBased => "secondary processor-based",
            Self::Exit => "VM-exit",
            Self::Entry => "VM-entry",
        }
    }
}

/// Requested control bits the CPU does not allow to be 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlError {
    /// Which control field, when known.
    pub kind: Option<ControlKind>,
    /// The bits that were asked for.
    pub requested: u32,
    /// The requested bits that must be 0 on this CPU.
    pub unsupported: u32,
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.kind.map_or("VMX", ControlKind::name);
        write!(
            f,
            "{} controls: requested bits {:#010x} not supported by this CPU (requested {:#010x})",
            name, self.unsupported, self.requested
        )
    }
}

/// Adds the bits the CPU requires to be 1; fails, naming them, when a requested bit must be 0.
pub fn adjust(requested: u32, caps: AllowedControls) -> Result<u32, ControlError> {
    let unsupported = requested & !caps.allowed1;
    if unsupported != 0 {
        return Err(ControlError {
            kind: None,
            requested,
            unsupported,
        });
    }
    Ok(requested | caps.allowed0)
}

/// Reads the right capability MSR for `kind` and adjusts `requested` against it.
pub fn adjust_for<H: VmxHardware + ?Sized>(
    hw: &mut H,
    basic: &VmxBasic,
    kind: ControlKind,
    requested: u32,
) -> Result<u32, ControlError> {
    let caps = AllowedControls::from_msr(hw.rdmsr(kind.capability_msr(basic)));
    adjust(requested, caps).map_err(|e| ControlError {
        kind: Some(kind),
        ..e
    })
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::hw::{HwCall, SoftVmcs};
    use std::string::ToString;

    // Pin-based TRUE caps of a typical CPU: bits 1,2,4 required; 0,3,5,6 optional (no posted interrupts).
    const PIN_CAPS: AllowedControls = AllowedControls {
        allowed0: 0x16,
        allowed1: 0x7F,
    };

    #[test]
    fn required_bits_are_added() {
        assert_eq!(adjust(pin::NMI_EXITING, PIN_CAPS), Ok(0x1E));
        assert_eq!(adjust(0, PIN_CAPS), Ok(0x16));
    }

    #[test]
    fn unsupported_bits_are_reported_not_dropped() {
        let requested = pin::POSTED_INTERRUPTS | pin::PREEMPTION_TIMER;
        let err = adjust(requested, PIN_CAPS).unwrap_err();
        assert_eq!(err.unsupported, pin::POSTED_INTERRUPTS);
        assert_eq!(err.requested, requested);
        assert!(err.to_string().contains("0x00000080"));
    }

    #[test]
    fn true_msrs_chosen_when_basic_says_so() {
        let with_true = VmxBasic::from_msr(1 << 55);
        let without = VmxBasic::from_msr(0);
        assert_eq!(ControlKind::PinBased.capability_msr(&with_true), 0x48D);
        assert_eq!(ControlKind::PinBased.capability_msr(&without), 0x481);
        assert_eq!(
            ControlKind::PrimaryProcBased.capability_msr(&with_true),
            0x48E
        );
        assert_eq!(ControlKind::Exit.capability_msr(&with_true), 0x48F);
        assert_eq!(ControlKind::Entry.capability_msr(&with_true), 0x490);
        assert_eq!(ControlKind::Entry.capability_msr(&without), 0x484);
        assert_eq!(
            ControlKind::SecondaryProcBased.capability_msr(&with_true),
            0x48B
        );
    }

    #[test]
    fn adjust_for_reads_msr_and_names_the_field() {
        let basic = VmxBasic::from_msr(1 << 55);
        // Secondary: EPT and VPID allowed, unrestricted guest not.
        let caps = u64::from(secondary::ENABLE_EPT | secondary::ENABLE_VPID) << 32;
        let mut hw = SoftVmcs::new().with_msr(msr::IA32_VMX_PROCBASED_CTLS2, caps);
        let ok = adjust_for(
            &mut hw,
            &basic,
            ControlKind::SecondaryProcBased,
            secondary::ENABLE_EPT,
        );
        assert_eq!(ok, Ok(secondary::ENABLE_EPT));
        assert_eq!(hw.calls[0], HwCall::Rdmsr(msr::IA32_VMX_PROCBASED_CTLS2));
        let err = adjust_for(
            &mut hw,
            &basic,
            ControlKind::SecondaryProcBased,
            secondary::ENABLE_EPT | secondary::UNRESTRICTED_GUEST,
        )
        .unwrap_err();
        assert_eq!(err.kind, Some(ControlKind::SecondaryProcBased));
        assert_eq!(err.unsupported, secondary::UNRESTRICTED_GUEST);
        assert!(err
            .to_string()
            .starts_with("secondary processor-based controls"));
    }
}
