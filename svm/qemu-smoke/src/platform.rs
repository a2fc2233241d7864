//! Serial output, QEMU exit, CPUID/CR3, a bump heap and the panic handler.

use core::alloc::{GlobalAlloc, Layout};
use core::arch::asm;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicUsize, Ordering};

const COM1: u16 = 0x3F8;

fn outb(port: u16, value: u8) {
    // SAFETY: port I/O to COM1 / isa-debug-exit only; no memory is touched.
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack)) };
}

fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: reading the COM1 line status register has no side effects on memory.
    unsafe { asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack)) };
    value
}

/// COM1, polled.
pub struct Serial;

impl Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for byte in s.bytes() {
            while inb(COM1 + 5) & 0x20 == 0 {}
            outb(COM1, byte);
        }
        Ok(())
    }
}

/// Ends QEMU through isa-debug-exit (status 33 on success, 35 otherwise).
pub fn exit_qemu(success: bool) -> ! {
    let code: u32 = if success { 0x10 } else { 0x11 };
    // SAFETY: writes the isa-debug-exit port, which stops the emulator.
    unsafe { asm!("out dx, eax", in("dx") 0xF4u16, in("eax") code, options(nomem, nostack)) };
    loop {
        // SAFETY: halting with interrupts off just parks the CPU.
        unsafe { asm!("cli; hlt", options(nomem, nostack)) };
    }
}

/// CPUID(leaf, 0) -> (eax, ebx, ecx, edx).
pub fn cpuid(leaf: u32) -> (u32, u32, u32, u32) {
    let r = core::arch::x86_64::__cpuid_count(leaf, 0);
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// The current CR3.
pub fn read_cr3() -> u64 {
    let value: u64;
    // SAFETY: reading CR3 at CPL 0 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) value, options(nomem, nostack)) };
    value
}

const HEAP_SIZE: usize = 8 << 20;

#[repr(C, align(4096))]
struct HeapArea([u8; HEAP_SIZE]);

static mut HEAP: HeapArea = HeapArea([0; HEAP_SIZE]);
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A bump allocator that never frees (the test is short).
struct Bump;

// SAFETY: every returned block lies inside HEAP, is aligned as asked, and is never handed out
// twice (NEXT only grows, atomically).
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = core::ptr::addr_of_mut!(HEAP) as usize;
        let mut current = NEXT.load(Ordering::Relaxed);
        loop {
            let start = (base + current).next_multiple_of(layout.align()) - base;
            let end = start + layout.size();
            if end > HEAP_SIZE {
                return core::ptr::null_mut();
            }
            match NEXT.compare_exchange(current, end, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return (base + start) as *mut u8,
                Err(seen) => current = seen,
            }
        }
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[global_allocator]
static ALLOCATOR: Bump = Bump;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let _ = writeln!(Serial, "svm-smoke: PANIC {info}");
    let _ = writeln!(Serial, "SVM-SMOKE: FAIL");
    exit_qemu(false)
}
