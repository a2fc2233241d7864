//! Reads a list of VMCS fields through [`VmxHardware`] and formats them, for unhandled exits.

use crate::fields;
use crate::hw::{VmxHardware, VmxInstructionError};
use alloc::vec::Vec;
use core::fmt;

/// Fields worth seeing when an exit is not handled: exit information, guest state, controls.
pub const DEFAULT_DUMP_FIELDS: &[(&str, u32)] = &[
    ("VM_EXIT_REASON", fields::VM_EXIT_REASON.encoding()),
    ("EXIT_QUALIFICATION", fields::EXIT_QUALIFICATION.encoding()),
    (
        "VM_INSTRUCTION_ERROR",
        fields::VM_INSTRUCTION_ERROR.encoding(),
    ),
    (
        "VM_EXIT_INTERRUPTION_INFO",
        fields::VM_EXIT_INTERRUPTION_INFO.encoding(),
    ),
    (
        "VM_EXIT_INTERRUPTION_ERROR_CODE",
        fields::VM_EXIT_INTERRUPTION_ERROR_CODE.encoding(),
    ),
    ("IDT_VECTORING_INFO", fields::IDT_VECTORING_INFO.encoding()),
    (
        "VM_EXIT_INSTRUCTION_LENGTH",
        fields::VM_EXIT_INSTRUCTION_LENGTH.encoding(),
    ),
    (
        "VM_EXIT_INSTRUCTION_INFO",
        fields::VM_EXIT_INSTRUCTION_INFO.encoding(),
    ),
    (
        "GUEST_PHYSICAL_ADDRESS",
        fields::GUEST_PHYSICAL_ADDRESS.encoding(),
    ),
    (
        "GUEST_LINEAR_ADDRESS",
        fields::GUEST_LINEAR_ADDRESS.encoding(),
    ),
    ("GUEST_RIP", fields::GUEST_RIP.encoding()),
    ("GUEST_RSP", fields::GUEST_RSP.encoding()),
    ("GUEST_RFLAGS", fields::GUEST_RFLAGS.encoding()),
    ("GUEST_CR0", fields::GUEST_CR0.encoding()),
    ("GUEST_CR3", fields::GUEST_CR3.encoding()),
    ("GUEST_CR4", fields::GUEST_CR4.encoding()),
    ("GUEST_IA32_EFER", fields::GUEST_IA32_EFER.encoding()),
    ("GUEST_CS_SELECTOR", fields::GUEST_CS_SELECTOR.encoding()),
    (
        "GUEST_CS_ACCESS_RIGHTS",
        fields::GUEST_CS_ACCESS_RIGHTS.encoding(),
    ),
    (
        "GUEST_INTERRUPTIBILITY_STATE",
        fields::GUEST_INTERRUPTIBILITY_STATE.encoding(),
    ),
    (
        "GUEST_ACTIVITY_STATE",
        fields::GUEST_ACTIVITY_STATE.encoding(),
    ),
    (
        "PIN_BASED_VM_EXEC_CONTROL",
        fields::PIN_BASED_VM_EXEC_CONTROL.encoding(),
    ),
    (
        "PRIMARY_PROC_BASED_VM_EXEC_CONTROL",
        fields::PRIMARY_PROC_BASED_VM_EXEC_CONTROL.encoding(),
    ),
    (
        "SECONDARY_PROC_BASED_VM_EXEC_CONTROL",
        fields::SECONDARY_PROC_BASED_VM_EXEC_CONTROL.encoding(),
    ),
    ("VM_EXIT_CONTROLS", fields::VM_EXIT_CONTROLS.encoding()),
    ("VM_ENTRY_CONTROLS", fields::VM_ENTRY_CONTROLS.encoding()),
    ("EPT_POINTER", fields::EPT_POINTER.encoding()),
];

/// One dumped field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DumpEntry {
    /// Field name.
    pub name: &'static str,
    /// Field encoding.
    pub encoding: u32,
    /// The value, or why VMREAD failed.
    pub value: Result<u64, VmxInstructionError>,
}

/// A snapshot of VMCS fields; `Display` prints one `name (encoding) = value` line per field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmcsDump {
    /// Fields in the order they were requested.
    pub entries: Vec<DumpEntry>,
}

impl VmcsDump {
    /// Reads each field; a failed VMREAD is kept in the dump rather than aborting it.
    pub fn capture<H: VmxHardware + ?Sized>(hw: &mut H, fields: &[(&'static str, u32)]) -> Self {
        let entries = fields
            .iter()
            .map(|&(name, encoding)| DumpEntry {
                name,
                encoding,
                value: hw.vmread(encoding),
            })
            .collect();
        Self { entries }
    }

    /// The value read for a field encoding, if it was read successfully.
    pub fn get(&self, encoding: u32) -> Option<u64> {
        self.entries
            .iter()
            .find(|e| e.encoding == encoding)
            .and_then(|e| e.value.ok())
    }
}

impl fmt::Display for VmcsDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.entries {
            match e.value {
                Ok(v) => writeln!(f, "{} ({:#06x}) = {:#x}", e.name, e.encoding, v)?,
                Err(err) => writeln!(f, "{} ({:#06x}) = <{}>", e.name, e.encoding, err)?,
            }
        }
        Ok(())
    }
}
