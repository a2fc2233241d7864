//! Writing a complete VMCS for a 64-bit guest over [`VmxHardware`]: controls adjusted against
//! the capability MSRs, host state, and a flat long-mode guest state (SDM Vol. 3, 25.4-25.5 and
//! the entry checks of 27.3.1).

use crate::capabilities::VmxBasic;
use crate::controls::{self, adjust_for, ControlError, ControlKind};
use crate::fields::{self as f, Field16, Field32, Field64, FieldNatural};
use crate::fixed_bits::apply_fixed;
use crate::hw::{VmxHardware, VmxInstructionError};
use crate::msr;
use core::fmt;

/// Access rights of a 64-bit ring-0 code segment (type 0xB, S, P, L, G).
pub const ACCESS_CODE64: u32 = 0xA09B;
/// Access rights of a ring-0 read/write data segment (type 3, S, P, D/B, G).
pub const ACCESS_DATA: u32 = 0xC093;
/// Access rights of a busy 64-bit TSS (type 0xB, P).
pub const ACCESS_TSS64_BUSY: u32 = 0x008B;
/// Access rights of an unusable segment (bit 16).
pub const ACCESS_UNUSABLE: u32 = 1 << 16;

const CR0_PE: u64 = 1 << 0;
const CR0_NE: u64 = 1 << 5;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;

/// Why writing the VMCS failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupError {
    /// A requested control bit is not supported.
    Control(ControlError),
    /// A VMWRITE failed.
    Write {
        /// The field being written.
        field: u32,
        /// The failure.
        error: VmxInstructionError,
    },
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Control(e) => write!(f, "{e}"),
            Self::Write { field, error } => {
                write!(f, "VMWRITE of field {field:#06x} failed: {error}")
            }
        }
    }
}

impl From<ControlError> for SetupError {
    fn from(e: ControlError) -> Self {
        Self::Control(e)
    }
}

fn w16<H: VmxHardware + ?Sized>(hw: &mut H, field: Field16, v: u16) -> Result<(), SetupError> {
    field.write(hw, v).map_err(|error| SetupError::Write {
        field: field.encoding(),
        error,
    })
}
fn w32<H: VmxHardware + ?Sized>(hw: &mut H, field: Field32, v: u32) -> Result<(), SetupError> {
    field.write(hw, v).map_err(|error| SetupError::Write {
        field: field.encoding(),
        error,
    })
}
fn w64<H: VmxHardware + ?Sized>(hw: &mut H, field: Field64, v: u64) -> Result<(), SetupError> {
    field.write(hw, v).map_err(|error| SetupError::Write {
        field: field.encoding(),
        error,
    })
}
fn wn<H: VmxHardware + ?Sized>(hw: &mut H, field: FieldNatural, v: u64) -> Result<(), SetupError> {
    field.write(hw, v).map_err(|error| SetupError::Write {
        field: field.encoding(),
        error,
    })
}

/// Control bits to request; the bits the CPU requires are added by [`write_controls`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ControlRequest {
    /// Pin-based controls.
    pub pin: u32,
    /// Primary processor-based controls (ACTIVATE_SECONDARY is added when `secondary != 0`).
    pub primary: u32,
    /// Secondary processor-based controls.
    pub secondary: u32,
    /// VM-exit controls.
    pub exit: u32,
    /// VM-entry controls.
    pub entry: u32,
}

impl ControlRequest {
    /// What a 64-bit guest under EPT with MSR/I/O bitmaps needs: HLT exiting, I/O and MSR
    /// bitmaps, EPT, VPID, unrestricted-guest off, a 64-bit host, EFER/PAT load and save. CR8 and
    /// debug-register accesses exit too: without them a guest's MOV to CR8 sets the *host's* task
    /// priority and DR0-DR3/DR6 (not in the VMCS) would pass from one guest to the next. MWAIT and
    /// MONITOR exit (a deep C-state stops the preemption timer on real hardware: the guest would
    /// keep the CPU), RDPMC (the host's performance counters) and WBINVD (a flush of every cache
    /// the host and the other guests share).
    pub fn long_mode_guest_with_ept() -> Self {
        Self {
            pin: controls::pin::EXTERNAL_INTERRUPT_EXITING | controls::pin::NMI_EXITING,
            primary: controls::primary::HLT_EXITING
                | controls::primary::USE_IO_BITMAPS
                | controls::primary::USE_MSR_BITMAPS
                | controls::primary::CR8_LOAD_EXITING
                | controls::primary::CR8_STORE_EXITING
                | controls::primary::MOV_DR_EXITING
                | controls::primary::MWAIT_EXITING
                | controls::primary::MONITOR_EXITING
                | controls::primary::RDPMC_EXITING,
            secondary: controls::secondary::ENABLE_EPT
                | controls::secondary::ENABLE_VPID
                | controls::secondary::WBINVD_EXITING,
            exit: controls::exit::HOST_ADDRESS_SPACE_SIZE
                | controls::exit::ACK_INTERRUPT_ON_EXIT
                | controls::exit::SAVE_EFER
                | controls::exit::LOAD_EFER
                | controls::exit::SAVE_PAT
                | controls::exit::LOAD_PAT,
            entry: controls::entry::IA32E_MODE_GUEST
                | controls::entry::LOAD_EFER
                | controls::entry::LOAD_PAT,
        }
    }
}

/// Adjusts every control against the CPU (TRUE MSRs when available) and writes the five fields.
/// Returns the values written.
pub fn write_controls<H: VmxHardware + ?Sized>(
    hw: &mut H,
    basic: &VmxBasic,
    request: ControlRequest,
) -> Result<ControlRequest, SetupError> {
    let mut primary = request.primary;
    if request.secondary != 0 {
        primary |= controls::primary::ACTIVATE_SECONDARY_CONTROLS;
    }
    let written = ControlRequest {
        pin: adjust_for(hw, basic, ControlKind::PinBased, request.pin)?,
        primary: adjust_for(hw, basic, ControlKind::PrimaryProcBased, primary)?,
        secondary: if request.secondary != 0 {
            adjust_for(
                hw,
                basic,
                ControlKind::SecondaryProcBased,
                request.secondary,
            )?
        } else {
            0
        },
        exit: adjust_for(hw, basic, ControlKind::Exit, request.exit)?,
        entry: adjust_for(hw, basic, ControlKind::Entry, request.entry)?,
    };
    w32(hw, f::PIN_BASED_VM_EXEC_CONTROL, written.pin)?;
    w32(hw, f::PRIMARY_PROC_BASED_VM_EXEC_CONTROL, written.primary)?;
    if written.primary & controls::primary::ACTIVATE_SECONDARY_CONTROLS != 0 {
        w32(
            hw,
            f::SECONDARY_PROC_BASED_VM_EXEC_CONTROL,
            written.secondary,
        )?;
    }
    w32(hw, f::VM_EXIT_CONTROLS, written.exit)?;
    w32(hw, f::VM_ENTRY_CONTROLS, written.entry)?;
    Ok(written)
}

/// The host state restored on every VM exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostState {
    /// CR0.
    pub cr0: u64,
    /// CR3.
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// Code selector (RPL and TI must be 0).
    pub cs: u16,
    /// Stack selector.
    pub ss: u16,
    /// DS, ES, FS, GS selector (0 is allowed).
    pub data: u16,
    /// Task register selector (must not be 0).
    pub tr: u16,
    /// FS base.
    pub fs_base: u64,
    /// GS base.
    pub gs_base: u64,
    /// TSS base.
    pub tr_base: u64,
    /// GDT base.
    pub gdtr_base: u64,
    /// IDT base.
    pub idtr_base: u64,
    /// IA32_EFER.
    pub efer: u64,
    /// IA32_PAT.
    pub pat: u64,
    /// RSP on exit.
    pub rsp: u64,
    /// RIP on exit (the VM-exit handler entry).
    pub rip: u64,
}

/// Writes the host-state area.
pub fn write_host_state<H: VmxHardware + ?Sized>(
    hw: &mut H,
    host: &HostState,
) -> Result<(), SetupError> {
    w16(hw, f::HOST_CS_SELECTOR, host.cs & !7)?;
    w16(hw, f::HOST_SS_SELECTOR, host.ss & !7)?;
    for field in [
        f::HOST_DS_SELECTOR,
        f::HOST_ES_SELECTOR,
        f::HOST_FS_SELECTOR,
        f::HOST_GS_SELECTOR,
    ] {
        w16(hw, field, host.data & !7)?;
    }
    w16(hw, f::HOST_TR_SELECTOR, host.tr & !7)?;
    wn(hw, f::HOST_CR0, host.cr0)?;
    wn(hw, f::HOST_CR3, host.cr3)?;
    wn(hw, f::HOST_CR4, host.cr4)?;
    wn(hw, f::HOST_FS_BASE, host.fs_base)?;
    wn(hw, f::HOST_GS_BASE, host.gs_base)?;
    wn(hw, f::HOST_TR_BASE, host.tr_base)?;
    wn(hw, f::HOST_GDTR_BASE, host.gdtr_base)?;
    wn(hw, f::HOST_IDTR_BASE, host.idtr_base)?;
    w32(hw, f::HOST_IA32_SYSENTER_CS, 0)?;
    wn(hw, f::HOST_IA32_SYSENTER_ESP, 0)?;
    wn(hw, f::HOST_IA32_SYSENTER_EIP, 0)?;
    w64(hw, f::HOST_IA32_EFER, host.efer)?;
    w64(hw, f::HOST_IA32_PAT, host.pat)?;
    wn(hw, f::HOST_RSP, host.rsp)?;
    wn(hw, f::HOST_RIP, host.rip)
}

/// A flat 64-bit guest: paging on, ring 0, code selector 0x08, data 0x10, TSS 0x18.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LongModeGuest {
    /// Entry point.
    pub rip: u64,
    /// Initial stack pointer.
    pub rsp: u64,
    /// Guest-physical address of the guest PML4.
    pub cr3: u64,
    /// Guest GDT base and limit.
    pub gdtr: (u64, u32),
    /// Guest IDT base and limit.
    pub idtr: (u64, u32),
    /// Guest TSS base (limit 0x67).
    pub tr_base: u64,
    /// IA32_PAT for the guest.
    pub pat: u64,
}

/// CR0/CR4 the guest runs with, and what it is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestControlRegisters {
    /// CR0 written to the guest-state area (fixed bits applied).
    pub cr0: u64,
    /// CR4 written to the guest-state area (fixed bits applied, VMXE included).
    pub cr4: u64,
    /// CR4 read shadow: the guest does not see VMXE.
    pub cr4_shadow: u64,
}

/// Computes guest CR0/CR4 from the fixed-bit MSR pairs `(fixed0, fixed1)`.
pub fn guest_control_registers(
    cr0_fixed: (u64, u64),
    cr4_fixed: (u64, u64),
) -> GuestControlRegisters {
    let cr0 = apply_fixed(CR0_PE | CR0_NE | CR0_PG, cr0_fixed.0, cr0_fixed.1);
    let cr4 = apply_fixed(CR4_PAE | msr::CR4_VMXE, cr4_fixed.0, cr4_fixed.1);
    GuestControlRegisters {
        cr0,
        cr4,
        cr4_shadow: cr4 & !msr::CR4_VMXE,
    }
}

/// CR0 or CR4 as the guest reads it with MOV from CR (Intel SDM, VMX non-root operation): the bits
/// it owns (clear in the guest/host mask) from the guest-state field, the host's (set in the mask)
/// from the read shadow.
pub fn guest_view_of_cr(actual: u64, guest_host_mask: u64, read_shadow: u64) -> u64 {
    (actual & !guest_host_mask) | (read_shadow & guest_host_mask)
}

/// Writes the guest-state area for `guest`, with CR masks so the guest owns neither VMXE nor
/// the fixed CR0 bits. Requires the IA32E_MODE_GUEST and LOAD_EFER entry controls.
pub fn write_long_mode_guest<H: VmxHardware + ?Sized>(
    hw: &mut H,
    guest: &LongModeGuest,
    crs: &GuestControlRegisters,
    cr0_fixed0: u64,
) -> Result<(), SetupError> {
    let segments: [(Field16, Field32, Field32, FieldNatural, u16, u32); 6] = [
        (
            f::GUEST_CS_SELECTOR,
            f::GUEST_CS_LIMIT,
            f::GUEST_CS_ACCESS_RIGHTS,
            f::GUEST_CS_BASE,
            0x08,
            ACCESS_CODE64,
        ),
        (
            f::GUEST_SS_SELECTOR,
            f::GUEST_SS_LIMIT,
            f::GUEST_SS_ACCESS_RIGHTS,
            f::GUEST_SS_BASE,
            0x10,
            ACCESS_DATA,
        ),
        (
            f::GUEST_DS_SELECTOR,
            f::GUEST_DS_LIMIT,
            f::GUEST_DS_ACCESS_RIGHTS,
            f::GUEST_DS_BASE,
            0x10,
            ACCESS_DATA,
        ),
        (
            f::GUEST_ES_SELECTOR,
            f::GUEST_ES_LIMIT,
            f::GUEST_ES_ACCESS_RIGHTS,
            f::GUEST_ES_BASE,
            0x10,
            ACCESS_DATA,
        ),
        (
            f::GUEST_FS_SELECTOR,
            f::GUEST_FS_LIMIT,
            f::GUEST_FS_ACCESS_RIGHTS,
            f::GUEST_FS_BASE,
            0x10,
            ACCESS_DATA,
        ),
        (
            f::GUEST_GS_SELECTOR,
            f::GUEST_GS_LIMIT,
            f::GUEST_GS_ACCESS_RIGHTS,
            f::GUEST_GS_BASE,
            0x10,
            ACCESS_DATA,
        ),
    ];
    for (selector, limit, rights, base, value, access) in segments {
        w16(hw, selector, value)?;
        w32(hw, limit, 0xFFFF_FFFF)?;
        w32(hw, rights, access)?;
        wn(hw, base, 0)?;
    }
    w16(hw, f::GUEST_TR_SELECTOR, 0x18)?;
    w32(hw, f::GUEST_TR_LIMIT, 0x67)?;
    w32(hw, f::GUEST_TR_ACCESS_RIGHTS, ACCESS_TSS64_BUSY)?;
    wn(hw, f::GUEST_TR_BASE, guest.tr_base)?;
    w16(hw, f::GUEST_LDTR_SELECTOR, 0)?;
    w32(hw, f::GUEST_LDTR_LIMIT, 0)?;
    w32(hw, f::GUEST_LDTR_ACCESS_RIGHTS, ACCESS_UNUSABLE)?;
    wn(hw, f::GUEST_LDTR_BASE, 0)?;
    wn(hw, f::GUEST_GDTR_BASE, guest.gdtr.0)?;
    w32(hw, f::GUEST_GDTR_LIMIT, guest.gdtr.1)?;
    wn(hw, f::GUEST_IDTR_BASE, guest.idtr.0)?;
    w32(hw, f::GUEST_IDTR_LIMIT, guest.idtr.1)?;

    wn(hw, f::GUEST_CR0, crs.cr0)?;
    wn(hw, f::GUEST_CR3, guest.cr3)?;
    wn(hw, f::GUEST_CR4, crs.cr4)?;
    wn(hw, f::CR0_GUEST_HOST_MASK, cr0_fixed0)?;
    wn(hw, f::CR0_READ_SHADOW, crs.cr0)?;
    // Every bit but the guest's own (an allow-list): a change of any other exits.
    wn(hw, f::CR4_GUEST_HOST_MASK, msr::CR4_HOST_OWNED)?;
    wn(hw, f::CR4_READ_SHADOW, crs.cr4_shadow)?;
    wn(hw, f::GUEST_DR7, 0x400)?;
    wn(hw, f::GUEST_RSP, guest.rsp)?;
    wn(hw, f::GUEST_RIP, guest.rip)?;
    wn(hw, f::GUEST_RFLAGS, 0x2)?;
    wn(hw, f::GUEST_PENDING_DEBUG_EXCEPTIONS, 0)?;
    w32(hw, f::GUEST_INTERRUPTIBILITY_STATE, 0)?;
    w32(hw, f::GUEST_ACTIVITY_STATE, 0)?;
    w32(hw, f::GUEST_IA32_SYSENTER_CS, 0)?;
    wn(hw, f::GUEST_IA32_SYSENTER_ESP, 0)?;
    wn(hw, f::GUEST_IA32_SYSENTER_EIP, 0)?;
    w64(hw, f::GUEST_IA32_DEBUGCTL, 0)?;
    w64(
        hw,
        f::GUEST_IA32_EFER,
        msr::EFER_LME | msr::EFER_LMA | msr::EFER_NXE,
    )?;
    w64(hw, f::GUEST_IA32_PAT, guest.pat)?;
    w64(hw, f::VMCS_LINK_POINTER, u64::MAX)
}

/// Physical addresses and tags the execution controls point to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecutionPointers {
    /// EPT pointer (see `ept::Ept::eptp`).
    pub eptp: u64,
    /// VPID (must not be 0 when ENABLE_VPID is set).
    pub vpid: u16,
    /// I/O bitmap A page (ports 0..=0x7FFF).
    pub io_bitmap_a: u64,
    /// I/O bitmap B page (ports 0x8000..=0xFFFF).
    pub io_bitmap_b: u64,
    /// MSR bitmap page.
    pub msr_bitmap: u64,
}

/// Writes the pointers the written controls use, plus an empty exception bitmap and no CR3 targets.
pub fn write_execution_pointers<H: VmxHardware + ?Sized>(
    hw: &mut H,
    written: &ControlRequest,
    pointers: &ExecutionPointers,
) -> Result<(), SetupError> {
    if written.secondary & controls::secondary::ENABLE_EPT != 0 {
        w64(hw, f::EPT_POINTER, pointers.eptp)?;
    }
    if written.secondary & controls::secondary::ENABLE_VPID != 0 {
        w16(hw, f::VPID, pointers.vpid)?;
    }
    if written.primary & controls::primary::USE_IO_BITMAPS != 0 {
        w64(hw, f::IO_BITMAP_A, pointers.io_bitmap_a)?;
        w64(hw, f::IO_BITMAP_B, pointers.io_bitmap_b)?;
    }
    if written.primary & controls::primary::USE_MSR_BITMAPS != 0 {
        w64(hw, f::MSR_BITMAPS, pointers.msr_bitmap)?;
    }
    w32(hw, f::EXCEPTION_BITMAP, 0)?;
    w32(hw, f::CR3_TARGET_COUNT, 0)?;
    w32(hw, f::VM_EXIT_MSR_STORE_COUNT, 0)?;
    w32(hw, f::VM_EXIT_MSR_LOAD_COUNT, 0)?;
    w32(hw, f::VM_ENTRY_MSR_LOAD_COUNT, 0)?;
    w32(hw, f::VM_ENTRY_INTERRUPTION_INFO, 0)
}

#[cfg(test)]
#[path = "vmcs_setup_tests.rs"]
mod tests;
