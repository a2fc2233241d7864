//! IA32_FEATURE_CONTROL (MSR 0x3A) handling before VMXON (SDM Vol. 3, 24.7).

/// Bit 0: the MSR is locked until reset; VMXON faults while it is clear.
pub const LOCK: u64 = 1 << 0;
/// Bit 1: VMXON allowed inside SMX operation.
pub const VMXON_INSIDE_SMX: u64 = 1 << 1;
/// Bit 2: VMXON allowed outside SMX operation.
pub const VMXON_OUTSIDE_SMX: u64 = 1 << 2;

/// What to do with IA32_FEATURE_CONTROL before executing VMXON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureControlAction {
    /// Locked with VMXON outside SMX enabled: nothing to write.
    AlreadyEnabled,
    /// Unlocked: write this value (VMXON outside SMX + lock) to the MSR.
    WriteAndLock(u64),
    /// Locked with VMXON outside SMX disabled (firmware turned VT-x off): an error.
    LockedDisabled,
}

/// Decides, from the current IA32_FEATURE_CONTROL value, how to enable VMXON.
pub fn decide(msr: u64) -> FeatureControlAction {
    if msr & LOCK != 0 {
        if msr & VMXON_OUTSIDE_SMX != 0 {
            FeatureControlAction::AlreadyEnabled
        } else {
            FeatureControlAction::LockedDisabled
        }
    } else {
        FeatureControlAction::WriteAndLock(msr | VMXON_OUTSIDE_SMX | LOCK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locked_and_enabled_needs_no_write() {
        assert_eq!(decide(0x5), FeatureControlAction::AlreadyEnabled);
        assert_eq!(decide(0xFF07), FeatureControlAction::AlreadyEnabled);
    }

    #[test]
    fn locked_without_vmx_is_an_error() {
        assert_eq!(decide(0x1), FeatureControlAction::LockedDisabled);
        assert_eq!(decide(0x3), FeatureControlAction::LockedDisabled);
    }

    #[test]
    fn unlocked_is_written_with_lock_and_vmx_keeping_other_bits() {
        assert_eq!(decide(0), FeatureControlAction::WriteAndLock(0x5));
        assert_eq!(
            decide(0x4_0000 | VMXON_INSIDE_SMX),
            FeatureControlAction::WriteAndLock(0x4_0007)
        );
    }
}
