//! Guest general-purpose registers saved and restored around VM entry/exit. RSP is not here:
//! the CPU keeps it in the VMCS (GUEST_RSP), so slot 4 is left unused by the entry code.

/// Guest GPRs, indexed by the x86 register number (0 = RAX, 1 = RCX, 2 = RDX, 3 = RBX, 4 = RSP
/// (unused, see GUEST_RSP), 5 = RBP, 6 = RSI, 7 = RDI, 8..15 = R8..R15). The layout is fixed
/// (`repr(C)`): the entry code in `hw::real` addresses slot `n` at byte offset `8 * n`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestRegisters {
    /// Register values by number.
    pub gpr: [u64; 16],
}

/// Register number of RAX.
pub const RAX: u8 = 0;
/// Register number of RCX.
pub const RCX: u8 = 1;
/// Register number of RDX.
pub const RDX: u8 = 2;
/// Register number of RBX.
pub const RBX: u8 = 3;
/// Register number of RSP (lives in the VMCS, not in [`GuestRegisters`]).
pub const RSP: u8 = 4;
/// Register number of RSI.
pub const RSI: u8 = 6;
/// Register number of RDI.
pub const RDI: u8 = 7;

const NAMES: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];

impl GuestRegisters {
    /// The value of register `index` (0..=15); None for an out-of-range index or RSP.
    pub fn get(&self, index: u8) -> Option<u64> {
        (index != RSP).then(|| self.gpr.get(usize::from(index)).copied())?
    }

    /// Sets register `index`; returns false for an out-of-range index or RSP.
    pub fn set(&mut self, index: u8, value: u64) -> bool {
        match self.gpr.get_mut(usize::from(index)) {
            Some(slot) if index != RSP => {
                *slot = value;
                true
            }
            _ => false,
        }
    }

    /// The assembler name of register `index`.
    pub fn name(index: u8) -> Option<&'static str> {
        NAMES.get(usize::from(index)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_by_number() {
        let mut regs = GuestRegisters::default();
        assert!(regs.set(RBX, 7));
        assert!(regs.set(15, 9));
        assert_eq!(regs.gpr[3], 7);
        assert_eq!(regs.get(15), Some(9));
        assert!(!regs.set(RSP, 1));
        assert!(!regs.set(16, 1));
        assert_eq!(regs.get(RSP), None);
        assert_eq!(GuestRegisters::name(9), Some("r9"));
        assert_eq!(core::mem::size_of::<GuestRegisters>(), 128);
    }
}
