//! A software subset of the VM-entry checks (SDM Vol. 3, 27.2 and 27.3.1), run over the current
//! VMCS to explain a VM-instruction error 7/8 or an exit with reason 33 (invalid guest state).
//! Not exhaustive: an empty report does not prove the entry will succeed.

use crate::controls::{entry, exit, primary, secondary};
use crate::fields as f;
use crate::fixed_bits::violations;
use crate::hw::{VmxHardware, VmxInstructionError};
use crate::msr;
use alloc::vec::Vec;
use core::fmt;

/// Which part of the VMCS a problem is in (and so which failure it causes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckArea {
    /// VM-execution/exit/entry controls: VMfailValid 7.
    Controls,
    /// Host-state area: VMfailValid 8.
    HostState,
    /// Guest-state area: VM exit with reason 33.
    GuestState,
}

/// One failed check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryProblem {
    /// Area of the VMCS.
    pub area: CheckArea,
    /// The field checked.
    pub field: u32,
    /// Its value.
    pub value: u64,
    /// What is wrong.
    pub message: &'static str,
}

impl fmt::Display for EntryProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?}: field {:#06x} = {:#x}: {}",
            self.area, self.field, self.value, self.message
        )
    }
}

/// The CR0/CR4 fixed-bit MSR pairs `(fixed0, fixed1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedCrs {
    /// IA32_VMX_CR0_FIXED0/1.
    pub cr0: (u64, u64),
    /// IA32_VMX_CR4_FIXED0/1.
    pub cr4: (u64, u64),
}

fn canonical(addr: u64) -> bool {
    let top = (addr as i64) >> 47;
    top == 0 || top == -1
}

struct Checker<'a, H: VmxHardware + ?Sized> {
    hw: &'a mut H,
    problems: Vec<EntryProblem>,
}

impl<H: VmxHardware + ?Sized> Checker<'_, H> {
    fn read(&mut self, field: u32) -> Result<u64, VmxInstructionError> {
        self.hw.vmread(field)
    }

    fn require(
        &mut self,
        ok: bool,
        area: CheckArea,
        field: u32,
        value: u64,
        message: &'static str,
    ) {
        if !ok {
            self.problems.push(EntryProblem {
                area,
                field,
                value,
                message,
            });
        }
    }
}

/// Runs the checks over the current VMCS and returns every problem found.
pub fn check_current_vmcs<H: VmxHardware + ?Sized>(
    hw: &mut H,
    fixed: &FixedCrs,
) -> Result<Vec<EntryProblem>, VmxInstructionError> {
    let mut c = Checker {
        hw,
        problems: Vec::new(),
    };
    let proc1 = c.read(f::PRIMARY_PROC_BASED_VM_EXEC_CONTROL.encoding())? as u32;
    let proc2 = if proc1 & primary::ACTIVATE_SECONDARY_CONTROLS != 0 {
        c.read(f::SECONDARY_PROC_BASED_VM_EXEC_CONTROL.encoding())? as u32
    } else {
        0
    };
    let exit_ctls = c.read(f::VM_EXIT_CONTROLS.encoding())? as u32;
    let entry_ctls = c.read(f::VM_ENTRY_CONTROLS.encoding())? as u32;
    check_controls(&mut c, proc1, proc2)?;
    check_host(&mut c, fixed, exit_ctls)?;
    check_guest(&mut c, fixed, proc2, entry_ctls)?;
    Ok(c.problems)
}

fn check_controls<H: VmxHardware + ?Sized>(
    c: &mut Checker<'_, H>,
    proc1: u32,
    proc2: u32,
) -> Result<(), VmxInstructionError> {
    use CheckArea::Controls;
    if proc1 & primary::USE_IO_BITMAPS != 0 {
        for field in [f::IO_BITMAP_A.encoding(), f::IO_BITMAP_B.encoding()] {
            let v = c.read(field)?;
            c.require(
                v & 0xFFF == 0,
                Controls,
                field,
                v,
                "I/O bitmap address must be 4-KiB aligned",
            );
        }
    }
    if proc1 & primary::USE_MSR_BITMAPS != 0 {
        let field = f::MSR_BITMAPS.encoding();
        let v = c.read(field)?;
        c.require(
            v & 0xFFF == 0,
            Controls,
            field,
            v,
            "MSR bitmap address must be 4-KiB aligned",
        );
    }
    if proc2 & secondary::ENABLE_EPT != 0 {
        let field = f::EPT_POINTER.encoding();
        let v = c.read(field)?;
        c.require(
            matches!(v & 7, 0 | 6),
            Controls,
            field,
            v,
            "EPTP memory type must be UC (0) or WB (6)",
        );
        c.require(
            (v >> 3) & 7 == 3,
            Controls,
            field,
            v,
            "EPTP page-walk length must be 4 (bits 5:3 = 3)",
        );
        c.require(
            v & 0xF80 == 0,
            Controls,
            field,
            v,
            "EPTP bits 11:7 are reserved",
        );
    }
    if proc2 & secondary::ENABLE_VPID != 0 {
        let field = f::VPID.encoding();
        let v = c.read(field)?;
        c.require(
            v != 0,
            Controls,
            field,
            v,
            "VPID must not be 0 when enable-VPID is set",
        );
    }
    if proc2 & secondary::UNRESTRICTED_GUEST != 0 {
        let field = f::SECONDARY_PROC_BASED_VM_EXEC_CONTROL.encoding();
        c.require(
            proc2 & secondary::ENABLE_EPT != 0,
            Controls,
            field,
            u64::from(proc2),
            "unrestricted guest requires enable EPT",
        );
    }
    Ok(())
}

fn check_host<H: VmxHardware + ?Sized>(
    c: &mut Checker<'_, H>,
    fixed: &FixedCrs,
    exit_ctls: u32,
) -> Result<(), VmxInstructionError> {
    use CheckArea::HostState;
    let field = f::VM_EXIT_CONTROLS.encoding();
    c.require(
        exit_ctls & exit::HOST_ADDRESS_SPACE_SIZE != 0,
        HostState,
        field,
        u64::from(exit_ctls),
        "a 64-bit host needs the host address-space size exit control",
    );
    let cr0 = c.read(f::HOST_CR0.encoding())?;
    c.require(
        violations(cr0, fixed.cr0.0, fixed.cr0.1).is_empty(),
        HostState,
        f::HOST_CR0.encoding(),
        cr0,
        "host CR0 breaks the CR0 fixed bits",
    );
    let cr4 = c.read(f::HOST_CR4.encoding())?;
    c.require(
        violations(cr4, fixed.cr4.0, fixed.cr4.1).is_empty(),
        HostState,
        f::HOST_CR4.encoding(),
        cr4,
        "host CR4 breaks the CR4 fixed bits",
    );
    for field in [
        f::HOST_CS_SELECTOR,
        f::HOST_SS_SELECTOR,
        f::HOST_DS_SELECTOR,
        f::HOST_ES_SELECTOR,
        f::HOST_FS_SELECTOR,
        f::HOST_GS_SELECTOR,
        f::HOST_TR_SELECTOR,
    ] {
        let v = c.read(field.encoding())?;
        c.require(
            v & 7 == 0,
            HostState,
            field.encoding(),
            v,
            "host selector RPL and TI must be 0",
        );
    }
    for field in [f::HOST_CS_SELECTOR, f::HOST_TR_SELECTOR] {
        let v = c.read(field.encoding())?;
        c.require(
            v != 0,
            HostState,
            field.encoding(),
            v,
            "host CS and TR selectors must not be 0",
        );
    }
    for field in [
        f::HOST_RIP,
        f::HOST_FS_BASE,
        f::HOST_GS_BASE,
        f::HOST_TR_BASE,
        f::HOST_GDTR_BASE,
        f::HOST_IDTR_BASE,
    ] {
        let v = c.read(field.encoding())?;
        c.require(
            canonical(v),
            HostState,
            field.encoding(),
            v,
            "host address must be canonical",
        );
    }
    Ok(())
}

fn check_guest<H: VmxHardware + ?Sized>(
    c: &mut Checker<'_, H>,
    fixed: &FixedCrs,
    proc2: u32,
    entry_ctls: u32,
) -> Result<(), VmxInstructionError> {
    use CheckArea::GuestState;
    const PE_PG: u64 = (1 << 0) | (1 << 31);
    let unrestricted = proc2 & secondary::UNRESTRICTED_GUEST != 0;
    let ia32e = entry_ctls & entry::IA32E_MODE_GUEST != 0;
    let cr0 = c.read(f::GUEST_CR0.encoding())?;
    let cr0_fixed0 = if unrestricted {
        fixed.cr0.0 & !PE_PG
    } else {
        fixed.cr0.0
    };
    c.require(
        violations(cr0, cr0_fixed0, fixed.cr0.1).is_empty(),
        GuestState,
        f::GUEST_CR0.encoding(),
        cr0,
        "guest CR0 breaks the CR0 fixed bits",
    );
    let cr4 = c.read(f::GUEST_CR4.encoding())?;
    c.require(
        violations(cr4, fixed.cr4.0, fixed.cr4.1).is_empty(),
        GuestState,
        f::GUEST_CR4.encoding(),
        cr4,
        "guest CR4 breaks the CR4 fixed bits",
    );
    if ia32e {
        c.require(
            cr0 & (1 << 31) != 0,
            GuestState,
            f::GUEST_CR0.encoding(),
            cr0,
            "IA-32e mode guest needs CR0.PG",
        );
        c.require(
            cr4 & (1 << 5) != 0,
            GuestState,
            f::GUEST_CR4.encoding(),
            cr4,
            "IA-32e mode guest needs CR4.PAE",
        );
    }
    if entry_ctls & entry::LOAD_EFER != 0 {
        let efer = c.read(f::GUEST_IA32_EFER.encoding())?;
        let lma = efer & msr::EFER_LMA != 0;
        c.require(
            lma == ia32e,
            GuestState,
            f::GUEST_IA32_EFER.encoding(),
            efer,
            "guest EFER.LMA must equal the IA-32e mode guest entry control",
        );
        if cr0 & (1 << 31) != 0 {
            c.require(
                lma == (efer & msr::EFER_LME != 0),
                GuestState,
                f::GUEST_IA32_EFER.encoding(),
                efer,
                "guest EFER.LME must equal EFER.LMA when paging is on",
            );
        }
    }
    let cs_ar = c.read(f::GUEST_CS_ACCESS_RIGHTS.encoding())?;
    let long_cs = ia32e && cs_ar & (1 << 13) != 0;
    if long_cs {
        c.require(
            cs_ar & (1 << 14) == 0,
            GuestState,
            f::GUEST_CS_ACCESS_RIGHTS.encoding(),
            cs_ar,
            "64-bit CS (L=1) must have D/B=0",
        );
    }
    c.require(
        cs_ar & (1 << 16) == 0,
        GuestState,
        f::GUEST_CS_ACCESS_RIGHTS.encoding(),
        cs_ar,
        "guest CS must be usable",
    );
    let tr_ar = c.read(f::GUEST_TR_ACCESS_RIGHTS.encoding())?;
    let tr_type_ok = if ia32e {
        tr_ar & 0xF == 11
    } else {
        matches!(tr_ar & 0xF, 3 | 11)
    };
    c.require(
        tr_type_ok && tr_ar & (1 << 7) != 0 && tr_ar & (1 << 16) == 0,
        GuestState,
        f::GUEST_TR_ACCESS_RIGHTS.encoding(),
        tr_ar,
        "guest TR must be a present, usable busy TSS (type 11 in IA-32e mode)",
    );
    let ldtr_ar = c.read(f::GUEST_LDTR_ACCESS_RIGHTS.encoding())?;
    c.require(
        ldtr_ar & (1 << 16) != 0 || (ldtr_ar & 0xF == 2 && ldtr_ar & (1 << 7) != 0),
        GuestState,
        f::GUEST_LDTR_ACCESS_RIGHTS.encoding(),
        ldtr_ar,
        "guest LDTR must be unusable or a present LDT (type 2)",
    );
    let rflags = c.read(f::GUEST_RFLAGS.encoding())?;
    c.require(
        rflags & 2 != 0 && rflags & 0xFFFF_FFFF_FFC0_8028 == 0,
        GuestState,
        f::GUEST_RFLAGS.encoding(),
        rflags,
        "guest RFLAGS bit 1 must be 1 and bits 63:22, 15, 5, 3 must be 0",
    );
    let rip = c.read(f::GUEST_RIP.encoding())?;
    c.require(
        !long_cs || canonical(rip),
        GuestState,
        f::GUEST_RIP.encoding(),
        rip,
        "guest RIP must be canonical with a 64-bit CS",
    );
    let activity = c.read(f::GUEST_ACTIVITY_STATE.encoding())?;
    c.require(
        activity <= 3,
        GuestState,
        f::GUEST_ACTIVITY_STATE.encoding(),
        activity,
        "guest activity state must be 0..=3",
    );
    let link = c.read(f::VMCS_LINK_POINTER.encoding())?;
    c.require(
        link == u64::MAX,
        GuestState,
        f::VMCS_LINK_POINTER.encoding(),
        link,
        "VMCS link pointer must be all ones without VMCS shadowing",
    );
    Ok(())
}

#[cfg(test)]
#[path = "entry_checks_tests.rs"]
mod tests;
