//! What the CPU does at the end of every instruction, redone for an instruction the hypervisor
//! completed for the guest (CPUID, VMMCALL, port I/O, an emulated MMIO access): moving RIP is not
//! enough. The instruction ends the guest's interrupt shadow, clears RFLAGS.RF, and when RFLAGS.TF
//! was set its single-step trap is due now: SVM has no pending-debug field, so the #DB is injected
//! with DR6.BS set, as the CPU would have set it (AMD APM Vol. 2, "Single-Step"). Without it the trap
//! is lost and lands one instruction late.

use crate::exit::{EventInfo, EventType};
use crate::vmcb::control::IN_INTERRUPT_SHADOW;

/// RFLAGS.TF: single-step.
pub const RFLAGS_TF: u64 = 1 << 8;
/// RFLAGS.RF: resume (suppresses instruction breakpoints for one instruction).
pub const RFLAGS_RF: u64 = 1 << 16;
/// DR6.BS: the #DB was a single-step trap.
pub const DR6_BS: u64 = 1 << 14;
/// #DB.
pub const DEBUG_VECTOR: u8 = 1;

/// The guest state an instruction's completion changes besides RIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestEventState {
    /// The save area's RFLAGS.
    pub rflags: u64,
    /// The control area's INTERRUPT_SHADOW.
    pub interrupt_shadow: u64,
    /// The save area's DR6.
    pub dr6: u64,
}

impl GuestEventState {
    /// The state after the instruction completed, and the #DB to inject when it was single-stepped
    /// (RFLAGS.TF as it was before the instruction: none of those the hypervisor completes changes it).
    pub fn after_completed_instruction(self) -> (Self, Option<EventInfo>) {
        let single_step = self.rflags & RFLAGS_TF != 0;
        let after = Self {
            rflags: self.rflags & !RFLAGS_RF,
            interrupt_shadow: self.interrupt_shadow & !IN_INTERRUPT_SHADOW,
            dr6: if single_step {
                self.dr6 | DR6_BS
            } else {
                self.dr6
            },
        };
        let trap = single_step.then_some(EventInfo {
            vector: DEBUG_VECTOR,
            event_type: EventType::Exception,
            error_code: None,
        });
        (after, trap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmcb::control::GUEST_INTERRUPT_MASK;

    const PLAIN: GuestEventState = GuestEventState {
        rflags: 0x202,
        interrupt_shadow: GUEST_INTERRUPT_MASK,
        dr6: 0xFFFF_0FF0,
    };

    #[test]
    fn an_ordinary_instruction_changes_nothing() {
        assert_eq!(PLAIN.after_completed_instruction(), (PLAIN, None));
    }

    #[test]
    fn single_step_injects_a_debug_trap_with_dr6_bs() {
        let stepping = GuestEventState {
            rflags: 0x302,
            ..PLAIN
        };
        let (after, trap) = stepping.after_completed_instruction();
        assert_eq!(after.dr6, 0xFFFF_4FF0);
        assert_eq!(
            after.rflags, 0x302,
            "TF stays set: the handler clears it, not the CPU"
        );
        let trap = trap.expect("a #DB");
        // Vector 1, type 3 (exception), no error code, valid.
        assert_eq!(trap.encode(), 0x8000_0301);
    }

    #[test]
    fn the_interrupt_shadow_and_rf_end_with_the_instruction() {
        let shadowed = GuestEventState {
            rflags: 0x10202,
            interrupt_shadow: IN_INTERRUPT_SHADOW | GUEST_INTERRUPT_MASK,
            ..PLAIN
        };
        let (after, trap) = shadowed.after_completed_instruction();
        assert_eq!(after.interrupt_shadow, GUEST_INTERRUPT_MASK);
        assert_eq!(after.rflags, 0x202);
        assert_eq!(trap, None);
    }
}
