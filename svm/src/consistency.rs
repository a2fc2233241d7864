//! Why VMRUN would fail with VMEXIT_INVALID (exit code -1): the canonicalization and
//! consistency checks of APM Vol. 2, 15.5.1, evaluated on a VMCB before (or after) VMRUN.

use crate::msr::{CR0_CD, CR0_NW, CR0_PE, CR0_PG, CR4_PAE, EFER_LMA, EFER_LME, EFER_SVME};
use crate::vmcb::control::{self, Intercept};
use crate::vmcb::save::{self, SegmentRegister};
use crate::vmcb::Vmcb;
use alloc::vec::Vec;
use core::fmt;

/// Size of the I/O permission map in bytes.
pub const IOPM_BYTES: u64 = 3 * 4096;
/// Size of the MSR permission map in bytes.
pub const MSRPM_BYTES: u64 = 2 * 4096;

/// EFER bits that must be zero on every implementation: 63:22 and 9.
const EFER_MBZ: u64 = !((1u64 << 22) - 1) | (1 << 9);

/// What the checks need to know about the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuLimits {
    /// Physical-address width (CPUID 8000_0008h EAX\[7:0\]).
    pub max_physical_address_bits: u8,
    /// Long mode (CPUID 8000_0001h EDX\[29\]).
    pub long_mode: bool,
}

impl Default for CpuLimits {
    fn default() -> Self {
        Self {
            max_physical_address_bits: 48,
            long_mode: true,
        }
    }
}

/// One failed VMRUN check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Guest EFER.SVME is zero.
    EferSvmeClear,
    /// CR0.CD is zero and CR0.NW is set.
    Cr0NwWithoutCd,
    /// CR0\[63:32\] is not zero.
    Cr0HighBits(u64),
    /// CR3 has bits set above the physical-address width (long mode: bits 63:52 MBZ).
    Cr3ReservedBits(u64),
    /// CR4\[63:32\] is not zero.
    Cr4HighBits(u64),
    /// DR6\[63:32\] is not zero.
    Dr6HighBits(u64),
    /// DR7\[63:32\] is not zero.
    Dr7HighBits(u64),
    /// An EFER must-be-zero bit is set.
    EferReservedBits(u64),
    /// EFER.LME or LMA set on a CPU without long mode.
    LongModeUnsupported,
    /// EFER.LME and CR0.PG set with CR4.PAE clear.
    LongModeWithoutPae,
    /// EFER.LME and CR0.PG set with CR0.PE clear.
    LongModeWithoutProtectedMode,
    /// EFER.LME, CR0.PG, CR4.PAE, CS.L and CS.D all set.
    CodeSegmentLongAndDefaultBig,
    /// The VMRUN intercept is clear.
    VmrunNotIntercepted,
    /// IOPM_BASE_PA + 12 KiB reaches beyond the physical-address width.
    IopmOutOfRange(u64),
    /// MSRPM_BASE_PA + 8 KiB reaches beyond the physical-address width.
    MsrpmOutOfRange(u64),
    /// EVENTINJ is valid with a reserved type or an exception of vector 2 (NMI).
    IllegalEventInjection(u64),
    /// The guest ASID is zero (the host's ASID).
    AsidZero,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EferSvmeClear => f.write_str("guest EFER.SVME is 0"),
            Self::Cr0NwWithoutCd => f.write_str("CR0.NW=1 with CR0.CD=0"),
            Self::Cr0HighBits(v) => write!(f, "CR0[63:32] not zero (CR0={v:#x})"),
            Self::Cr3ReservedBits(v) => write!(f, "CR3 has must-be-zero bits set ({v:#x})"),
            Self::Cr4HighBits(v) => write!(f, "CR4[63:32] not zero (CR4={v:#x})"),
            Self::Dr6HighBits(v) => write!(f, "DR6[63:32] not zero ({v:#x})"),
            Self::Dr7HighBits(v) => write!(f, "DR7[63:32] not zero ({v:#x})"),
            Self::EferReservedBits(v) => write!(f, "EFER has must-be-zero bits set ({v:#x})"),
            Self::LongModeUnsupported => f.write_str("EFER.LME/LMA set but no long mode"),
            Self::LongModeWithoutPae => f.write_str("EFER.LME and CR0.PG set with CR4.PAE=0"),
            Self::LongModeWithoutProtectedMode => {
                f.write_str("EFER.LME and CR0.PG set with CR0.PE=0")
            }
            Self::CodeSegmentLongAndDefaultBig => f.write_str("long mode with CS.L=1 and CS.D=1"),
            Self::VmrunNotIntercepted => f.write_str("VMRUN intercept bit clear"),
            Self::IopmOutOfRange(v) => write!(f, "IOPM at {v:#x} extends past physical memory"),
            Self::MsrpmOutOfRange(v) => write!(f, "MSRPM at {v:#x} extends past physical memory"),
            Self::IllegalEventInjection(v) => write!(f, "illegal EVENTINJ {v:#x}"),
            Self::AsidZero => f.write_str("guest ASID is 0"),
        }
    }
}

fn high_half(value: u64) -> bool {
    value >> 32 != 0
}

fn table_out_of_range(base: u64, bytes: u64, width: u8) -> bool {
    let base = base & !0xFFF;
    let limit = if width >= 64 { u64::MAX } else { 1u64 << width };
    base.checked_add(bytes).is_none_or(|end| end > limit)
}

/// True when a valid EVENTINJ would be refused: type 1 or 5..7, or an exception with vector 2.
fn illegal_event(eventinj: u64) -> bool {
    if eventinj & (1 << 31) == 0 {
        return false;
    }
    let vector = eventinj & 0xFF;
    let ty = (eventinj >> 8) & 7;
    matches!(ty, 1 | 5..=7) || (ty == 3 && vector == 2)
}

/// Runs every check on `vmcb` and returns the failures (empty: VMRUN should not fail them).
pub fn check_vmrun_consistency(vmcb: &Vmcb, cpu: CpuLimits) -> Vec<Violation> {
    let mut out = Vec::new();
    let efer = vmcb.get64(save::EFER);
    let cr0 = vmcb.get64(save::CR0);
    let cr3 = vmcb.get64(save::CR3);
    let cr4 = vmcb.get64(save::CR4);
    let dr6 = vmcb.get64(save::DR6);
    let dr7 = vmcb.get64(save::DR7);
    let long_mode_paging = efer & EFER_LME != 0 && cr0 & CR0_PG != 0;

    if efer & EFER_SVME == 0 {
        out.push(Violation::EferSvmeClear);
    }
    if cr0 & CR0_CD == 0 && cr0 & CR0_NW != 0 {
        out.push(Violation::Cr0NwWithoutCd);
    }
    if high_half(cr0) {
        out.push(Violation::Cr0HighBits(cr0));
    }
    let cr3_limit_bits = if long_mode_paging {
        cpu.max_physical_address_bits.min(52)
    } else {
        32
    };
    if cr3 >> cr3_limit_bits != 0 {
        out.push(Violation::Cr3ReservedBits(cr3));
    }
    if high_half(cr4) {
        out.push(Violation::Cr4HighBits(cr4));
    }
    if high_half(dr6) {
        out.push(Violation::Dr6HighBits(dr6));
    }
    if high_half(dr7) {
        out.push(Violation::Dr7HighBits(dr7));
    }
    if efer & EFER_MBZ != 0 {
        out.push(Violation::EferReservedBits(efer));
    }
    if efer & (EFER_LME | EFER_LMA) != 0 && !cpu.long_mode {
        out.push(Violation::LongModeUnsupported);
    }
    if long_mode_paging && cr4 & CR4_PAE == 0 {
        out.push(Violation::LongModeWithoutPae);
    }
    if long_mode_paging && cr0 & CR0_PE == 0 {
        out.push(Violation::LongModeWithoutProtectedMode);
    }
    let cs = vmcb.segment(SegmentRegister::Cs).attrib;
    if long_mode_paging && cr4 & CR4_PAE != 0 && cs.long() && cs.default_big() {
        out.push(Violation::CodeSegmentLongAndDefaultBig);
    }
    if !vmcb.intercepts(Intercept::VMRUN) {
        out.push(Violation::VmrunNotIntercepted);
    }
    let width = cpu.max_physical_address_bits;
    let iopm = vmcb.get64(control::IOPM_BASE_PA);
    if table_out_of_range(iopm, IOPM_BYTES, width) {
        out.push(Violation::IopmOutOfRange(iopm));
    }
    let msrpm = vmcb.get64(control::MSRPM_BASE_PA);
    if table_out_of_range(msrpm, MSRPM_BYTES, width) {
        out.push(Violation::MsrpmOutOfRange(msrpm));
    }
    let eventinj = vmcb.get64(control::EVENTINJ);
    if illegal_event(eventinj) {
        out.push(Violation::IllegalEventInjection(eventinj));
    }
    if vmcb.get32(control::GUEST_ASID) == 0 {
        out.push(Violation::AsidZero);
    }
    out
}
