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
            subleaf: 0,
            osxsave: false,
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

/// A guest whose memory holds a `read_file` tool call request at 0x8000, RAX/RBX pointing at it,
/// that makes `calls` of them back to back (each comes back within its slice: the slice timers
/// count only guest time, VT-x, or drop the ticks that came while the hypervisor worked, SVM).
fn caller(name: &str, calls: usize) -> Guest<FakeVcpu> {
    use hypercall_abi::{Kind, Request};
    let mut g = Guest {
        vcpu: FakeVcpu::new(0x10_0000, vec![VmExit::Hypercall; calls]),
        state: GuestState::new(name),
    };
    let mut r = Request::new(Kind::ToolCall);
    let args = br#"{"path":"/x"}"#;
    (r.name_gpa, r.name_len) = (0xA000, 9);
    (r.args_gpa, r.args_len) = (0x9000, args.len() as u64);
    (r.result_gpa, r.result_cap) = (0xB000, 64);
    let mem = &mut g.vcpu.mem;
    mem[0x8000..0x8040].copy_from_slice(&r.to_bytes());
    mem[0x9000..0x9000 + args.len()].copy_from_slice(args);
    mem[0xA000..0xA009].copy_from_slice(b"read_file");
    g.vcpu.regs.gpr[RAX] = Kind::ToolCall as u64;
    g.vcpu.regs.gpr[crate::vcpu::RBX] = 0x8000;
    g
}

/// Index of the first log line holding `needle`.
fn first(log: &Lines, needle: &str) -> usize {
    log.0
        .iter()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in {:?}", log.0))
}

#[test]
fn a_guest_making_calls_back_to_back_lets_the_others_run_between_them() {
    // Each call costs the hypervisor its verdict (~0.5 s on hardware) and an audit record on the
    // serial line, none of it the guest's slice: the caller had kept the CPU for all its calls
    // (its exit budget: ~14 h of verdicts) before "good" ran once.
    let mut guests = vec![
        caller("hog", 20),
        guest("good", vec![out(b'o'), out(b'k'), out(b'\n'), VmExit::Hlt]),
    ];
    let mut log = Lines::default();
    run_without_policy(&mut guests, &mut log, 1000);
    assert_eq!(guests[0].state.stats.tool_calls, 20);
    assert_eq!(guests[1].state.stopped, Some(StopReason::Halted));
    let calls: Vec<usize> = (0..log.0.len())
        .filter(|&i| {
            log.0[i].starts_with("AUDIT ")
                && log.0[i].contains(r#""agent":"hog","tool":"read_file""#)
        })
        .collect();
    assert_eq!(calls.len(), 20, "each call audited");
    assert!(
        first(&log, "[guest good] ok") < calls[1],
        "good ran only after the hog's calls: {:?}",
        log.0
    );
    // Every turn still counts against the hog's own budgets only.
    assert_eq!(guests[0].state.stats.time_slices, 0);
}

#[test]
fn a_guest_whose_exits_each_write_a_log_line_lets_the_others_run() {
    // A refused WRMSR is a #GP and a log line (milliseconds of serial output each): 100,000 of
    // them had held the CPU for minutes.
    let refused = VmExit::Msr {
        msr: 0x10,
        write: true,
        value: 0,
    };
    let mut guests = vec![
        guest("noisy", vec![refused; 20]),
        guest("good", vec![out(b'o'), out(b'k'), out(b'\n'), VmExit::Hlt]),
    ];
    let mut log = Lines::default();
    run_without_policy(&mut guests, &mut log, 1000);
    let second = log
        .0
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("guest noisy: WRMSR"))
        .nth(1)
        .map(|(i, _)| i)
        .expect("a second refusal");
    assert!(first(&log, "[guest good] ok") < second, "{:?}", log.0);
    // A silent exit (CPUID) does not end the turn: the slice timer bounds those.
    let cpuid = VmExit::Cpuid {
        leaf: 0,
        subleaf: 0,
        osxsave: false,
    };
    let mut guests = vec![
        guest("quiet", vec![cpuid.clone(), cpuid, VmExit::Hlt]),
        guest("good", vec![out(b'o'), out(b'k'), out(b'\n'), VmExit::Hlt]),
    ];
    let mut log = Lines::default();
    run_without_policy(&mut guests, &mut log, 1000);
    assert!(
        first(&log, "guest quiet stopped") < first(&log, "[guest good] ok"),
        "{:?}",
        log.0
    );
}
