//! Entering and leaving VMX operation, and reading the VMX capability MSRs, over `vmx::hw::VmxHardware`
//! (real instructions on bare metal, a software model in host tests). The bit math lives in the vmx crate.

use core::fmt;
use vmx::capabilities::{AllowedControls, EptVpidCap, VmxBasic};
use vmx::feature_control::{decide, FeatureControlAction};
use vmx::fixed_bits::apply_fixed;
use vmx::hw::{ControlRegister, VmxHardware, VmxInstructionError};
use vmx::msr;

/// CR4.VMXE: VMX enable.
pub const CR4_VMXE: u64 = 1 << 13;
/// Primary processor-based control bit 31: activate secondary controls.
const ACTIVATE_SECONDARY_CONTROLS: u32 = 1 << 31;
/// Secondary control bit 1: enable EPT; bit 5: enable VPID.
const ENABLE_EPT: u32 = 1 << 1;
const ENABLE_VPID: u32 = 1 << 5;

/// Why VMX operation could not be entered or left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BringUpError {
    /// IA32_FEATURE_CONTROL is locked with VMXON outside SMX disabled (VT-x turned off in firmware).
    DisabledByFirmware {
        feature_control: u64,
    },
    /// IA32_VMX_BASIC asks for a VMXON region larger than the 4 KiB page given.
    RegionTooLarge {
        region_size: u32,
    },
    Vmxon(VmxInstructionError),
    Vmxoff(VmxInstructionError),
}

impl fmt::Display for BringUpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DisabledByFirmware { feature_control } => write!(
                f,
                "VT-x is disabled by firmware: IA32_FEATURE_CONTROL={feature_control:#x} is locked without \
                 VMXON outside SMX (enable VT-x in the firmware setup)"
            ),
            Self::RegionTooLarge { region_size } => {
                write!(f, "IA32_VMX_BASIC asks for a {region_size}-byte VMXON region, more than 4096")
            }
            Self::Vmxon(err) => write!(f, "VMXON failed: {err}"),
            Self::Vmxoff(err) => write!(f, "VMXOFF failed: {err}"),
        }
    }
}

/// Register values seen and written on the way into VMX operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmxEntryReport {
    pub feature_control_before: u64,
    /// The value written to IA32_FEATURE_CONTROL, if it was unlocked.
    pub feature_control_written: Option<u64>,
    pub cr0: u64,
    pub cr4: u64,
}

/// Enables VMXON in IA32_FEATURE_CONTROL if needed, applies the CR0/CR4 fixed bits (with CR4.VMXE)
/// and executes VMXON on `region_phys`, which must already hold the revision id (`vmxon_region_header`).
pub fn enter_vmx_operation<H: VmxHardware>(
    hw: &mut H,
    region_phys: u64,
) -> Result<VmxEntryReport, BringUpError> {
    let feature_control_before = hw.rdmsr(msr::IA32_FEATURE_CONTROL);
    let feature_control_written = match decide(feature_control_before) {
        FeatureControlAction::AlreadyEnabled => None,
        FeatureControlAction::WriteAndLock(value) => {
            hw.wrmsr(msr::IA32_FEATURE_CONTROL, value);
            Some(value)
        }
        FeatureControlAction::LockedDisabled => {
            return Err(BringUpError::DisabledByFirmware {
                feature_control: feature_control_before,
            });
        }
    };
    let cr0_fixed = (
        hw.rdmsr(msr::IA32_VMX_CR0_FIXED0),
        hw.rdmsr(msr::IA32_VMX_CR0_FIXED1),
    );
    let cr0 = apply_fixed(hw.read_cr(ControlRegister::Cr0), cr0_fixed.0, cr0_fixed.1);
    hw.write_cr(ControlRegister::Cr0, cr0);
    let cr4_fixed = (
        hw.rdmsr(msr::IA32_VMX_CR4_FIXED0),
        hw.rdmsr(msr::IA32_VMX_CR4_FIXED1),
    );
    let cr4 = apply_fixed(
        hw.read_cr(ControlRegister::Cr4) | CR4_VMXE,
        cr4_fixed.0,
        cr4_fixed.1,
    );
    hw.write_cr(ControlRegister::Cr4, cr4);
    hw.vmxon(region_phys).map_err(BringUpError::Vmxon)?;
    Ok(VmxEntryReport {
        feature_control_before,
        feature_control_written,
        cr0,
        cr4,
    })
}

/// The first dword of a VMXON region (or VMCS): the revision id with bit 31 clear; errors if the CPU wants a
/// region larger than one 4 KiB page.
pub fn vmxon_region_header(basic: &VmxBasic) -> Result<u32, BringUpError> {
    if basic.region_size > 4096 {
        return Err(BringUpError::RegionTooLarge {
            region_size: basic.region_size,
        });
    }
    Ok(basic.revision_id & 0x7FFF_FFFF)
}

/// Executes VMXOFF and clears CR4.VMXE.
pub fn leave_vmx_operation<H: VmxHardware>(hw: &mut H) -> Result<(), BringUpError> {
    hw.vmxoff().map_err(BringUpError::Vmxoff)?;
    let cr4 = hw.read_cr(ControlRegister::Cr4);
    hw.write_cr(ControlRegister::Cr4, cr4 & !CR4_VMXE);
    Ok(())
}

/// The VMX capability MSRs, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmxCapabilities {
    pub basic: VmxBasic,
    /// Pin-based, primary processor-based, exit and entry controls (TRUE_* MSRs when basic bit 55 is set).
    pub pin_based: AllowedControls,
    pub proc_based: AllowedControls,
    pub exit: AllowedControls,
    pub entry: AllowedControls,
    /// Secondary controls, when the primary controls can activate them.
    pub secondary: Option<AllowedControls>,
    /// EPT/VPID capabilities, when EPT or VPID can be enabled.
    pub ept_vpid: Option<EptVpidCap>,
}

/// Reads the capability MSRs in the order the SDM (Appendix A) makes them valid.
pub fn read_capabilities<H: VmxHardware>(hw: &mut H) -> VmxCapabilities {
    let basic = VmxBasic::from_msr(hw.rdmsr(msr::IA32_VMX_BASIC));
    let [pin, proc, exit, entry] = if basic.true_controls {
        [
            msr::IA32_VMX_TRUE_PINBASED_CTLS,
            msr::IA32_VMX_TRUE_PROCBASED_CTLS,
            msr::IA32_VMX_TRUE_EXIT_CTLS,
            msr::IA32_VMX_TRUE_ENTRY_CTLS,
        ]
    } else {
        [
            msr::IA32_VMX_PINBASED_CTLS,
            msr::IA32_VMX_PROCBASED_CTLS,
            msr::IA32_VMX_EXIT_CTLS,
            msr::IA32_VMX_ENTRY_CTLS,
        ]
    };
    let mut read = |number| AllowedControls::from_msr(hw.rdmsr(number));
    let (pin_based, proc_based, exit, entry) = (read(pin), read(proc), read(exit), read(entry));
    let secondary = proc_based
        .can_set(ACTIVATE_SECONDARY_CONTROLS)
        .then(|| AllowedControls::from_msr(hw.rdmsr(msr::IA32_VMX_PROCBASED_CTLS2)));
    let ept_vpid = secondary
        .filter(|s| s.allowed1 & (ENABLE_EPT | ENABLE_VPID) != 0)
        .map(|_| EptVpidCap::from_msr(hw.rdmsr(msr::IA32_VMX_EPT_VPID_CAP)));
    VmxCapabilities {
        basic,
        pin_based,
        proc_based,
        exit,
        entry,
        secondary,
        ept_vpid,
    }
}

impl VmxCapabilities {
    /// Writes the capability report, one `vmx ...` line per call of `line`.
    pub fn report(&self, mut line: impl FnMut(fmt::Arguments<'_>)) {
        let kind = if self.basic.true_controls {
            "true"
        } else {
            "default"
        };
        line(format_args!("{} (raw {:#x})", self.basic, self.basic.raw));
        line(format_args!(
            "vmx pin-based controls ({kind}): {}",
            self.pin_based
        ));
        line(format_args!(
            "vmx proc-based controls ({kind}): {}",
            self.proc_based
        ));
        line(format_args!("vmx exit controls ({kind}): {}", self.exit));
        line(format_args!("vmx entry controls ({kind}): {}", self.entry));
        match &self.secondary {
            Some(secondary) => line(format_args!("vmx secondary controls: {secondary}")),
            None => line(format_args!("vmx secondary controls: not available")),
        }
        match &self.ept_vpid {
            Some(caps) => line(format_args!("{caps} (raw {:#x})", caps.raw)),
            None => line(format_args!("vmx ept/vpid caps: not available")),
        }
    }
}

#[cfg(test)]
#[path = "vmx_bringup_tests.rs"]
mod tests;
