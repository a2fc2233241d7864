//! Encoding of 64-bit IDT interrupt gates (SDM Vol. 3, 6.14.1).

/// Present, DPL 0, type 0xE (64-bit interrupt gate: IF is cleared on entry).
const INTERRUPT_GATE_PRESENT_DPL0: u64 = 0x8E;

/// The 16-byte gate as two little-endian quadwords.
pub fn interrupt_gate(handler: u64, code_selector: u16, ist: u8) -> [u64; 2] {
    let low = (handler & 0xFFFF)
        | (u64::from(code_selector) << 16)
        | (u64::from(ist & 0x7) << 32)
        | (INTERRUPT_GATE_PRESENT_DPL0 << 40)
        | (((handler >> 16) & 0xFFFF) << 48);
    [low, handler >> 32]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_fields_are_placed_by_the_sdm_layout() {
        let [low, high] = interrupt_gate(0x1234_5678_9abc_def0, 0x08, 1);
        assert_eq!(low & 0xFFFF, 0xdef0);
        assert_eq!((low >> 16) & 0xFFFF, 0x08);
        assert_eq!((low >> 32) & 0x7, 1);
        assert_eq!((low >> 40) & 0xFF, 0x8E);
        assert_eq!(low >> 48, 0x9abc);
        assert_eq!(high, 0x1234_5678);
    }

    #[test]
    fn ist_is_masked_to_three_bits() {
        let [low, _] = interrupt_gate(0, 0x08, 9);
        assert_eq!((low >> 32) & 0xFF, 1);
    }
}
