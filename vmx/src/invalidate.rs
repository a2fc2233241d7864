//! Choosing and issuing INVEPT/INVVPID according to IA32_VMX_EPT_VPID_CAP.

use crate::capabilities::EptVpidCap;
use crate::hw::{InveptKind, InvvpidKind, VmxHardware, VmxInstructionError};
use core::fmt;

/// Why cached translations could not be invalidated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidateError {
    /// The CPU supports no usable INVEPT type.
    InveptUnsupported,
    /// The CPU supports no usable INVVPID type.
    InvvpidUnsupported,
    /// The instruction failed.
    Instruction(VmxInstructionError),
}

impl fmt::Display for InvalidateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InveptUnsupported => write!(f, "INVEPT (single or all context) is not supported"),
            Self::InvvpidUnsupported => {
                write!(f, "INVVPID (single or all context) is not supported")
            }
            Self::Instruction(e) => write!(f, "invalidation failed: {e}"),
        }
    }
}

/// Invalidates EPT-derived mappings for `eptp`: single-context when supported, else all-context.
pub fn flush_ept<H: VmxHardware + ?Sized>(
    hw: &mut H,
    caps: &EptVpidCap,
    eptp: u64,
) -> Result<InveptKind, InvalidateError> {
    let kind = if !caps.invept {
        return Err(InvalidateError::InveptUnsupported);
    } else if caps.invept_single_context {
        InveptKind::SingleContext
    } else if caps.invept_all_context {
        InveptKind::AllContext
    } else {
        return Err(InvalidateError::InveptUnsupported);
    };
    hw.invept(kind, eptp)
        .map_err(InvalidateError::Instruction)?;
    Ok(kind)
}

/// Invalidates linear mappings tagged with `vpid`: single-context when supported, else all-context.
pub fn flush_vpid<H: VmxHardware + ?Sized>(
    hw: &mut H,
    caps: &EptVpidCap,
    vpid: u16,
) -> Result<InvvpidKind, InvalidateError> {
    let kind = if !caps.invvpid {
        return Err(InvalidateError::InvvpidUnsupported);
    } else if caps.invvpid_single_context && vpid != 0 {
        InvvpidKind::SingleContext
    } else if caps.invvpid_all_context {
        InvvpidKind::AllContext
    } else {
        return Err(InvalidateError::InvvpidUnsupported);
    };
    hw.invvpid(kind, vpid, 0)
        .map_err(InvalidateError::Instruction)?;
    Ok(kind)
}

/// VMX-preemption timer value for a budget of `tsc_ticks`: the timer counts down once every
/// 2^`rate` TSC ticks (IA32_VMX_MISC bits 4:0). Rounds up, saturates at `u32::MAX`.
pub fn preemption_timer_value(tsc_ticks: u64, rate: u8) -> u32 {
    let shift = u32::from(rate.min(63));
    let ticks = tsc_ticks.div_ceil(1u64 << shift);
    u32::try_from(ticks).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hw::{HwCall, SoftVmcs};

    fn cpu() -> SoftVmcs {
        let mut hw = SoftVmcs::new();
        hw.vmxon(0x1000).unwrap();
        hw.vmptrld(0x2000).unwrap();
        hw
    }

    #[test]
    fn single_context_preferred_then_all_context() {
        let mut hw = cpu();
        let full = EptVpidCap::from_msr(
            (1 << 20) | (1 << 25) | (1 << 26) | (1 << 32) | (1 << 41) | (1 << 42),
        );
        assert_eq!(
            flush_ept(&mut hw, &full, 0x301E),
            Ok(InveptKind::SingleContext)
        );
        assert_eq!(
            flush_vpid(&mut hw, &full, 1),
            Ok(InvvpidKind::SingleContext)
        );
        let all_only = EptVpidCap::from_msr((1 << 20) | (1 << 26) | (1 << 32) | (1 << 42));
        assert_eq!(
            flush_ept(&mut hw, &all_only, 0x301E),
            Ok(InveptKind::AllContext)
        );
        assert_eq!(
            flush_vpid(&mut hw, &all_only, 1),
            Ok(InvvpidKind::AllContext)
        );
        assert_eq!(
            hw.calls[hw.calls.len() - 4..],
            [
                HwCall::Invept(InveptKind::SingleContext, 0x301E),
                HwCall::Invvpid(InvvpidKind::SingleContext, 1, 0),
                HwCall::Invept(InveptKind::AllContext, 0x301E),
                HwCall::Invvpid(InvvpidKind::AllContext, 1, 0),
            ]
        );
    }

    #[test]
    fn unsupported_and_failed_invalidation() {
        let mut hw = cpu();
        let none = EptVpidCap::from_msr(0);
        assert_eq!(
            flush_ept(&mut hw, &none, 0),
            Err(InvalidateError::InveptUnsupported)
        );
        assert_eq!(
            flush_vpid(&mut hw, &none, 1),
            Err(InvalidateError::InvvpidUnsupported)
        );
        let single = EptVpidCap::from_msr((1 << 20) | (1 << 25));
        // The software VMCS rejects an EPTP without WB memory type (error 28).
        assert_eq!(
            flush_ept(&mut hw, &single, 0x3000),
            Err(InvalidateError::Instruction(
                VmxInstructionError::FailValid(28)
            ))
        );
    }

    #[test]
    fn preemption_timer_rounds_up_and_saturates() {
        assert_eq!(preemption_timer_value(1000, 5), 32);
        assert_eq!(preemption_timer_value(1024, 5), 32);
        assert_eq!(preemption_timer_value(1025, 5), 33);
        assert_eq!(preemption_timer_value(u64::MAX, 0), u32::MAX);
        assert_eq!(preemption_timer_value(0, 7), 0);
    }
}
