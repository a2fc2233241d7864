//! Guest general-purpose registers saved and restored around VMRUN. RAX and RSP are not here:
//! VMRUN loads them from the VMCB state-save area and #VMEXIT stores them back, so slots 0 and
//! 4 are left unused by the entry code; [`read_gpr`]/[`write_gpr`] route them to the VMCB.

use crate::vmcb::{save, Vmcb};

/// Guest GPRs, indexed by x86 register number (0 = RAX (unused, in the VMCB), 1 = RCX, 2 = RDX,
/// 3 = RBX, 4 = RSP (unused, in the VMCB), 5 = RBP, 6 = RSI, 7 = RDI, 8..15 = R8..R15).
/// The layout is fixed (`repr(C)`): the entry code in `hw::real` addresses slot `n` at `8 * n`.
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
/// Register number of RSP.
pub const RSP: u8 = 4;

const NAMES: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];

impl GuestRegisters {
    /// The assembler name of register `index`.
    pub fn name(index: u8) -> Option<&'static str> {
        NAMES.get(usize::from(index)).copied()
    }
}

/// Register `index` (0..=15) of the guest: RAX and RSP from the VMCB, the others from `regs`.
pub fn read_gpr(vmcb: &Vmcb, regs: &GuestRegisters, index: u8) -> Option<u64> {
    match index {
        RAX => Some(vmcb.get64(save::RAX)),
        RSP => Some(vmcb.get64(save::RSP)),
        _ => regs.gpr.get(usize::from(index)).copied(),
    }
}

/// Sets register `index` of the guest (RAX and RSP in the VMCB); false for an index above 15.
pub fn write_gpr(vmcb: &mut Vmcb, regs: &mut GuestRegisters, index: u8, value: u64) -> bool {
    match index {
        RAX => vmcb.set64(save::RAX, value),
        RSP => vmcb.set64(save::RSP, value),
        _ => match regs.gpr.get_mut(usize::from(index)) {
            Some(slot) => *slot = value,
            None => return false,
        },
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rax_and_rsp_live_in_the_vmcb() {
        let mut vmcb = Vmcb::new();
        let mut regs = GuestRegisters::default();
        assert!(write_gpr(&mut vmcb, &mut regs, RAX, 0x11));
        assert!(write_gpr(&mut vmcb, &mut regs, RSP, 0x22));
        assert!(write_gpr(&mut vmcb, &mut regs, RBX, 0x33));
        assert!(!write_gpr(&mut vmcb, &mut regs, 16, 1));
        assert_eq!(regs.gpr[0], 0);
        assert_eq!(regs.gpr[4], 0);
        assert_eq!(regs.gpr[3], 0x33);
        assert_eq!(vmcb.get64(save::RAX), 0x11);
        assert_eq!(read_gpr(&vmcb, &regs, RSP), Some(0x22));
        assert_eq!(read_gpr(&vmcb, &regs, 16), None);
        assert_eq!(GuestRegisters::name(RDX), Some("rdx"));
        assert_eq!(core::mem::size_of::<GuestRegisters>(), 128);
    }
}
