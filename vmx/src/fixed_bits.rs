//! CR0/CR4 fixed-bit rules for VMX operation (SDM Vol. 3, Appendix A.7 and A.8).
//!
//! A bit set in FIXED0 must be 1; a bit clear in FIXED1 must be 0.

use core::fmt;

/// Forces `value` into the range allowed by the FIXED0/FIXED1 MSR pair.
pub fn apply_fixed(value: u64, fixed0: u64, fixed1: u64) -> u64 {
    (value | fixed0) & fixed1
}

/// Bits of a control-register value that break the FIXED0/FIXED1 rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FixedBitViolations {
    /// Bits that FIXED0 requires to be 1 but are 0 in the value.
    pub must_be_one: u64,
    /// Bits that FIXED1 requires to be 0 but are 1 in the value.
    pub must_be_zero: u64,
}

impl FixedBitViolations {
    /// True when the value satisfies both masks.
    pub fn is_empty(&self) -> bool {
        self.must_be_one == 0 && self.must_be_zero == 0
    }
}

impl fmt::Display for FixedBitViolations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bits that must be 1 but are 0: {:#x}; bits that must be 0 but are 1: {:#x}",
            self.must_be_one, self.must_be_zero
        )
    }
}

/// Reports which bits of `value` violate the FIXED0/FIXED1 pair.
pub fn violations(value: u64, fixed0: u64, fixed1: u64) -> FixedBitViolations {
    FixedBitViolations {
        must_be_one: fixed0 & !value,
        must_be_zero: value & !fixed1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Typical values from a Skylake CPU: CR0 needs PE|NE|PG, CR4 needs VMXE.
    const CR0_FIXED0: u64 = 0x8000_0021;
    const CR0_FIXED1: u64 = 0xFFFF_FFFF;
    const CR4_FIXED0: u64 = 0x2000;
    const CR4_FIXED1: u64 = 0x3727FF;

    #[test]
    fn apply_fixed_sets_required_and_clears_forbidden_bits() {
        let cr0 = apply_fixed(0x11, CR0_FIXED0, CR0_FIXED1);
        assert_eq!(cr0, 0x8000_0031);
        let cr4 = apply_fixed(0x20 | (1 << 40), CR4_FIXED0, CR4_FIXED1);
        assert_eq!(cr4, 0x2020);
    }

    #[test]
    fn violations_reports_each_kind() {
        let v = violations(0x20 | (1 << 23), CR4_FIXED0, CR4_FIXED1);
        assert_eq!(v.must_be_one, 0x2000);
        assert_eq!(v.must_be_zero, 1 << 23);
        assert!(!v.is_empty());
        let fixed = apply_fixed(0x20 | (1 << 23), CR4_FIXED0, CR4_FIXED1);
        assert!(violations(fixed, CR4_FIXED0, CR4_FIXED1).is_empty());
    }
}
