//! Time slices for SVM guests. SVM has no preemption timer, so the local APIC timer runs periodically and
//! the VMCB intercepts physical interrupts (INTR, with V_INTR_MASKING): a tick while a guest runs is a
//! #VMEXIT, which the backend reports as the end of the slice.
//!
//! The hypervisor otherwise runs with interrupts off. Only around VMRUN are they on: the entry code clears
//! GIF before VMRUN, so the host IF saved by VMRUN is 1 (physical interrupts exit the guest), and after
//! #VMEXIT it sets GIF again, which delivers the pending tick to the host; its handler only writes the EOI.
//! A tick that comes while the hypervisor works (interrupts off) stays pending and is taken by the host at
//! the STI before the next VMRUN, so that slice runs to the next tick: each slice is still bounded by the
//! tick period. The legacy PICs are masked, so the tick is the only interrupt source.
//!
//! The IDT of `hw::idt` has the 32 exception gates only; [`SliceTimer::start`] loads a copy of it with
//! two more gates: the tick (vector 32) and the APIC spurious vector (47).

use crate::idt_gate::interrupt_gate;
use core::arch::global_asm;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::instructions::tables::{lidt, sidt};
use x86_64::registers::model_specific::Msr;
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

const TICK_VECTOR: usize = 32;
const SPURIOUS_VECTOR: usize = 47;
const GATES: usize = 48;
const EXCEPTION_GATES: usize = 32;

const IA32_APIC_BASE: u32 = 0x1B;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_X2APIC: u64 = 1 << 10;
/// CPUID.1:EDX\[9\]: on-chip APIC.
const CPUID1_EDX_APIC: u32 = 1 << 9;

const REG_TPR: u64 = 0x80;
const REG_EOI: u64 = 0xB0;
const REG_SVR: u64 = 0xF0;
const REG_LVT_TIMER: u64 = 0x320;
const REG_INITIAL_COUNT: u64 = 0x380;
const REG_DIVIDE: u64 = 0x3E0;
const SVR_APIC_ENABLE: u32 = 1 << 8;
const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 1 << 17;
/// Divide configuration 0b0011: bus clock / 16.
const DIVIDE_BY_16: u32 = 0b0011;
/// Timer counts a slice: at the 1 GHz APIC bus clock QEMU emulates, 625 000 x 16 ns = 10 ms (on hardware
/// with a 100-200 MHz bus clock, 50-100 ms).
const SLICE_COUNT: u32 = 625_000;

/// Address of the xAPIC EOI register, read by the tick handler.
#[no_mangle]
static SVM_SLICE_EOI: AtomicU64 = AtomicU64::new(0);

global_asm!(
    ".section .text.svm_slice_stubs, \"ax\"",
    ".global svm_slice_tick",
    "svm_slice_tick:",
    "push rax",
    "mov rax, qword ptr [rip + SVM_SLICE_EOI]",
    "mov dword ptr [rax], 0",
    "pop rax",
    "iretq",
    ".global svm_slice_spurious",
    "svm_slice_spurious:",
    "iretq",
);

extern "C" {
    fn svm_slice_tick();
    fn svm_slice_spurious();
}

#[repr(C, align(16))]
struct Idt(UnsafeCell<[[u64; 2]; GATES]>);

// SAFETY: written once by `start` on the single boot CPU before `lidt`, read only by the CPU afterwards.
unsafe impl Sync for Idt {}

static IDT: Idt = Idt(UnsafeCell::new([[0; 2]; GATES]));

/// Why guests get no time slices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoTimer {
    NoApic,
    ApicDisabled,
    /// x2APIC mode (the tick handler writes the xAPIC EOI register).
    X2Apic,
    /// The current IDT is not the 32-gate exception IDT.
    UnexpectedIdt,
}

impl core::fmt::Display for NoTimer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::NoApic => "no local APIC (CPUID.1:EDX[9] clear)",
            Self::ApicDisabled => "the local APIC is disabled (IA32_APIC_BASE[11] clear)",
            Self::X2Apic => "the local APIC is in x2APIC mode",
            Self::UnexpectedIdt => "the IDT is not the 32-gate exception IDT",
        })
    }
}

/// The running slice timer (a handle: the timer itself is the boot CPU's local APIC).
#[derive(Debug, Clone, Copy)]
pub struct SliceTimer {
    apic: u64,
}

fn write_reg(apic: u64, reg: u64, value: u32) {
    // SAFETY: `apic` is the xAPIC page (identity-mapped: the map covers the first 4 GiB and beyond) and
    // `reg` one of its 32-bit registers.
    unsafe { core::ptr::write_volatile((apic + reg) as *mut u32, value) };
}

impl SliceTimer {
    /// Loads the extended IDT and starts the periodic tick; `physical_address_bits` bounds the APIC base.
    pub fn start(physical_address_bits: u8) -> Result<Self, NoTimer> {
        let edx = core::arch::x86_64::__cpuid(1).edx;
        if edx & CPUID1_EDX_APIC == 0 {
            return Err(NoTimer::NoApic);
        }
        // SAFETY: IA32_APIC_BASE exists when CPUID reports an APIC; reading it has no side effects.
        let base = unsafe { Msr::new(IA32_APIC_BASE).read() };
        if base & APIC_BASE_ENABLE == 0 {
            return Err(NoTimer::ApicDisabled);
        }
        if base & APIC_BASE_X2APIC != 0 {
            return Err(NoTimer::X2Apic);
        }
        let width = physical_address_bits.clamp(32, 52);
        let apic = base & !0xFFF & ((1u64 << width) - 1);
        let current = sidt();
        if usize::from(current.limit) + 1 != EXCEPTION_GATES * 16 {
            return Err(NoTimer::UnexpectedIdt);
        }
        let mut cs: u16;
        // SAFETY: reading CS has no side effects.
        unsafe {
            core::arch::asm!("mov {0:x}, cs", out(reg) cs, options(nomem, nostack, preserves_flags))
        };
        // SAFETY: the boot CPU runs with interrupts off and this IDT is not loaded yet: no one else reads or
        // writes it. The current IDT holds EXCEPTION_GATES gates (checked by its limit above) in identity-
        // mapped static memory.
        unsafe {
            let gates = &mut *IDT.0.get();
            let old = current.base.as_u64() as *const [u64; 2];
            for (i, gate) in gates.iter_mut().take(EXCEPTION_GATES).enumerate() {
                *gate = old.add(i).read();
            }
            gates[TICK_VECTOR] = interrupt_gate(svm_slice_tick as *const () as u64, cs, 0);
            gates[SPURIOUS_VECTOR] = interrupt_gate(svm_slice_spurious as *const () as u64, cs, 0);
            lidt(&DescriptorTablePointer {
                limit: (GATES * 16 - 1) as u16,
                base: VirtAddr::new(IDT.0.get() as u64),
            });
        }
        SVM_SLICE_EOI.store(apic + REG_EOI, Ordering::SeqCst);
        write_reg(apic, REG_TPR, 0);
        write_reg(apic, REG_SVR, SVR_APIC_ENABLE | SPURIOUS_VECTOR as u32);
        write_reg(apic, REG_DIVIDE, DIVIDE_BY_16);
        write_reg(apic, REG_LVT_TIMER, LVT_PERIODIC | TICK_VECTOR as u32);
        write_reg(apic, REG_INITIAL_COUNT, SLICE_COUNT);
        Ok(Self { apic })
    }

    /// Timer counts per slice, and the divider, for the log.
    pub fn describe(&self) -> (u32, u32) {
        (SLICE_COUNT, 16)
    }

    /// Runs `enter` (the VMRUN) with interrupts on, so that a tick exits the guest, then turns them off.
    pub fn with_interrupts<R>(self, enter: impl FnOnce() -> R) -> R {
        x86_64::instructions::interrupts::enable();
        let result = enter();
        x86_64::instructions::interrupts::disable();
        result
    }

    /// Stops the tick (the timer masked, its count zero).
    pub fn stop(self) {
        write_reg(self.apic, REG_LVT_TIMER, LVT_MASKED | TICK_VECTOR as u32);
        write_reg(self.apic, REG_INITIAL_COUNT, 0);
    }
}
