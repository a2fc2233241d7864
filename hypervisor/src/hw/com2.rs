//! COM2 (0x2F8), the MCP bridge's port: a 16550 UART at 115200 8N1, polled, no interrupts.
//! `bridge_client` does the framing and the waiting; this is only the port I/O.

use crate::bridge_client::Uart;
use x86_64::instructions::port::Port;

const COM2: u16 = 0x2F8;
/// Line status register bit 0: a received byte is waiting.
const LSR_DATA_READY: u8 = 1 << 0;
/// Line status register bit 5: the transmit holding register is empty.
const LSR_THR_EMPTY: u8 = 1 << 5;
/// The scratch register (offset 7) holds what was written to it on a real 16550.
const SCRATCH_PROBES: [u8; 2] = [0x5A, 0xA5];

/// The COM2 UART, programmed and present.
pub struct Com2(());

fn read(offset: u16) -> u8 {
    // SAFETY: a read of one of COM2's 16550 registers; it touches no memory (reading RBR takes a
    // received byte, which is what `try_read` wants).
    unsafe { Port::<u8>::new(COM2 + offset).read() }
}

fn write(offset: u16, value: u8) {
    // SAFETY: a write to one of COM2's 16550 registers; it touches no memory.
    unsafe { Port::<u8>::new(COM2 + offset).write(value) }
}

impl Com2 {
    /// Programs COM2 like COM1 (115200 8N1, FIFO on, interrupts off); `None` when no UART answers
    /// (the scratch register does not keep a value, or the line status reads as all ones).
    pub fn init() -> Option<Com2> {
        for probe in SCRATCH_PROBES {
            write(7, probe);
            if read(7) != probe {
                return None;
            }
        }
        if read(5) == 0xFF {
            return None;
        }
        for (offset, value) in [
            (1, 0x00), // interrupts off
            (3, 0x80), // DLAB on: the next two writes set the divisor
            (0, 0x01), // divisor 1 = 115200 baud
            (1, 0x00),
            (3, 0x03), // DLAB off, 8N1
            (2, 0xC7), // FIFO on, cleared, 14-byte threshold
            (4, 0x0B), // DTR, RTS, OUT2
        ] {
            write(offset, value);
        }
        Some(Com2(()))
    }
}

impl Uart for Com2 {
    fn try_read(&mut self) -> Option<u8> {
        if read(5) & LSR_DATA_READY != 0 {
            Some(read(0))
        } else {
            None
        }
    }

    fn try_write(&mut self, byte: u8) -> bool {
        if read(5) & LSR_THR_EMPTY == 0 {
            return false;
        }
        write(0, byte);
        true
    }
}
