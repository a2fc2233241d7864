//! An exit that interrupts the delivery of an event to the guest (an exception, a software
//! interrupt, the hypervisor's own injected #GP or single-step #DB) leaves that event in the
//! IDT-vectoring information fields; the event was not delivered, so the next VM entry must inject
//! it again or it is lost (Intel SDM Vol. 3C, "Information for VM Exits During Event Delivery" and
//! "Event Injection"). This turns those fields into the VM-entry event fields.

/// IDT-vectoring information: bit 31 valid, bit 11 error code valid, bits 10:8 type, bits 7:0
/// vector (bits 30:12 are not part of an entry event).
const VALID: u32 = 1 << 31;
const ENTRY_FIELD_BITS: u32 = VALID | 0xFFF;

/// The event a VM entry injects: VM_ENTRY_INTERRUPTION_INFO, VM_ENTRY_EXCEPTION_ERROR_CODE and
/// VM_ENTRY_INSTRUCTION_LENGTH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryEvent {
    /// Valid bit, error-code-valid bit, type and vector.
    pub interruption_info: u32,
    /// The exception's error code, when it has one.
    pub error_code: Option<u32>,
    /// For software interrupts and exceptions (INT n, INT3, INTO, INT1): their instruction's length,
    /// which delivery pushes past.
    pub instruction_len: Option<u32>,
}

/// The event to inject again after an exit whose IDT-vectoring information is `vectoring` (with
/// `error_code` and the exit's instruction length), or None when no delivery was interrupted.
pub fn reinjection(
    vectoring: u32,
    error_code: u32,
    exit_instruction_len: u32,
) -> Option<EntryEvent> {
    if vectoring & VALID == 0 {
        return None;
    }
    let kind = (vectoring >> 8) & 7;
    Some(EntryEvent {
        interruption_info: vectoring & ENTRY_FIELD_BITS,
        error_code: (vectoring & (1 << 11) != 0).then_some(error_code),
        // 4 software interrupt, 5 privileged software exception, 6 software exception.
        instruction_len: matches!(kind, 4..=6).then_some(exit_instruction_len),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_interrupted_delivery_no_event() {
        assert_eq!(reinjection(0, 0, 3), None);
        assert_eq!(reinjection(0x0000_0B0E, 4, 3), None, "valid bit clear");
    }

    #[test]
    fn a_hardware_exception_comes_back_with_its_error_code() {
        // #PF (14), hardware exception (3), error code valid; bit 12 (undefined here) dropped.
        let event = reinjection(0x8000_1B0E, 0x2, 7).unwrap();
        assert_eq!(event.interruption_info, 0x8000_0B0E);
        assert_eq!(event.error_code, Some(2));
        assert_eq!(event.instruction_len, None);
        // The single-step #DB the hypervisor delivers: no error code.
        let db = reinjection(0x8000_0301, 0xdead, 0).unwrap();
        assert_eq!((db.interruption_info, db.error_code), (0x8000_0301, None));
    }

    #[test]
    fn software_events_keep_their_instruction_length() {
        // INT 0x80 (software interrupt, 2 bytes), INT3 (software exception, 1 byte), INT1 (5).
        for (raw, len) in [(0x8000_0480, 2), (0x8000_0603, 1), (0x8000_0501, 1)] {
            let event = reinjection(raw, 0, len).unwrap();
            assert_eq!(event.interruption_info, raw);
            assert_eq!(event.instruction_len, Some(len), "{raw:#x}");
        }
    }
}
