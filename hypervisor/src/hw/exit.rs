//! End of a run: the `PROBEVISOR-DONE` marker, then leaving the emulator (QEMU isa-debug-exit, Bochs
//! shutdown port), then halting for good on real hardware.

use super::console;
use crate::status::{DoneMarker, RunStatus};
use x86_64::instructions::port::Port;

/// QEMU `-device isa-debug-exit,iobase=0xf4,iosize=0x04`: QEMU exits with status `(value << 1) | 1`.
const QEMU_DEBUG_EXIT_PORT: u16 = 0xF4;
/// Value written on success (QEMU exit status 33); any other status writes `QEMU_EXIT_OTHER` (35).
const QEMU_EXIT_OK: u32 = 0x10;
const QEMU_EXIT_OTHER: u32 = 0x11;
/// Bochs ends the simulation when "Shutdown" is written to this port.
const BOCHS_SHUTDOWN_PORT: u16 = 0x8900;

/// Prints `PROBEVISOR-DONE status=<status>`, asks the emulator to exit and halts.
pub fn finish(status: RunStatus) -> ! {
    console::line(format_args!("{}", DoneMarker(status)));
    let code = if status == RunStatus::Ok {
        QEMU_EXIT_OK
    } else {
        QEMU_EXIT_OTHER
    };
    // SAFETY: port writes only; on hardware without these devices the ports are unused and ignore them.
    unsafe {
        Port::<u32>::new(QEMU_DEBUG_EXIT_PORT).write(code);
        let mut bochs: Port<u8> = Port::new(BOCHS_SHUTDOWN_PORT);
        for byte in b"Shutdown" {
            bochs.write(*byte);
        }
    }
    halt_forever()
}

/// Interrupts off, `hlt` forever.
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}
