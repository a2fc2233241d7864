//! The tool device: an MMIO window that carries the same requests as the hypercall instruction.
//!
//! The window is one 4 KiB page at [`TOOL_DEVICE_GPA`], outside guest RAM and outside the usual PC
//! device ranges (IOAPIC 0xFEC0_0000, HPET 0xFED0_0000, LAPIC 0xFEE0_0000). The hypervisor leaves it
//! unmapped in the EPT, so each access exits and is emulated. Registers (offset, width, access):
//! `0x00` ID u32 R (= [`DEVICE_ID`]), `0x04` VERSION u32 R, `0x08` REQUEST_GPA u64 RW,
//! `0x10` DOORBELL u64 W (a call number: runs the request at REQUEST_GPA like a hypercall),
//! `0x18` STATUS u64 R, `0x20` RESULT_LEN u64 R. Any other access is a fault that stops the agent.

/// Guest-physical base of the tool device window.
pub const TOOL_DEVICE_GPA: u64 = 0xFEB0_0000;
/// Size of the window.
pub const TOOL_DEVICE_SIZE: u64 = 0x1000;
/// `b"PVTD"` as a little-endian u32, read from the ID register.
pub const DEVICE_ID: u32 = u32::from_le_bytes(*b"PVTD");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Register {
    Id,
    Version,
    RequestGpa,
    Doorbell,
    Status,
    ResultLen,
}

impl Register {
    pub const ALL: [Register; 6] = [
        Register::Id,
        Register::Version,
        Register::RequestGpa,
        Register::Doorbell,
        Register::Status,
        Register::ResultLen,
    ];

    pub fn offset(self) -> u64 {
        match self {
            Register::Id => 0x00,
            Register::Version => 0x04,
            Register::RequestGpa => 0x08,
            Register::Doorbell => 0x10,
            Register::Status => 0x18,
            Register::ResultLen => 0x20,
        }
    }

    /// Access width in bytes.
    pub fn width(self) -> u8 {
        match self {
            Register::Id | Register::Version => 4,
            _ => 8,
        }
    }

    fn readable(self) -> bool {
        self != Register::Doorbell
    }

    fn writable(self) -> bool {
        matches!(self, Register::RequestGpa | Register::Doorbell)
    }
}

/// Why an MMIO access to the tool device is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioError {
    /// The address is not inside the window.
    OutsideWindow { gpa: u64 },
    /// No register at this offset.
    NoRegister { offset: u64 },
    /// The access width differs from the register's.
    BadWidth { register: Register, width: u8 },
    /// A read of a write-only or a write of a read-only register.
    BadDirection { register: Register, write: bool },
}

/// Decode a guest access of `width` bytes at `gpa` (from the EPT violation and the decoded instruction).
pub fn decode_access(gpa: u64, width: u8, write: bool) -> Result<Register, MmioError> {
    let offset = gpa
        .checked_sub(TOOL_DEVICE_GPA)
        .filter(|o| *o < TOOL_DEVICE_SIZE);
    let offset = offset.ok_or(MmioError::OutsideWindow { gpa })?;
    let register = Register::ALL
        .into_iter()
        .find(|r| r.offset() == offset)
        .ok_or(MmioError::NoRegister { offset })?;
    if width != register.width() {
        return Err(MmioError::BadWidth { register, width });
    }
    let allowed = if write {
        register.writable()
    } else {
        register.readable()
    };
    if !allowed {
        return Err(MmioError::BadDirection { register, write });
    }
    Ok(register)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_decode_at_their_offsets() {
        for r in Register::ALL {
            let write = r == Register::Doorbell;
            assert_eq!(
                decode_access(TOOL_DEVICE_GPA + r.offset(), r.width(), write),
                Ok(r)
            );
        }
        assert_eq!(
            decode_access(TOOL_DEVICE_GPA + 8, 8, true),
            Ok(Register::RequestGpa)
        );
    }

    #[test]
    fn bad_accesses_are_refused() {
        assert_eq!(
            decode_access(0x1000, 4, false),
            Err(MmioError::OutsideWindow { gpa: 0x1000 })
        );
        let end = TOOL_DEVICE_GPA + TOOL_DEVICE_SIZE;
        assert_eq!(
            decode_access(end, 4, false),
            Err(MmioError::OutsideWindow { gpa: end })
        );
        assert_eq!(
            decode_access(TOOL_DEVICE_GPA + 0x28, 8, false),
            Err(MmioError::NoRegister { offset: 0x28 })
        );
        assert_eq!(
            decode_access(TOOL_DEVICE_GPA + 2, 2, false),
            Err(MmioError::NoRegister { offset: 2 })
        );
        assert_eq!(
            decode_access(TOOL_DEVICE_GPA, 8, false),
            Err(MmioError::BadWidth {
                register: Register::Id,
                width: 8
            })
        );
        assert_eq!(
            decode_access(TOOL_DEVICE_GPA + 0x10, 8, false),
            Err(MmioError::BadDirection {
                register: Register::Doorbell,
                write: false
            })
        );
        assert_eq!(
            decode_access(TOOL_DEVICE_GPA + 0x18, 8, true),
            Err(MmioError::BadDirection {
                register: Register::Status,
                write: true
            })
        );
    }

    #[test]
    fn window_is_outside_pc_device_ranges() {
        for fixed in [0xFEC0_0000u64, 0xFED0_0000, 0xFEE0_0000] {
            assert!(!(TOOL_DEVICE_GPA..TOOL_DEVICE_GPA + TOOL_DEVICE_SIZE).contains(&fixed));
        }
        assert_eq!(&DEVICE_ID.to_le_bytes(), b"PVTD");
    }
}
