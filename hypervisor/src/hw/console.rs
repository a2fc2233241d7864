//! Text output to COM1 (0x3F8, 115200 8N1) and the emulators' debug port 0xE9, plus the `log` backend.

use core::fmt::{self, Write};
use spin::Mutex;
use x86_64::instructions::port::Port;

const COM1: u16 = 0x3F8;
const DEBUG_PORT: u16 = 0xE9;
/// Line status register bit 5: the transmit holding register is empty.
const LSR_THR_EMPTY: u8 = 1 << 5;
/// Bounded wait for the UART, so a missing COM1 cannot hang the hypervisor.
const TRANSMIT_SPINS: u32 = 100_000;

/// Writes bytes to COM1 and port 0xE9. Stateless: the lock only keeps lines whole.
struct PortWriter;

impl PortWriter {
    fn write_byte(&mut self, byte: u8) {
        let mut line_status: Port<u8> = Port::new(COM1 + 5);
        let mut data: Port<u8> = Port::new(COM1);
        let mut debug: Port<u8> = Port::new(DEBUG_PORT);
        // SAFETY: reading the UART's line status register has no side effect.
        let mut spins = 0;
        while spins < TRANSMIT_SPINS && unsafe { line_status.read() } & LSR_THR_EMPTY == 0 {
            spins += 1;
            core::hint::spin_loop();
        }
        // SAFETY: COM1's data port and the debug port only take output bytes; writing them touches no memory.
        unsafe {
            data.write(byte);
            debug.write(byte);
        }
    }
}

impl Write for PortWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for byte in s.bytes() {
            if byte == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(byte);
        }
        Ok(())
    }
}

static CONSOLE: Mutex<PortWriter> = Mutex::new(PortWriter);

/// Programs COM1 for 115200 baud, 8 data bits, no parity, one stop bit, FIFO on.
pub fn init() {
    const SETUP: [(u16, u8); 7] = [
        (1, 0x00), // interrupts off
        (3, 0x80), // DLAB on: the next two writes set the divisor
        (0, 0x01), // divisor 1 = 115200 baud
        (1, 0x00),
        (3, 0x03), // DLAB off, 8N1
        (2, 0xC7), // FIFO on, cleared, 14-byte threshold
        (4, 0x0B), // DTR, RTS, OUT2
    ];
    for (offset, value) in SETUP {
        // SAFETY: these are the standard 16550 UART registers of COM1; programming them touches no memory.
        unsafe { Port::<u8>::new(COM1 + offset).write(value) };
    }
}

/// Prints one line (a newline is added). Used for the markers the emulator harness reads.
pub fn line(args: fmt::Arguments<'_>) {
    // An exception or panic while the console is held must still get its message out: single CPU,
    // interrupts off, so writing without the lock only risks a garbled line.
    match CONSOLE.try_lock() {
        Some(mut console) => {
            let _ = console.write_fmt(args);
            let _ = console.write_str("\n");
        }
        None => {
            let _ = PortWriter.write_fmt(args);
            let _ = PortWriter.write_str("\n");
        }
    }
}

struct ConsoleLogger;

impl log::Log for ConsoleLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            line(format_args!("[{:<5}] {}", record.level(), record.args()));
        }
    }

    fn flush(&self) {}
}

static LOGGER: ConsoleLogger = ConsoleLogger;

/// Routes the `log` macros to the console at `level`.
pub fn init_logger(level: log::LevelFilter) {
    // A second call keeps the first logger; only the level changes.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
