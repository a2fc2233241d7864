//! VMCS component encodings (SDM Vol. 3, Appendix B), typed by width so that a wrong-width
//! access does not compile: a [`Field16`] reads and writes `u16`, a [`Field32`] `u32`, and
//! [`Field64`]/[`FieldNatural`] `u64`. Each constructor checks the width bits (14:13) at
//! compile time.
//!
//! ```
//! use vmx::hw::{SoftVmcs, VmxHardware};
//! let mut hw = SoftVmcs::new();
//! hw.vmxon(0x1000).unwrap();
//! hw.vmptrld(0x2000).unwrap();
//! vmx::fields::VPID.write(&mut hw, 1u16).unwrap();
//! assert_eq!(vmx::fields::VPID.read(&mut hw), Ok(1u16));
//! ```
//!
//! A value of the wrong width is a type error:
//!
//! ```compile_fail
//! let mut hw = vmx::hw::SoftVmcs::new();
//! vmx::fields::VPID.write(&mut hw, 1u32).unwrap();
//! ```
//!
//! and so is a constant whose encoding has another width:
//!
//! ```compile_fail
//! const BAD: vmx::fields::Field16 = vmx::fields::Field16::new(0x4000);
//! let _ = BAD;
//! ```

use crate::hw::{VmxHardware, VmxInstructionError};

const fn width_of(encoding: u32) -> u32 {
    (encoding >> 13) & 3
}

macro_rules! field_type {
    ($(#[$doc:meta])* $name:ident, $ty:ty, $width:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name(u32);

        impl $name {
            /// Wraps an encoding; panics (at compile time in a `const`) if the width bits differ.
            pub const fn new(encoding: u32) -> Self {
                assert!(width_of(encoding) == $width, "VMCS field width mismatch");
                Self(encoding)
            }

            /// The raw encoding for VMREAD/VMWRITE.
            pub const fn encoding(self) -> u32 {
                self.0
            }

            /// VMREAD of this field from the current VMCS.
            pub fn read<H: VmxHardware + ?Sized>(self, hw: &mut H) -> Result<$ty, VmxInstructionError> {
                hw.vmread(self.0).map(|v| v as $ty)
            }

            /// VMWRITE of this field in the current VMCS.
            pub fn write<H: VmxHardware + ?Sized>(self, hw: &mut H, value: $ty) -> Result<(), VmxInstructionError> {
                hw.vmwrite(self.0, value as u64)
            }
        }
    };
}

field_type!(
    /// A 16-bit VMCS field.
    Field16, u16, 0
);
field_type!(
    /// A 64-bit VMCS field (full access).
    Field64, u64, 1
);
field_type!(
    /// A 32-bit VMCS field.
    Field32, u32, 2
);
field_type!(
    /// A natural-width VMCS field (64 bits on a 64-bit host).
    FieldNatural, u64, 3
);

macro_rules! fields {
    ($kind:ident: $($name:ident = $enc:expr;)*) => {
        $(
            #[doc = concat!("VMCS field `", stringify!($name), "`.")]
            pub const $name: $kind = $kind::new($enc);
        )*
    };
}

fields! { Field16:
    VPID = 0x0000;
    POSTED_INTERRUPT_NOTIFICATION_VECTOR = 0x0002;
    EPTP_INDEX = 0x0004;
    GUEST_ES_SELECTOR = 0x0800;
    GUEST_CS_SELECTOR = 0x0802;
    GUEST_SS_SELECTOR = 0x0804;
    GUEST_DS_SELECTOR = 0x0806;
    GUEST_FS_SELECTOR = 0x0808;
    GUEST_GS_SELECTOR = 0x080A;
    GUEST_LDTR_SELECTOR = 0x080C;
    GUEST_TR_SELECTOR = 0x080E;
    GUEST_INTERRUPT_STATUS = 0x0810;
    GUEST_PML_INDEX = 0x0812;
    HOST_ES_SELECTOR = 0x0C00;
    HOST_CS_SELECTOR = 0x0C02;
    HOST_SS_SELECTOR = 0x0C04;
    HOST_DS_SELECTOR = 0x0C06;
    HOST_FS_SELECTOR = 0x0C08;
    HOST_GS_SELECTOR = 0x0C0A;
    HOST_TR_SELECTOR = 0x0C0C;
}

fields! { Field64:
    IO_BITMAP_A = 0x2000;
    IO_BITMAP_B = 0x2002;
    MSR_BITMAPS = 0x2004;
    VM_EXIT_MSR_STORE_ADDR = 0x2006;
    VM_EXIT_MSR_LOAD_ADDR = 0x2008;
    VM_ENTRY_MSR_LOAD_ADDR = 0x200A;
    PML_ADDRESS = 0x200E;
    TSC_OFFSET = 0x2010;
    VIRTUAL_APIC_PAGE_ADDR = 0x2012;
    APIC_ACCESS_ADDR = 0x2014;
    VM_FUNCTION_CONTROLS = 0x2018;
    EPT_POINTER = 0x201A;
    EPTP_LIST_ADDR = 0x2024;
    XSS_EXITING_BITMAP = 0x202C;
    TSC_MULTIPLIER = 0x2032;
    TERTIARY_PROC_BASED_CONTROLS = 0x2034;
    GUEST_PHYSICAL_ADDRESS = 0x2400;
    VMCS_LINK_POINTER = 0x2800;
    GUEST_IA32_DEBUGCTL = 0x2802;
    GUEST_IA32_PAT = 0x2804;
    GUEST_IA32_EFER = 0x2806;
    GUEST_IA32_PERF_GLOBAL_CTRL = 0x2808;
    GUEST_PDPTE0 = 0x280A;
    GUEST_PDPTE1 = 0x280C;
    GUEST_PDPTE2 = 0x280E;
    GUEST_PDPTE3 = 0x2810;
    HOST_IA32_PAT = 0x2C00;
    HOST_IA32_EFER = 0x2C02;
    HOST_IA32_PERF_GLOBAL_CTRL = 0x2C04;
}

fields! { Field32:
    PIN_BASED_VM_EXEC_CONTROL = 0x4000;
    PRIMARY_PROC_BASED_VM_EXEC_CONTROL = 0x4002;
    EXCEPTION_BITMAP = 0x4004;
    PAGE_FAULT_ERROR_CODE_MASK = 0x4006;
    PAGE_FAULT_ERROR_CODE_MATCH = 0x4008;
    CR3_TARGET_COUNT = 0x400A;
    VM_EXIT_CONTROLS = 0x400C;
    VM_EXIT_MSR_STORE_COUNT = 0x400E;
    VM_EXIT_MSR_LOAD_COUNT = 0x4010;
    VM_ENTRY_CONTROLS = 0x4012;
    VM_ENTRY_MSR_LOAD_COUNT = 0x4014;
    VM_ENTRY_INTERRUPTION_INFO = 0x4016;
    VM_ENTRY_EXCEPTION_ERROR_CODE = 0x4018;
    VM_ENTRY_INSTRUCTION_LENGTH = 0x401A;
    TPR_THRESHOLD = 0x401C;
    SECONDARY_PROC_BASED_VM_EXEC_CONTROL = 0x401E;
    PLE_GAP = 0x4020;
    PLE_WINDOW = 0x4022;
    VM_INSTRUCTION_ERROR = 0x4400;
    VM_EXIT_REASON = 0x4402;
    VM_EXIT_INTERRUPTION_INFO = 0x4404;
    VM_EXIT_INTERRUPTION_ERROR_CODE = 0x4406;
    IDT_VECTORING_INFO = 0x4408;
    IDT_VECTORING_ERROR_CODE = 0x440A;
    VM_EXIT_INSTRUCTION_LENGTH = 0x440C;
    VM_EXIT_INSTRUCTION_INFO = 0x440E;
    GUEST_ES_LIMIT = 0x4800;
    GUEST_CS_LIMIT = 0x4802;
    GUEST_SS_LIMIT = 0x4804;
    GUEST_DS_LIMIT = 0x4806;
    GUEST_FS_LIMIT = 0x4808;
    GUEST_GS_LIMIT = 0x480A;
    GUEST_LDTR_LIMIT = 0x480C;
    GUEST_TR_LIMIT = 0x480E;
    GUEST_GDTR_LIMIT = 0x4810;
    GUEST_IDTR_LIMIT = 0x4812;
    GUEST_ES_ACCESS_RIGHTS = 0x4814;
    GUEST_CS_ACCESS_RIGHTS = 0x4816;
    GUEST_SS_ACCESS_RIGHTS = 0x4818;
    GUEST_DS_ACCESS_RIGHTS = 0x481A;
    GUEST_FS_ACCESS_RIGHTS = 0x481C;
    GUEST_GS_ACCESS_RIGHTS = 0x481E;
    GUEST_LDTR_ACCESS_RIGHTS = 0x4820;
    GUEST_TR_ACCESS_RIGHTS = 0x4822;
    GUEST_INTERRUPTIBILITY_STATE = 0x4824;
    GUEST_ACTIVITY_STATE = 0x4826;
    GUEST_SMBASE = 0x4828;
    GUEST_IA32_SYSENTER_CS = 0x482A;
    VMX_PREEMPTION_TIMER_VALUE = 0x482E;
    HOST_IA32_SYSENTER_CS = 0x4C00;
}

fields! { FieldNatural:
    CR0_GUEST_HOST_MASK = 0x6000;
    CR4_GUEST_HOST_MASK = 0x6002;
    CR0_READ_SHADOW = 0x6004;
    CR4_READ_SHADOW = 0x6006;
    CR3_TARGET_VALUE0 = 0x6008;
    CR3_TARGET_VALUE1 = 0x600A;
    CR3_TARGET_VALUE2 = 0x600C;
    CR3_TARGET_VALUE3 = 0x600E;
    EXIT_QUALIFICATION = 0x6400;
    IO_RCX = 0x6402;
    IO_RSI = 0x6404;
    IO_RDI = 0x6406;
    IO_RIP = 0x6408;
    GUEST_LINEAR_ADDRESS = 0x640A;
    GUEST_CR0 = 0x6800;
    GUEST_CR3 = 0x6802;
    GUEST_CR4 = 0x6804;
    GUEST_ES_BASE = 0x6806;
    GUEST_CS_BASE = 0x6808;
    GUEST_SS_BASE = 0x680A;
    GUEST_DS_BASE = 0x680C;
    GUEST_FS_BASE = 0x680E;
    GUEST_GS_BASE = 0x6810;
    GUEST_LDTR_BASE = 0x6812;
    GUEST_TR_BASE = 0x6814;
    GUEST_GDTR_BASE = 0x6816;
    GUEST_IDTR_BASE = 0x6818;
    GUEST_DR7 = 0x681A;
    GUEST_RSP = 0x681C;
    GUEST_RIP = 0x681E;
    GUEST_RFLAGS = 0x6820;
    GUEST_PENDING_DEBUG_EXCEPTIONS = 0x6822;
    GUEST_IA32_SYSENTER_ESP = 0x6824;
    GUEST_IA32_SYSENTER_EIP = 0x6826;
    HOST_CR0 = 0x6C00;
    HOST_CR3 = 0x6C02;
    HOST_CR4 = 0x6C04;
    HOST_FS_BASE = 0x6C06;
    HOST_GS_BASE = 0x6C08;
    HOST_TR_BASE = 0x6C0A;
    HOST_GDTR_BASE = 0x6C0C;
    HOST_IDTR_BASE = 0x6C0E;
    HOST_IA32_SYSENTER_ESP = 0x6C10;
    HOST_IA32_SYSENTER_EIP = 0x6C12;
    HOST_RSP = 0x6C14;
    HOST_RIP = 0x6C16;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hw::{soft::is_valid_encoding, HwCall, SoftVmcs, VmxInstructionError};

    fn ready() -> SoftVmcs {
        let mut hw = SoftVmcs::new();
        hw.vmxon(0x1000).unwrap();
        hw.vmptrld(0x2000).unwrap();
        hw
    }

    #[test]
    fn typed_fields_round_trip_with_their_width() {
        let mut hw = ready();
        VPID.write(&mut hw, 1).unwrap();
        GUEST_CS_LIMIT.write(&mut hw, 0xFFFF_FFFF).unwrap();
        EPT_POINTER.write(&mut hw, 0x1234_501E).unwrap();
        GUEST_RIP.write(&mut hw, 0xFFFF_8000_0000_1000).unwrap();
        assert_eq!(VPID.read(&mut hw), Ok(1u16));
        assert_eq!(GUEST_CS_LIMIT.read(&mut hw), Ok(0xFFFF_FFFFu32));
        assert_eq!(EPT_POINTER.read(&mut hw), Ok(0x1234_501E));
        assert_eq!(GUEST_RIP.read(&mut hw), Ok(0xFFFF_8000_0000_1000));
        assert!(hw.calls.contains(&HwCall::Vmwrite(0x201A, 0x1234_501E)));
    }

    #[test]
    fn exit_information_fields_are_read_only() {
        let mut hw = ready();
        assert_eq!(
            VM_EXIT_REASON.write(&mut hw, 1),
            Err(VmxInstructionError::FailValid(13))
        );
        assert_eq!(
            EXIT_QUALIFICATION.write(&mut hw, 1),
            Err(VmxInstructionError::FailValid(13))
        );
    }

    #[test]
    fn encodings_are_well_formed() {
        for enc in [
            VPID.encoding(),
            HOST_TR_SELECTOR.encoding(),
            EPT_POINTER.encoding(),
            HOST_IA32_EFER.encoding(),
            VMX_PREEMPTION_TIMER_VALUE.encoding(),
            HOST_RIP.encoding(),
        ] {
            assert!(is_valid_encoding(enc), "{enc:#x}");
        }
    }

    #[test]
    #[should_panic(expected = "width mismatch")]
    fn wrong_width_constructor_panics_at_run_time_too() {
        let enc = std::hint::black_box(0x4000);
        let _ = Field16::new(enc);
    }
}
