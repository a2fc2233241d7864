use super::*;
use crate::fake_vcpu::{host_cpuid, FakeVcpu, Lines};
use crate::vcpu::{VmExit, RAX};
use alloc::vec;
use alloc::vec::Vec;

fn guest(name: &str, script: Vec<VmExit>) -> Guest<FakeVcpu> {
    Guest {
        vcpu: FakeVcpu::new(0x1000, script),
        state: GuestState::new(name),
    }
}

/// Runs `guests` round robin with no policy loaded (tool calls refused), `max` exits each.
fn run_without_policy(guests: &mut [Guest<FakeVcpu>], log: &mut Lines, max: u64) -> u64 {
    let budget = GuestBudget {
        exits: max,
        slices: max,
    };
    let mut services = crate::host_services::fail_closed("no policy loaded", || 0);
    let mut env = ExitEnv {
        log,
        host_cpuid: &host_cpuid,
        xcr0_allowed: 7,
        services: &mut services,
    };
    run_round_robin(guests, &mut env, budget)
}

fn out(c: u8) -> VmExit {
    VmExit::PortIo {
        port: 0xE9,
        size: 1,
        write: true,
        value: u32::from(c),
        string: false,
    }
}

#[test]
fn guests_alternate_on_preemption_and_a_stopped_one_is_skipped() {
    let mut guests = vec![
        guest(
            "a",
            vec![
                out(b'1'),
                VmExit::PreemptionTimer,
                out(b'2'),
                VmExit::PreemptionTimer,
                out(b'\n'),
                VmExit::Hlt,
            ],
        ),
        guest("b", vec![VmExit::TripleFault]),
        guest(
            "c",
            vec![out(b'x'), VmExit::PreemptionTimer, out(b'\n'), VmExit::Hlt],
        ),
    ];
    let mut log = Lines::default();
    let exits = run_without_policy(&mut guests, &mut log, 100);
    assert_eq!(exits, 11);
    assert_eq!(guests[0].state.stopped, Some(StopReason::Halted));
    assert_eq!(guests[1].state.stopped, Some(StopReason::TripleFault));
    assert_eq!(guests[2].state.stopped, Some(StopReason::Halted));
    assert_eq!(guests[1].vcpu.runs, 1, "a stopped guest never runs again");
    let order: Vec<&str> = log
        .0
        .iter()
        .map(String::as_str)
        .filter(|l| l.starts_with("probevisor: guest"))
        .collect();
    assert_eq!(
        order,
        [
            "probevisor: guest b stopped: triple fault",
            "probevisor: guest c stopped: halted (HLT)",
            "probevisor: guest a stopped: halted (HLT)"
        ]
    );
    assert!(log.has("[guest a] 12") && log.has("[guest c] x"));
    assert_eq!(guests[0].state.stats.time_slices, 2);
}

#[test]
fn entry_failure_and_budget_stop_only_that_guest() {
    let mut guests = vec![
        guest("short", vec![]),
        guest("long", vec![VmExit::PreemptionTimer; 50]),
    ];
    guests[1].vcpu.regs.gpr[RAX] = 1;
    let mut log = Lines::default();
    let exits = run_without_policy(&mut guests, &mut log, 10);
    assert_eq!(exits, 10);
    assert!(matches!(
        guests[0].state.stopped,
        Some(StopReason::EntryFailed(_))
    ));
    assert_eq!(
        guests[1].state.stopped,
        Some(StopReason::BudgetExhausted { exits: 10 })
    );
    assert_eq!(next_runnable(&guests, None), None);
}

#[test]
fn a_guest_spinning_on_cheap_exits_spends_only_its_own_budget() {
    let spin = vec![
        VmExit::Cpuid {
            leaf: 0,
            subleaf: 0
        };
        1000
    ];
    let mut guests = vec![
        guest("spin", spin),
        guest("good", vec![out(b'o'), out(b'k'), out(b'\n'), VmExit::Hlt]),
        guest("late", vec![VmExit::PreemptionTimer, VmExit::Hlt]),
    ];
    let mut log = Lines::default();
    let exits = run_without_policy(&mut guests, &mut log, 500);
    assert_eq!(
        guests[0].state.stopped,
        Some(StopReason::BudgetExhausted { exits: 500 })
    );
    assert_eq!(guests[1].state.stopped, Some(StopReason::Halted));
    assert_eq!(guests[2].state.stopped, Some(StopReason::Halted));
    assert!(log.has("[guest good] ok"));
    assert_eq!(exits, 500 + 4 + 2);
}

#[test]
fn stop_reasons_print_on_one_line() {
    let reason = StopReason::Exited {
        code: 0xDEAD_0001,
        message: "panicked at a.rs:1:1:\nindex".into(),
    };
    assert_eq!(
        alloc::format!("{reason}"),
        "exited with code 0xdead0001: \"panicked at a.rs:1:1:\\nindex\""
    );
    assert!(reason.is_voluntary());
    assert!(!StopReason::TripleFault.is_voluntary());
    let violation = StopReason::MemoryViolation {
        gpa: 0x8000_0000,
        write: true,
        fetch: false,
    };
    assert_eq!(
        alloc::format!("{violation}"),
        "memory violation: write at guest-physical 0x80000000 outside its memory"
    );
}

#[test]
fn a_guest_that_never_exits_on_its_own_spends_only_its_slices() {
    let mut guests = vec![
        guest("spin", vec![VmExit::PreemptionTimer; 100]),
        guest("good", vec![out(b'o'), out(b'k'), out(b'\n'), VmExit::Hlt]),
    ];
    let mut log = Lines::default();
    let mut services = crate::host_services::fail_closed("no policy loaded", || 0);
    let mut env = ExitEnv {
        log: &mut log,
        host_cpuid: &host_cpuid,
        xcr0_allowed: 7,
        services: &mut services,
    };
    let budget = GuestBudget {
        exits: 1000,
        slices: 5,
    };
    run_round_robin(&mut guests, &mut env, budget);
    assert_eq!(
        guests[0].state.stopped,
        Some(StopReason::SlicesExhausted { slices: 5 })
    );
    assert_eq!(guests[1].state.stopped, Some(StopReason::Halted));
    assert!(log.has("[guest good] ok"));
    // The forced stop is audited; the voluntary one is not.
    let records: Vec<&String> = log.0.iter().filter(|l| l.starts_with("AUDIT ")).collect();
    assert_eq!(records.len(), 1, "{:?}", log.0);
    assert!(records[0].contains(r#""agent":"spin","tool":"guest_stopped""#));
    assert!(records[0].contains("5 time slices"), "{}", records[0]);
}
