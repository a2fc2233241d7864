//! IDT with one stub per exception vector (0..32). Every exception is fatal at this stage: the handler prints
//! `EXCEPTION vector=<n> (<#XX>) error=<hex> rip=<hex>`, the saved registers, and ends the run with
//! `PROBEVISOR-DONE status=exception`. #DF runs on its own IST stack.

use super::{exit, gdt};
use crate::exception::ExceptionReport;
use crate::idt_gate::interrupt_gate;
use crate::status::RunStatus;
use core::arch::global_asm;
use core::cell::UnsafeCell;
use x86_64::instructions::tables::lidt;
use x86_64::structures::gdt::SegmentSelector;
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

const EXCEPTION_VECTORS: usize = 32;
const DOUBLE_FAULT_VECTOR: usize = 8;

// Each stub makes the stack uniform (a zero error code where the CPU pushes none), pushes its vector and
// jumps to the common part, which saves the general registers and calls `exception_dispatch`.
// Stack at the call: 15 registers + vector + error code + the CPU's 5-quadword frame = 176 bytes, so the
// 16-byte alignment the CPU gives RSP before the frame holds at the call.
global_asm!(
    r#"
    .section .text.exception_stubs, "ax"
    .irp vector, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
exception_stub_\vector:
    .if (\vector == 8) || (\vector == 10) || (\vector == 11) || (\vector == 12) || (\vector == 13) || (\vector == 14) || (\vector == 17) || (\vector == 21) || (\vector == 29) || (\vector == 30)
    .else
    pushq $0
    .endif
    pushq $\vector
    jmp exception_common
    .endr

exception_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    cld
    movq %rsp, %rdi
    call exception_dispatch
1:  cli
    hlt
    jmp 1b

    .section .rodata.exception_stub_table, "a"
    .balign 8
    .global exception_stub_table
exception_stub_table:
    .irp vector, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad exception_stub_\vector
    .endr
    "#,
    options(att_syntax)
);

extern "C" {
    static exception_stub_table: [u64; EXCEPTION_VECTORS];
}

/// The stack as `exception_common` leaves it.
#[repr(C)]
#[derive(Debug)]
pub struct ExceptionFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

#[repr(C, align(16))]
struct Idt(UnsafeCell<[[u64; 2]; EXCEPTION_VECTORS]>);

// SAFETY: written once by `init` on the single boot CPU before `lidt`, read only by the CPU afterwards.
unsafe impl Sync for Idt {}

static IDT: Idt = Idt(UnsafeCell::new([[0; 2]; EXCEPTION_VECTORS]));

/// Fills the 32 exception gates (with the #DF gate on its IST stack) and loads the IDT.
pub fn init(code_selector: SegmentSelector) {
    // SAFETY: the table is a static array of addresses emitted by the assembly above.
    let stubs = unsafe { &exception_stub_table };
    // SAFETY: `init` runs once, on the boot CPU, with interrupts off, before the IDT is loaded.
    let gates = unsafe { &mut *IDT.0.get() };
    for (vector, gate) in gates.iter_mut().enumerate() {
        let ist = if vector == DOUBLE_FAULT_VECTOR {
            gdt::DOUBLE_FAULT_IST_INDEX as u8 + 1
        } else {
            0
        };
        *gate = interrupt_gate(stubs[vector], code_selector.0, ist);
    }
    let pointer = DescriptorTablePointer {
        limit: (core::mem::size_of::<[[u64; 2]; EXCEPTION_VECTORS]>() - 1) as u16,
        base: VirtAddr::new(IDT.0.get() as u64),
    };
    // SAFETY: the IDT is a static with valid gates for all 32 vectors, and stays in place for good.
    unsafe { lidt(&pointer) };
}

/// Called by `exception_common` with the saved state; reports the exception and ends the run.
#[no_mangle]
extern "C" fn exception_dispatch(frame: &ExceptionFrame) -> ! {
    let report = ExceptionReport {
        vector: frame.vector as u8,
        error_code: frame.error_code,
        rip: frame.rip,
    };
    super::console::line(format_args!("{report}"));
    if frame.vector == 14 {
        let cr2 = x86_64::registers::control::Cr2::read_raw();
        log::error!("page fault address (cr2) = {cr2:#x}");
    }
    log::error!(
        "cs={:#x} rflags={:#x} rsp={:#x} ss={:#x}",
        frame.cs,
        frame.rflags,
        frame.rsp,
        frame.ss
    );
    log::error!(
        "rax={:#x} rbx={:#x} rcx={:#x} rdx={:#x}",
        frame.rax,
        frame.rbx,
        frame.rcx,
        frame.rdx
    );
    log::error!(
        "rsi={:#x} rdi={:#x} rbp={:#x} r8={:#x}",
        frame.rsi,
        frame.rdi,
        frame.rbp,
        frame.r8
    );
    exit::finish(RunStatus::Exception)
}
