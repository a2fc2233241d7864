//! The audit clock's rate: TSC ticks per millisecond, from CPUID leaf 0x16 where the CPU reports its
//! frequency, else measured against the 8254 PIT (hw/pit.rs), else an assumed 1 GHz. The arithmetic
//! is here so that it is tested on the host; the port I/O is in the bare-metal part.

/// The PIT's input clock, Hz.
pub const PIT_HZ: u64 = 1_193_182;
/// How long the PIT measurement runs, in ms.
pub const PIT_WINDOW_MS: u64 = 10;
/// TSC ticks per ms assumed when nothing better is known (1 GHz).
pub const FALLBACK_TSC_PER_MS: u64 = 1_000_000;
/// Plausible TSC rates: 10 MHz .. 10 GHz. A measurement outside is a PIT that did not count.
const PLAUSIBLE_PER_MS: core::ops::RangeInclusive<u64> = 10_000..=10_000_000;

/// The channel-2 count that lasts [`PIT_WINDOW_MS`].
pub const fn pit_count() -> u16 {
    (PIT_HZ * PIT_WINDOW_MS / 1000) as u16
}

/// TSC ticks per ms from `ticks` counted over [`pit_count`] PIT periods, or `None` when the
/// result is not a plausible TSC rate (no PIT, or a PIT whose output never changed).
pub fn per_ms_from_pit(ticks: u64) -> Option<u64> {
    // ticks / (count / PIT_HZ s) / 1000 = ticks * PIT_HZ / (count * 1000)
    let per_ms = ticks.checked_mul(PIT_HZ)? / (u64::from(pit_count()) * 1000);
    PLAUSIBLE_PER_MS.contains(&per_ms).then_some(per_ms)
}

/// Where the rate came from, for the boot log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockSource {
    Cpuid16,
    Pit,
    Assumed,
}

/// The rate and its source: CPUID 0x16's base MHz if non-zero, else the PIT measurement if
/// plausible, else 1 GHz.
pub fn choose(cpuid_mhz: u64, pit_ticks: impl FnOnce() -> Option<u64>) -> (u64, ClockSource) {
    if cpuid_mhz > 0 {
        return (cpuid_mhz * 1000, ClockSource::Cpuid16);
    }
    match pit_ticks().and_then(per_ms_from_pit) {
        Some(per_ms) => (per_ms, ClockSource::Pit),
        None => (FALLBACK_TSC_PER_MS, ClockSource::Assumed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pit_window_is_ten_ms() {
        assert_eq!(pit_count(), 11_931);
    }

    #[test]
    fn pit_measurement_gives_the_rate() {
        // A 2 GHz TSC counts 2e7 ticks in 10 ms (11,931 PIT periods = 9.9993 ms).
        let ticks = 2_000_000_000 / 1000 * 11_931 * 1000 / 1_193_182;
        let per_ms = per_ms_from_pit(ticks).unwrap();
        assert!((1_999_000..=2_001_000).contains(&per_ms), "{per_ms}");
    }

    #[test]
    fn implausible_measurements_are_refused() {
        assert_eq!(per_ms_from_pit(0), None, "the PIT output was already high");
        assert_eq!(per_ms_from_pit(50), None);
        assert_eq!(per_ms_from_pit(u64::MAX), None, "overflow");
        assert_eq!(per_ms_from_pit(1_000_000_000_000), None, "over 10 GHz");
    }

    #[test]
    fn cpuid_first_then_pit_then_assumed() {
        assert_eq!(
            choose(2400, || panic!("not measured")),
            (2_400_000, ClockSource::Cpuid16)
        );
        let (per_ms, src) = choose(0, || Some(20_000_000));
        assert_eq!(src, ClockSource::Pit);
        assert!((1_999_000..=2_001_000).contains(&per_ms), "{per_ms}");
        assert_eq!(
            choose(0, || None),
            (FALLBACK_TSC_PER_MS, ClockSource::Assumed)
        );
        assert_eq!(
            choose(0, || Some(3)),
            (FALLBACK_TSC_PER_MS, ClockSource::Assumed)
        );
    }
}
