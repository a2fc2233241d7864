use super::*;
use crate::fake_vcpu::{host_cpuid, FakeVcpu, Lines};
use alloc::vec;
use hypercall_abi::{Kind, Request, Status};

pub(super) const MEM: usize = 0x10_0000 * 2;
/// A guest as it starts: CR4.OSXSAVE clear, XCR0 = x87.
const FRESH: CpuidGuestState = CpuidGuestState {
    osxsave: false,
    xcr0: 1,
};

pub(super) fn env<'a>(log: &'a mut Lines, services: &'a mut dyn ToolService) -> ExitEnv<'a> {
    ExitEnv {
        log,
        host_cpuid: &host_cpuid,
        xcr0_allowed: 7,
        services,
    }
}

/// Handles one `exit` of `vcpu` with no policy loaded.
pub(super) fn exit_once(
    vcpu: &mut FakeVcpu,
    guest: &mut GuestState,
    log: &mut Lines,
    exit: VmExit,
) -> ExitAction {
    handle_exit(vcpu, exit, guest, &mut env(log, &mut no_policy()))
}

pub(super) fn no_policy() -> impl ToolService {
    crate::host_services::fail_closed(crate::host_services::NO_POLICY_REASON, || 0)
}

/// Places a request of `kind` with text `args` at 0x8000 (text at 0x9000) and points RAX/RBX at it.
pub(super) fn stage(vcpu: &mut FakeVcpu, kind: Kind, text: &[u8], exit_code: u32) {
    let mut r = Request::new(kind);
    r.exit_code = exit_code;
    (r.args_gpa, r.args_len) = (0x9000, text.len() as u64);
    if kind == Kind::ToolCall {
        vcpu.mem[0xA000..0xA009].copy_from_slice(b"read_file");
        (r.name_gpa, r.name_len) = (0xA000, 9);
        (r.result_gpa, r.result_cap) = (0xB000, 64);
    }
    vcpu.mem[0x8000..0x8040].copy_from_slice(&r.to_bytes());
    vcpu.mem[0x9000..0x9000 + text.len()].copy_from_slice(text);
    vcpu.regs.gpr[RAX] = kind as u64;
    vcpu.regs.gpr[RBX] = 0x8000;
}

#[test]
fn console_write_hypercall_prints_tagged_lines() {
    let mut vcpu = FakeVcpu::new(MEM, vec![]);
    let mut guest = GuestState::new("benign");
    let mut log = Lines::default();
    stage(&mut vcpu, Kind::ConsoleWrite, b"hello\nworld\n", 0);
    let action = exit_once(&mut vcpu, &mut guest, &mut log, VmExit::Hypercall);
    assert_eq!(action, ExitAction::Resume);
    assert_eq!(log.0, ["[guest benign] hello", "[guest benign] world"]);
    assert_eq!(
        (vcpu.regs.gpr[RAX], vcpu.regs.gpr[RDX], vcpu.regs.rip),
        (0, 12, 3)
    );
}

#[test]
fn bad_pointer_is_an_error_status_and_an_audit_line() {
    let mut vcpu = FakeVcpu::new(MEM, vec![]);
    let mut guest = GuestState::new("bad");
    let mut log = Lines::default();
    stage(&mut vcpu, Kind::ConsoleWrite, b"x", 0);
    vcpu.mem[0x8020..0x8028].copy_from_slice(&0x8000_0000u64.to_le_bytes());
    let action = exit_once(&mut vcpu, &mut guest, &mut log, VmExit::Hypercall);
    assert_eq!(action, ExitAction::Resume);
    assert_eq!(vcpu.regs.gpr[RAX], Status::BadPointer as u64);
    assert!(
        log.has("audit: guest bad hypercall 0x2 request 0x8000 refused (bad pointer)"),
        "{:?}",
        log.0
    );
    assert_eq!(guest.stats.refused_requests, 1);
    vcpu.regs.gpr[RBX] = u64::MAX - 63;
    exit_once(&mut vcpu, &mut guest, &mut log, VmExit::Hypercall);
    assert_eq!(vcpu.regs.gpr[RAX], Status::BadPointer as u64);
}

#[test]
fn exit_hypercall_stops_the_guest() {
    let mut vcpu = FakeVcpu::new(MEM, vec![]);
    let mut guest = GuestState::new("g");
    let mut log = Lines::default();
    stage(&mut vcpu, Kind::Exit, b"", 0);
    let action = exit_once(&mut vcpu, &mut guest, &mut log, VmExit::Hypercall);
    assert_eq!(
        action,
        ExitAction::Stop(StopReason::Exited {
            code: 0,
            message: "".into()
        })
    );
}

#[test]
fn tool_call_is_refused_without_policy() {
    let mut vcpu = FakeVcpu::new(MEM, vec![]);
    let mut guest = GuestState::new("g");
    let mut log = Lines::default();
    stage(&mut vcpu, Kind::ToolCall, b"{\"path\":\"/x\"}", 0);
    let action = exit_once(&mut vcpu, &mut guest, &mut log, VmExit::Hypercall);
    assert_eq!(action, ExitAction::Resume);
    assert_eq!(vcpu.regs.gpr[RAX], Status::Denied as u64);
    let len = vcpu.regs.gpr[RDX] as usize;
    assert_eq!(&vcpu.mem[0xB000..0xB000 + len], b"no policy loaded");
    assert!(log.has("tool call read_file"));
    assert_eq!(
        (guest.stats.tool_calls, guest.stats.tool_calls_denied),
        (1, 1)
    );
}

#[test]
fn cpuid_hides_vmx_and_shows_probevisor() {
    let leaf1 = filtered_cpuid(1, 0, FRESH, &host_cpuid);
    assert_eq!(leaf1[2] & CPUID1_ECX_VMX, 0);
    assert_eq!(
        leaf1[3] & (1 << 7 | 1 << 14),
        0,
        "MCE, MCA: CR4.MCE is the host's"
    );
    assert_ne!(leaf1[2] & CPUID1_ECX_HYPERVISOR, 0);
    let mut vcpu = FakeVcpu::new(MEM, vec![]);
    let mut guest = GuestState::new("g");
    let mut log = Lines::default();
    vcpu.insn_len = 2;
    handle_exit(
        &mut vcpu,
        VmExit::Cpuid {
            leaf: HYPERVISOR_LEAF,
            subleaf: 0,
            osxsave: false,
        },
        &mut guest,
        &mut env(&mut log, &mut no_policy()),
    );
    let mut sig = [0u8; 12];
    for (i, r) in [RBX, RCX, RDX].into_iter().enumerate() {
        sig[4 * i..4 * i + 4].copy_from_slice(&(vcpu.regs.gpr[r] as u32).to_le_bytes());
    }
    assert_eq!(&sig, b"probevisor\0\0");
    assert_eq!(vcpu.regs.rip, 2);
    assert_eq!(filtered_cpuid(0x4000_0001, 0, FRESH, &host_cpuid), [0; 4]);
    assert_eq!(filtered_cpuid(7, 2, FRESH, &host_cpuid), [7, 1, 2, 3]);
    // Leaf 7 without the features whose CR4 bit a guest may not set (their state is not switched
    // between guests): protection keys, CET, Key Locker, UINTR; subleaf 1: LASS, FRED, LAM.
    let all = |_: u32, _: u32| [u32::MAX; 4];
    let leaf7 = filtered_cpuid(7, 0, FRESH, &all);
    assert_eq!(leaf7[2] & (1 << 3 | 1 << 4 | 1 << 23), 0, "PKU, OSPKE, KL");
    // ... and instructions that #UD or stop the guest here: INVPCID, WAITPKG, RDPID, RDTSCP, XSAVES.
    assert_eq!(leaf7[1], !(1 << 10), "INVPCID");
    assert_eq!(leaf7[2], !(CPUID7_ECX_UNSWITCHED | 1 << 5 | 1 << 22));
    assert_eq!(
        filtered_cpuid(0x8000_0001, 0, FRESH, &all)[3],
        !(1 << 27),
        "RDTSCP"
    );
    assert_eq!(
        filtered_cpuid(0xD, 1, FRESH, &all)[0],
        !(1 << 3 | 1 << 4),
        "XSAVES, XFD"
    );
    // Leaf 0Dh lists only the XCR0 bits a guest may set (x87, SSE, AVX); EBX is the size for
    // the guest's XCR0 (x87: 576 bytes; exits_cpuid_tests.rs).
    assert_eq!(filtered_cpuid(0xD, 0, FRESH, &all), [7, 576, u32::MAX, 0]);
    assert_eq!(leaf7[3], !(1 << 5 | 1 << 20), "UINTR, CET_IBT");
    let leaf7_1 = filtered_cpuid(7, 1, FRESH, &all);
    assert_eq!(leaf7_1[0], !(1 << 6 | 1 << 17 | 1 << 26), "LASS, FRED, LAM");
    assert_eq!(leaf7_1[1..], [u32::MAX; 3]);
}

#[test]
fn msr_outside_allow_list_and_bad_xsetbv_inject_gp() {
    let mut vcpu = FakeVcpu::new(MEM, vec![]);
    let mut guest = GuestState::new("g");
    let mut log = Lines::default();
    let action = handle_exit(
        &mut vcpu,
        VmExit::Msr {
            msr: 0x10,
            write: false,
            value: 0,
        },
        &mut guest,
        &mut env(&mut log, &mut no_policy()),
    );
    assert_eq!(
        (action, vcpu.gp_injected, vcpu.regs.rip),
        (ExitAction::Resume, 1, 0)
    );
    handle_exit(
        &mut vcpu,
        VmExit::Xsetbv { xcr: 0, value: 5 },
        &mut guest,
        &mut env(&mut log, &mut no_policy()),
    );
    assert_eq!((vcpu.gp_injected, vcpu.xcr0), (2, None));
    handle_exit(
        &mut vcpu,
        VmExit::Xsetbv { xcr: 0, value: 7 },
        &mut guest,
        &mut env(&mut log, &mut no_policy()),
    );
    assert_eq!(
        (vcpu.gp_injected, vcpu.xcr0, vcpu.regs.rip),
        (2, Some(7), 3)
    );
    assert!(xcr0_valid(3, 3) && !xcr0_valid(7, 3) && !xcr0_valid(2, 7) && !xcr0_valid(0x201, 7));
}

#[test]
fn console_ports_buffer_lines_and_other_ports_stop_the_guest() {
    let mut vcpu = FakeVcpu::new(MEM, vec![]);
    let mut guest = GuestState::new("p");
    let mut log = Lines::default();
    for byte in b"hi\n" {
        let exit = VmExit::PortIo {
            port: 0xE9,
            size: 1,
            write: true,
            value: u32::from(*byte),
            string: false,
        };
        assert_eq!(
            exit_once(&mut vcpu, &mut guest, &mut log, exit),
            ExitAction::Resume
        );
    }
    assert_eq!(log.0, ["[guest p] hi"]);
    // a 4-byte OUT with NUL padding (a CPUID signature) prints only the text bytes
    let exit = VmExit::PortIo {
        port: 0x3F8,
        size: 4,
        write: true,
        value: u32::from_le_bytes(*b"or\0\0"),
        string: false,
    };
    exit_once(&mut vcpu, &mut guest, &mut log, exit);
    guest.flush_console(&mut log);
    assert_eq!(log.0, ["[guest p] hi", "[guest p] or"]);
    let exit = VmExit::PortIo {
        port: 0x64,
        size: 1,
        write: false,
        value: 0,
        string: false,
    };
    let action = exit_once(&mut vcpu, &mut guest, &mut log, exit);
    assert_eq!(
        action,
        ExitAction::Stop(StopReason::BadPortIo {
            port: 0x64,
            write: false
        })
    );
}

#[test]
fn memory_violation_and_triple_fault_stop_with_a_dump() {
    let mut vcpu = FakeVcpu::new(MEM, vec![]);
    let mut guest = GuestState::new("m");
    let mut log = Lines::default();
    let exit = VmExit::MmioAccess {
        gpa: 0x8000_0000,
        write: true,
        fetch: false,
        page_walk: false,
        event_delivery: false,
    };
    let action = exit_once(&mut vcpu, &mut guest, &mut log, exit);
    assert_eq!(
        action,
        ExitAction::Stop(StopReason::MemoryViolation {
            gpa: 0x8000_0000,
            write: true,
            fetch: false
        })
    );
    assert!(log.has("FAKE_DUMP"));
    let action = exit_once(&mut vcpu, &mut guest, &mut log, VmExit::TripleFault);
    assert_eq!(action, ExitAction::Stop(StopReason::TripleFault));
    assert_eq!(
        exit_once(&mut vcpu, &mut guest, &mut log, VmExit::Hlt),
        ExitAction::Stop(StopReason::Halted)
    );
}

#[test]
fn forbidden_state_stops_the_guest_naming_the_state_not_the_exit() {
    let mut vcpu = FakeVcpu::new(MEM, vec![]);
    let mut guest = GuestState::new("f");
    let mut log = Lines::default();
    let exit = VmExit::ForbiddenState { what: "CR4 bit" };
    let action = exit_once(&mut vcpu, &mut guest, &mut log, exit);
    assert_eq!(
        action,
        ExitAction::Stop(StopReason::ForbiddenState("CR4 bit"))
    );
    assert!(log.has("FAKE_DUMP"));
    assert_eq!(
        StopReason::ForbiddenState("CR4 bit").to_string(),
        "forbidden guest state: CR4 bit"
    );
    assert!(!StopReason::ForbiddenState("CR4 bit").is_voluntary());
}

#[test]
fn violations_and_tool_calls_become_chained_audit_records() {
    let mut services = no_policy();
    let mut vcpu = FakeVcpu::new(MEM, vec![]);
    let mut guest = GuestState::new("misbehave");
    let mut log = Lines::default();
    stage(&mut vcpu, Kind::ToolCall, b"{\"path\":\"/x\"}", 0);
    handle_exit(
        &mut vcpu,
        VmExit::Hypercall,
        &mut guest,
        &mut env(&mut log, &mut services),
    );
    vcpu.regs.gpr[RBX] = 0xFFFF_F000;
    handle_exit(
        &mut vcpu,
        VmExit::Hypercall,
        &mut guest,
        &mut env(&mut log, &mut services),
    );
    assert_eq!(vcpu.regs.gpr[RAX], Status::BadPointer as u64);
    let outside = VmExit::MmioAccess {
        gpa: 0x7000_0000,
        write: true,
        fetch: false,
        page_walk: false,
        event_delivery: false,
    };
    let action = handle_exit(
        &mut vcpu,
        outside,
        &mut guest,
        &mut env(&mut log, &mut services),
    );
    assert!(matches!(
        action,
        ExitAction::Stop(StopReason::MemoryViolation { .. })
    ));
    let records: Vec<&str> = log
        .0
        .iter()
        .filter_map(|l| l.strip_prefix("AUDIT "))
        .collect();
    assert_eq!(records.len(), 3, "{:?}", log.0);
    assert!(
        records[0].contains("\"tool\":\"read_file\"") && records[0].contains("no policy loaded")
    );
    assert!(records[1].contains("\"tool\":\"hypercall\"") && records[1].contains("bad pointer"));
    assert!(
        records[2].contains("\"tool\":\"memory_violation\"") && records[2].contains("0x70000000")
    );
    let mut text = records.join("\n");
    text.push('\n');
    let report = probe::audit::verify(text.as_bytes(), Some(services.audit_head())).unwrap();
    assert_eq!(report.records, 3);
}

/// The audit records (`AUDIT ` lines) in `log`.
pub(super) fn records(log: &Lines) -> Vec<&str> {
    log.0
        .iter()
        .filter_map(|l| l.strip_prefix("AUDIT "))
        .collect()
}

#[test]
fn null_result_buffer_is_a_bad_pointer_with_an_audit_record() {
    // The misbehaving agent's case: a null result buffer with a capacity, and args that are not a
    // JSON object (its console text had overwritten them): the pointer check decides.
    let mut services = no_policy();
    let mut vcpu = FakeVcpu::new(MEM, vec![]);
    let mut guest = GuestState::new("misbehaving");
    let mut log = Lines::default();
    stage(&mut vcpu, Kind::ToolCall, b"ng", 0);
    vcpu.mem[0x8030..0x8040].copy_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0]);
    let action = handle_exit(
        &mut vcpu,
        VmExit::Hypercall,
        &mut guest,
        &mut env(&mut log, &mut services),
    );
    assert_eq!(action, ExitAction::Resume);
    assert_eq!(
        (vcpu.regs.gpr[RAX], vcpu.regs.gpr[RDX]),
        (Status::BadPointer as u64, 0)
    );
    assert_eq!(
        (guest.stats.refused_requests, guest.stats.tool_calls),
        (1, 0)
    );
    assert!(
        log.has("audit: guest misbehaving hypercall 0x1 request 0x8000 refused (bad pointer): result: null pointer"),
        "{:?}",
        log.0
    );
    let records = records(&log);
    assert_eq!(records.len(), 1, "{:?}", log.0);
    assert!(records[0].contains(r#""agent":"misbehaving","tool":"hypercall""#));
    assert!(records[0].contains("result: null pointer"));
}

#[test]
fn hypercalls_and_ports_from_user_or_compatibility_mode_are_a_gp() {
    for (user, legacy) in [(true, false), (false, true)] {
        let mut vcpu = FakeVcpu::new(MEM, vec![]);
        let mut guest = GuestState::new("u");
        let mut log = Lines::default();
        stage(&mut vcpu, Kind::ConsoleWrite, b"from user code\n", 0);
        (vcpu.regs.user_mode, vcpu.regs.legacy_code) = (user, legacy);
        for exit in [
            VmExit::Hypercall,
            VmExit::PortIo {
                port: 0xE9,
                size: 1,
                write: true,
                value: u32::from(b'x'),
                string: false,
            },
        ] {
            let action = exit_once(&mut vcpu, &mut guest, &mut log, exit);
            assert_eq!(action, ExitAction::Resume);
        }
        assert_eq!(vcpu.gp_injected, 2);
        assert!(
            !log.has("from user code") && !log.has("[guest u]"),
            "{:?}",
            log.0
        );
        assert!(
            log.has("hypercall from") && log.has("port I/O from"),
            "{:?}",
            log.0
        );
        assert_eq!(guest.stats.hypercalls, 0);
    }
}
