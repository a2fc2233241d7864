//! The tool device window: register reads, the doorbell, its audit records, and what is not a
//! device access (a guest page-table walk that touches the window).

use super::tests::{env, exit_once, no_policy, records, stage, MEM};
use super::*;
use crate::fake_vcpu::{FakeVcpu, Lines};
use crate::guest_memory::{build_boot_structures, PML4_GPA};
use alloc::vec;
use hypercall_abi::{Kind, Status};

#[test]
fn tool_device_reads_id_and_rings_the_doorbell() {
    let (mut vcpu, mut guest, mut log) = device_guest("d");
    stage_id_read(&mut vcpu);
    let exit = device_access(0, false);
    assert_eq!(
        exit_once(&mut vcpu, &mut guest, &mut log, exit),
        ExitAction::Resume
    );
    assert_eq!(
        (vcpu.regs.gpr[RAX], vcpu.regs.rip),
        (u64::from(DEVICE_ID), 0x10_0002)
    );
    // mov [rcx], rbx: REQUEST_GPA then DOORBELL
    stage(&mut vcpu, Kind::ConsoleWrite, b"via mmio\n", 0);
    vcpu.mem[0x10_0002..0x10_0005].copy_from_slice(&[0x48, 0x89, 0x19]);
    for (offset, value) in [(0x08, 0x8000), (0x10, Kind::ConsoleWrite as u64)] {
        vcpu.regs.rip = 0x10_0002;
        vcpu.regs.gpr[RCX] = TOOL_DEVICE_GPA + offset;
        vcpu.regs.gpr[RBX] = value;
        let exit = device_access(offset, true);
        assert_eq!(
            exit_once(&mut vcpu, &mut guest, &mut log, exit),
            ExitAction::Resume
        );
    }
    assert_eq!(log.0, ["[guest d] via mmio"]);
    assert_eq!((guest.device.status, guest.device.result_len), (0, 9));
    // a 4-byte read of an 8-byte register is refused
    vcpu.regs.rip = 0x10_0000;
    vcpu.regs.gpr[RAX] = TOOL_DEVICE_GPA + 0x18;
    let exit = device_access(0x18, false);
    assert!(matches!(
        exit_once(&mut vcpu, &mut guest, &mut log, exit),
        ExitAction::Stop(StopReason::BadDeviceAccess(_))
    ));
}

/// Writes `request_gpa` to REQUEST_GPA, then a tool call to DOORBELL; the guest resumes each time.
fn ring_doorbell(
    vcpu: &mut FakeVcpu,
    guest: &mut GuestState,
    log: &mut Lines,
    services: &mut dyn ToolService,
    request_gpa: u64,
) {
    for (offset, value) in [(0x08, request_gpa), (0x10, Kind::ToolCall as u64)] {
        let action = device_write(vcpu, guest, log, services, offset, value);
        assert_eq!(action, ExitAction::Resume);
    }
}

/// An instruction's data access to tool device register `offset`.
fn device_access(offset: u64, write: bool) -> VmExit {
    VmExit::MmioAccess {
        gpa: TOOL_DEVICE_GPA + offset,
        write,
        fetch: false,
        page_walk: false,
        event_delivery: false,
    }
}

/// `mov eax, [rax]` at RIP 0x10_0000 with RAX at the tool device's ID register.
fn stage_id_read(vcpu: &mut FakeVcpu) {
    vcpu.mem[0x10_0000..0x10_0002].copy_from_slice(&[0x8B, 0x00]);
    vcpu.regs.rip = 0x10_0000;
    vcpu.regs.gpr[RAX] = TOOL_DEVICE_GPA;
}

/// A guest with boot structures (page tables) in place, named `name`, and an empty log.
fn device_guest(name: &str) -> (FakeVcpu, GuestState, Lines) {
    let mut vcpu = FakeVcpu::new(MEM, vec![]);
    build_boot_structures(&mut vcpu.mem).unwrap();
    vcpu.regs.cr3 = PML4_GPA;
    (vcpu, GuestState::new(name), Lines::default())
}

/// `mov [rcx], rbx` at 0x10_0002 writing `value` to tool device register `offset`.
fn device_write(
    vcpu: &mut FakeVcpu,
    guest: &mut GuestState,
    log: &mut Lines,
    services: &mut dyn ToolService,
    offset: u64,
    value: u64,
) -> ExitAction {
    vcpu.mem[0x10_0002..0x10_0005].copy_from_slice(&[0x48, 0x89, 0x19]);
    vcpu.regs.rip = 0x10_0002;
    vcpu.regs.gpr[RCX] = TOOL_DEVICE_GPA + offset;
    vcpu.regs.gpr[RBX] = value;
    let exit = device_access(offset, true);
    handle_exit(vcpu, exit, guest, &mut env(log, services))
}

#[test]
fn doorbell_tool_call_is_decided_and_audited_and_a_status_write_stops_the_agent() {
    let mut services = no_policy();
    let (mut vcpu, mut guest, mut log) = device_guest("mmio");
    stage(&mut vcpu, Kind::ToolCall, br#"{"path":"/project"}"#, 0);
    ring_doorbell(&mut vcpu, &mut guest, &mut log, &mut services, 0x8000);
    // The pipeline ran (fail closed here: no policy) before the guest saw a status.
    assert_eq!(guest.device.status, Status::Denied as u64);
    assert_eq!(
        (guest.stats.tool_calls, guest.stats.tool_calls_denied),
        (1, 1)
    );
    assert!(
        log.0
            .iter()
            .any(|l| l.starts_with("audit: guest mmio tool call via tool device read_file")),
        "{:?}",
        log.0
    );
    let action = device_write(&mut vcpu, &mut guest, &mut log, &mut services, 0x18, 0);
    assert!(
        matches!(&action, ExitAction::Stop(StopReason::BadDeviceAccess(why)) if why.contains("Status")),
        "{action:?}"
    );
    let records = records(&log);
    assert_eq!(records.len(), 2, "{:?}", log.0);
    assert!(records[0].contains(r#""agent":"mmio","tool":"read_file""#));
    assert!(records[0].contains("no policy loaded"));
    assert!(records[1].contains(r#""agent":"mmio","tool":"tool_device""#));
    assert!(records[1].contains("write to read-only register Status"));
    let mut text = records.join("\n");
    text.push('\n');
    let report = probe::audit::verify(text.as_bytes(), Some(services.audit_head())).unwrap();
    assert_eq!(report.records, 2);
}

#[test]
fn a_bad_doorbell_request_is_audited_as_a_tool_device_refusal() {
    let mut services = no_policy();
    let (mut vcpu, mut guest, mut log) = device_guest("mmio");
    ring_doorbell(&mut vcpu, &mut guest, &mut log, &mut services, 0xFFFF_F000);
    assert_eq!(guest.device.status, Status::BadPointer as u64);
    let records = records(&log);
    assert_eq!(records.len(), 1, "{:?}", log.0);
    assert!(records[0].contains(r#""tool":"tool_device""#) && records[0].contains("bad pointer"));
}

#[test]
fn accesses_the_instruction_did_not_make_are_no_device_access() {
    // The guest's page-table walk into the window, and a #DB (or any exception) whose frame is
    // pushed onto a stack in the window: the instruction at RIP (a device read) did not make them.
    for (page_walk, event_delivery, gpa, write) in [
        (true, false, TOOL_DEVICE_GPA, false),
        (false, true, TOOL_DEVICE_GPA + 8, true),
    ] {
        let (mut vcpu, mut guest, mut log) = device_guest("walk");
        stage_id_read(&mut vcpu);
        let exit = VmExit::MmioAccess {
            gpa,
            write,
            fetch: false,
            page_walk,
            event_delivery,
        };
        let action = exit_once(&mut vcpu, &mut guest, &mut log, exit);
        assert!(
            matches!(
                action,
                ExitAction::Stop(StopReason::MemoryViolation { gpa: g, write: w, .. }) if g == gpa && w == write
            ),
            "{action:?}"
        );
        assert_eq!(vcpu.regs.gpr[RAX], TOOL_DEVICE_GPA, "no register was read");
        assert_eq!(vcpu.regs.rip, 0x10_0000, "the instruction was not emulated");
    }
}

#[test]
fn the_tool_device_from_compatibility_mode_stops_the_guest() {
    let mut vcpu = FakeVcpu::new(MEM, vec![]);
    let mut guest = GuestState::new("compat");
    let mut log = Lines::default();
    vcpu.regs.legacy_code = true;
    let exit = device_access(0, false);
    let action = exit_once(&mut vcpu, &mut guest, &mut log, exit);
    assert!(
        matches!(&action, ExitAction::Stop(StopReason::BadDeviceAccess(why)) if why.contains("compatibility mode")),
        "{action:?}"
    );
    // The stop counts as audited (no `guest_stopped` record follows): its own record is here.
    let records = records(&log);
    assert_eq!(records.len(), 1, "{:?}", log.0);
    assert!(records[0].contains(r#""agent":"compat","tool":"tool_device""#));
    assert!(records[0].contains("tool device access from compatibility mode"));
}
