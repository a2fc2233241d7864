//! Bare-metal side (target_os = "none"): the hypercall instruction, staging buffers, entry and panic.

use crate::{Agent, FixedText, Transport};
use core::cell::UnsafeCell;
use core::fmt::Write as _;
use core::sync::atomic::{AtomicBool, Ordering};
use hypercall_abi::mmio::{Register, TOOL_DEVICE_GPA};
use hypercall_abi::{HypercallInsn, EXIT_CODE_PANIC};

/// Size of the staging buffer of normal calls.
pub const STAGING_SIZE: usize = 64 * 1024;
/// Size of the separate staging buffer the panic handler uses.
pub const PANIC_STAGING_SIZE: usize = 8 * 1024;

#[repr(C, align(4096))]
struct Staging<const N: usize>(UnsafeCell<[u8; N]>);

// SAFETY: each buffer is handed out at most once (guarded by an AtomicBool), and an agent is single-threaded.
unsafe impl<const N: usize> Sync for Staging<N> {}

static MAIN_STAGING: Staging<STAGING_SIZE> = Staging(UnsafeCell::new([0; STAGING_SIZE]));
static MAIN_TAKEN: AtomicBool = AtomicBool::new(false);
static PANIC_STAGING: Staging<PANIC_STAGING_SIZE> =
    Staging(UnsafeCell::new([0; PANIC_STAGING_SIZE]));
static PANIC_TAKEN: AtomicBool = AtomicBool::new(false);

// The AtomicBool guard makes the returned &mut the only reference ever made to the buffer.
#[allow(clippy::mut_from_ref)]
fn take<const N: usize>(
    staging: &'static Staging<N>,
    taken: &AtomicBool,
) -> Option<&'static mut [u8]> {
    if taken.swap(true, Ordering::AcqRel) {
        return None;
    }
    // SAFETY: the flag was false, so no other reference to this buffer exists or will ever be made.
    Some(unsafe { &mut *staging.0.get() })
}

/// The CPU vendor's hypercall instruction, from CPUID leaf 0 (EBX, EDX, ECX).
pub fn detect_hypercall_insn() -> HypercallInsn {
    let leaf = core::arch::x86_64::__cpuid(0);
    let mut vendor = [0u8; 12];
    vendor[0..4].copy_from_slice(&leaf.ebx.to_le_bytes());
    vendor[4..8].copy_from_slice(&leaf.edx.to_le_bytes());
    vendor[8..12].copy_from_slice(&leaf.ecx.to_le_bytes());
    HypercallInsn::for_vendor(&vendor)
}

/// Hypercalls by VMCALL (Intel) or VMMCALL (AMD); guest virtual = guest physical addresses.
pub struct GuestTransport {
    buf: &'static mut [u8],
    insn: HypercallInsn,
}

impl GuestTransport {
    /// The one transport over the main staging buffer (`None` once taken).
    pub fn take() -> Option<GuestTransport> {
        Some(GuestTransport {
            buf: take(&MAIN_STAGING, &MAIN_TAKEN)?,
            insn: detect_hypercall_insn(),
        })
    }

    fn take_for_panic() -> Option<GuestTransport> {
        Some(GuestTransport {
            buf: take(&PANIC_STAGING, &PANIC_TAKEN)?,
            insn: detect_hypercall_insn(),
        })
    }

    pub fn insn(&self) -> HypercallInsn {
        self.insn
    }
}

impl Transport for GuestTransport {
    fn staging(&mut self) -> (u64, &mut [u8]) {
        (self.buf.as_ptr() as u64, self.buf)
    }

    fn hypercall(&mut self, number: u64, request_gpa: u64) -> (u64, u64) {
        let (status, len): (u64, u64);
        // SAFETY: the instruction exits to the hypervisor, which reads the request (in our staging buffer,
        // exclusively ours through &mut self) and writes only its result region, then returns with RAX and
        // RDX changed and every other register preserved. RBX is reserved by LLVM, so the request address
        // is swapped into it and back around the instruction. The asm may read/write memory (no `nomem`).
        unsafe {
            match self.insn {
                HypercallInsn::Vmcall => core::arch::asm!(
                    "xchg {gpa}, rbx", "vmcall", "xchg {gpa}, rbx",
                    gpa = inout(reg) request_gpa => _,
                    inout("rax") number => status,
                    lateout("rdx") len,
                    options(nostack),
                ),
                HypercallInsn::Vmmcall => core::arch::asm!(
                    "xchg {gpa}, rbx", "vmmcall", "xchg {gpa}, rbx",
                    gpa = inout(reg) request_gpa => _,
                    inout("rax") number => status,
                    lateout("rdx") len,
                    options(nostack),
                ),
            }
        }
        (status, len)
    }

    fn halt(&mut self) -> ! {
        halt_forever()
    }
}

/// `cli; hlt` forever (each HLT exits to the hypervisor, which should not resume a stopped agent).
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: disabling interrupts and halting touches no memory; the agent has nothing left to do.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// Requests through the tool device MMIO window instead of the hypercall instruction.
/// It borrows a [`GuestTransport`] for its staging buffer.
pub struct MmioTransport<'a> {
    inner: &'a mut GuestTransport,
}

impl<'a> MmioTransport<'a> {
    pub fn new(inner: &'a mut GuestTransport) -> MmioTransport<'a> {
        MmioTransport { inner }
    }

    /// Read a tool device register of width 4 or 8 (the ID register reads `PVTD`).
    pub fn read(&mut self, register: Register) -> u64 {
        mmio_read(TOOL_DEVICE_GPA + register.offset(), register.width())
    }

    /// Write a tool device register.
    pub fn write(&mut self, register: Register, value: u64) {
        mmio_write(TOOL_DEVICE_GPA + register.offset(), value);
    }
}

/// A volatile read of `width` (4 or 8) bytes at guest-physical `gpa`.
pub fn mmio_read(gpa: u64, width: u8) -> u64 {
    // SAFETY: guest memory is identity-mapped; `gpa` is device memory emulated by the hypervisor (an EPT
    // exit), or a fault the hypervisor handles. Volatile keeps the access exactly as written.
    unsafe {
        if width == 4 {
            u64::from(core::ptr::read_volatile(gpa as *const u32))
        } else {
            core::ptr::read_volatile(gpa as *const u64)
        }
    }
}

/// A volatile 8-byte write at guest-physical `gpa`.
pub fn mmio_write(gpa: u64, value: u64) {
    // SAFETY: as in `mmio_read`; the hypervisor emulates or refuses the store.
    unsafe { core::ptr::write_volatile(gpa as *mut u64, value) }
}

impl Transport for MmioTransport<'_> {
    fn staging(&mut self) -> (u64, &mut [u8]) {
        self.inner.staging()
    }

    fn hypercall(&mut self, number: u64, request_gpa: u64) -> (u64, u64) {
        self.write(Register::RequestGpa, request_gpa);
        self.write(Register::Doorbell, number);
        (self.read(Register::Status), self.read(Register::ResultLen))
    }

    fn halt(&mut self) -> ! {
        halt_forever()
    }
}

/// Run the agent's main function, then exit with the code it returns. Called by [`crate::agent_main!`].
pub fn run(main: fn(&mut Agent<GuestTransport>) -> u32) -> ! {
    let Some(transport) = GuestTransport::take() else {
        halt_forever()
    };
    let mut agent = Agent::new(transport);
    let code = main(&mut agent);
    agent.exit(code, "")
}

/// Report a panic with an Exit hypercall ([`EXIT_CODE_PANIC`] and the panic text), then halt.
pub fn report_panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let Some(transport) = GuestTransport::take_for_panic() else {
        halt_forever()
    };
    let mut text = FixedText::<1024>::default();
    let _ = write!(text, "{info}");
    Agent::new(transport).exit(EXIT_CODE_PANIC, text.as_str())
}

/// Define the agent's entry point: `agent_main!(main)` with `fn main(agent: &mut GuestAgent) -> u32`.
///
/// Generates `_start` (zeroes .bss, sets RSP to `__stack_top` from the SDK linker script, calls the
/// entry) and the panic handler, which reports the panic to the hypervisor.
#[macro_export]
macro_rules! agent_main {
    ($main:path) => {
        #[unsafe(naked)]
        #[unsafe(no_mangle)]
        pub extern "C" fn _start() -> ! {
            ::core::arch::naked_asm!(
                "cld",
                "lea rdi, [rip + __bss_start]",
                "lea rcx, [rip + __bss_end]",
                "sub rcx, rdi",
                "xor eax, eax",
                "rep stosb",
                "lea rsp, [rip + __stack_top]",
                "xor ebp, ebp",
                "call {entry}",
                "2: cli",
                "hlt",
                "jmp 2b",
                entry = sym __probevisor_agent_entry,
            )
        }

        extern "C" fn __probevisor_agent_entry() -> ! {
            $crate::guest::run($main)
        }

        #[panic_handler]
        fn __probevisor_panic(info: &::core::panic::PanicInfo<'_>) -> ! {
            $crate::guest::report_panic(info)
        }
    };
}
