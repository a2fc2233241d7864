//! TSC ticks over a fixed window of the 8254 PIT's channel 2 (the PC speaker's timer, which nothing
//! else in the hypervisor uses): the measurement behind the audit clock when CPUID leaf 0x16 gives
//! no frequency (QEMU's CPU models, many hypervisors). The arithmetic is in `crate::tsc_clock`.

use crate::tsc_clock::pit_count;
use x86_64::instructions::port::Port;

/// Port 0x61: bit 0 gates channel 2, bit 1 enables the speaker, bit 5 reads channel 2's output.
const SPEAKER_CONTROL: u16 = 0x61;
const CHANNEL2_DATA: u16 = 0x42;
const MODE_COMMAND: u16 = 0x43;
/// Channel 2, low byte then high byte, mode 0 (interrupt on terminal count), binary.
const CHANNEL2_MODE0: u8 = 0xB0;
/// Reads of port 0x61 before giving up on a PIT that never reaches its terminal count.
const MAX_POLLS: u64 = 100_000_000;

fn read(port: u16) -> u8 {
    // SAFETY: reading 0x61 has no side effect; the PIT ports are only used here.
    unsafe { Port::<u8>::new(port).read() }
}

fn write(port: u16, value: u8) {
    // SAFETY: writes to the PIT's channel 2 and its gate only start or stop that counter; the
    // speaker enable bit is kept clear and port 0x61 is restored afterwards.
    unsafe { Port::<u8>::new(port).write(value) }
}

/// TSC ticks while channel 2 counts down `pit_count()` periods, or `None` if it never finished.
pub fn tsc_ticks_over_window(rdtsc: fn() -> u64) -> Option<u64> {
    let saved = read(SPEAKER_CONTROL);
    write(SPEAKER_CONTROL, (saved & !0x02) | 0x01);
    write(MODE_COMMAND, CHANNEL2_MODE0);
    let count = pit_count();
    write(CHANNEL2_DATA, count as u8);
    write(CHANNEL2_DATA, (count >> 8) as u8);
    let start = rdtsc();
    let mut polls = 0u64;
    let finished = loop {
        if read(SPEAKER_CONTROL) & 0x20 != 0 {
            break true;
        }
        polls += 1;
        if polls > MAX_POLLS {
            break false;
        }
    };
    let ticks = rdtsc().wrapping_sub(start);
    write(SPEAKER_CONTROL, saved);
    finished.then_some(ticks)
}
