//! What the CPU does at the end of every instruction, redone for an instruction the hypervisor
//! completed for the guest (CPUID, VMCALL, port I/O, an emulated MMIO access): moving RIP is not
//! enough. The instruction ends any STI / MOV SS interrupt shadow, clears RFLAGS.RF, and when
//! RFLAGS.TF was set its single-step trap is due now: it is made a pending debug exception (BS), which
//! the CPU delivers right after VM entry (Intel SDM Vol. 3C, "Delivery of Pending Debug Exceptions
//! after VM Entry"). Without it the trap is lost and lands one instruction late.

/// RFLAGS.TF: single-step.
pub const RFLAGS_TF: u64 = 1 << 8;
/// RFLAGS.RF: resume (suppresses instruction breakpoints for one instruction).
pub const RFLAGS_RF: u64 = 1 << 16;
/// Guest interruptibility state bits 0 (blocking by STI) and 1 (blocking by MOV SS).
pub const BLOCKING_BY_STI_OR_MOV_SS: u32 = 0b11;
/// Guest pending debug exceptions bit 14 (BS): a single-step trap is pending.
pub const PENDING_DEBUG_BS: u64 = 1 << 14;

/// The guest state an instruction's completion changes besides RIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestEventState {
    /// GUEST_RFLAGS.
    pub rflags: u64,
    /// GUEST_INTERRUPTIBILITY_STATE.
    pub interruptibility: u32,
    /// GUEST_PENDING_DEBUG_EXCEPTIONS.
    pub pending_debug: u64,
}

impl GuestEventState {
    /// The state after the instruction completed (RFLAGS.TF as it was before the instruction:
    /// none of the instructions the hypervisor completes changes it).
    pub fn after_completed_instruction(self) -> Self {
        let single_step = self.rflags & RFLAGS_TF != 0;
        Self {
            rflags: self.rflags & !RFLAGS_RF,
            interruptibility: self.interruptibility & !BLOCKING_BY_STI_OR_MOV_SS,
            pending_debug: if single_step {
                self.pending_debug | PENDING_DEBUG_BS
            } else {
                self.pending_debug
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: GuestEventState = GuestEventState {
        rflags: 0x202,
        interruptibility: 0,
        pending_debug: 0,
    };

    #[test]
    fn an_ordinary_instruction_changes_nothing() {
        assert_eq!(PLAIN.after_completed_instruction(), PLAIN);
    }

    #[test]
    fn single_step_becomes_a_pending_debug_exception() {
        let stepping = GuestEventState {
            rflags: 0x302,
            ..PLAIN
        };
        let after = stepping.after_completed_instruction();
        assert_eq!(after.pending_debug, PENDING_DEBUG_BS);
        assert_eq!(
            after.rflags, 0x302,
            "TF stays set: the handler clears it, not the CPU"
        );
        // Other pending debug conditions (a data breakpoint hit by the same instruction) are kept.
        let with_b0 = GuestEventState {
            pending_debug: 1,
            ..stepping
        };
        assert_eq!(
            with_b0.after_completed_instruction().pending_debug,
            1 | PENDING_DEBUG_BS
        );
    }

    #[test]
    fn the_interrupt_shadow_and_rf_end_with_the_instruction() {
        let shadowed = GuestEventState {
            rflags: 0x10202,
            interruptibility: 0b1011, // STI, MOV SS and NMI blocking
            pending_debug: 0,
        };
        let after = shadowed.after_completed_instruction();
        assert_eq!(
            after.interruptibility, 0b1000,
            "NMI blocking is not a shadow"
        );
        assert_eq!(after.rflags, 0x202);
        assert_eq!(after.pending_debug, 0);
    }
}
