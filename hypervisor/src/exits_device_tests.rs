//! The tool device window: register reads, the doorbell, its audit records, and what is not a
//! device access (a guest page-table walk that touches the window).

use super::tests::{env, no_policy, records, stage, MEM};
use super::*;
use crate::fake_vcpu::{FakeVcpu, Lines};
use crate::guest_memory::{build_boot_structures, PML4_GPA};
use alloc::vec;
use hypercall_abi::{Kind, Status};

#[test]
fn tool_device_reads_id_and_rings_the_doorbell() {
    let mut vcpu = FakeVcpu::new(MEM, vec![]);
    build_boot_structures(&mut vcpu.mem).unwrap();
    vcpu.regs.cr3 = PML4_GPA;
    let mut guest = GuestState::new("d");
    let mut log = Lines::default();
    // mov eax, [rax]
    vcpu.mem[0x10_0000..0x10_0002].copy_from_slice(&[0x8B, 0x00]);
    vcpu.regs.rip = 0x10_0000;
    vcpu.regs.gpr[RAX] = TOOL_DEVICE_GPA;
    let exit = VmExit::MmioAccess {
        gpa: TOOL_DEVICE_GPA,
        write: false,
        fetch: false,
        page_walk: false,
    };
    assert_eq!(
        handle_exit(
            &mut vcpu,
            exit,
            &mut guest,
            &mut env(&mut log, &mut no_policy())
        ),
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
        let exit = VmExit::MmioAccess {
            gpa: TOOL_DEVICE_GPA + offset,
            write: true,
            fetch: false,
            page_walk: false,
        };
        assert_eq!(
            handle_exit(
                &mut vcpu,
                exit,
                &mut guest,
                &mut env(&mut log, &mut no_policy())
            ),
            ExitAction::Resume
        );
    }
    assert_eq!(log.0, ["[guest d] via mmio"]);
    assert_eq!((guest.device.status, guest.device.result_len), (0, 9));
    // a 4-byte read of an 8-byte register is refused
    vcpu.regs.rip = 0x10_0000;
    vcpu.regs.gpr[RAX] = TOOL_DEVICE_GPA + 0x18;
    let exit = VmExit::MmioAccess {
        gpa: TOOL_DEVICE_GPA + 0x18,
        write: false,
        fetch: false,
        page_walk: false,
    };
    assert!(matches!(
        handle_exit(
            &mut vcpu,
            exit,
            &mut guest,
            &mut env(&mut log, &mut no_policy())
        ),
        ExitAction::Stop(StopReason::BadDeviceAccess(_))
    ));
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
    let exit = VmExit::MmioAccess {
        gpa: TOOL_DEVICE_GPA + offset,
        write: true,
        fetch: false,
        page_walk: false,
    };
    handle_exit(vcpu, exit, guest, &mut env(log, services))
}

#[test]
fn doorbell_tool_call_is_decided_and_audited_and_a_status_write_stops_the_agent() {
    let mut services = no_policy();
    let mut vcpu = FakeVcpu::new(MEM, vec![]);
    build_boot_structures(&mut vcpu.mem).unwrap();
    vcpu.regs.cr3 = PML4_GPA;
    let mut guest = GuestState::new("mmio");
    let mut log = Lines::default();
    stage(&mut vcpu, Kind::ToolCall, br#"{"path":"/project"}"#, 0);
    for (offset, value) in [(0x08, 0x8000), (0x10, Kind::ToolCall as u64)] {
        let action = device_write(
            &mut vcpu,
            &mut guest,
            &mut log,
            &mut services,
            offset,
            value,
        );
        assert_eq!(action, ExitAction::Resume);
    }
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
    let mut vcpu = FakeVcpu::new(MEM, vec![]);
    build_boot_structures(&mut vcpu.mem).unwrap();
    vcpu.regs.cr3 = PML4_GPA;
    let mut guest = GuestState::new("mmio");
    let mut log = Lines::default();
    for (offset, value) in [(0x08, 0xFFFF_F000), (0x10, Kind::ToolCall as u64)] {
        let action = device_write(
            &mut vcpu,
            &mut guest,
            &mut log,
            &mut services,
            offset,
            value,
        );
        assert_eq!(action, ExitAction::Resume);
    }
    assert_eq!(guest.device.status, Status::BadPointer as u64);
    let records = records(&log);
    assert_eq!(records.len(), 1, "{:?}", log.0);
    assert!(records[0].contains(r#""tool":"tool_device""#) && records[0].contains("bad pointer"));
}

#[test]
fn a_page_walk_into_the_window_is_no_device_access() {
    let mut vcpu = FakeVcpu::new(MEM, vec![]);
    build_boot_structures(&mut vcpu.mem).unwrap();
    vcpu.regs.cr3 = PML4_GPA;
    let mut guest = GuestState::new("walk");
    let mut log = Lines::default();
    // The instruction at RIP would be a device read (mov eax, [rax]) if it were its access.
    vcpu.mem[0x10_0000..0x10_0002].copy_from_slice(&[0x8B, 0x00]);
    vcpu.regs.rip = 0x10_0000;
    vcpu.regs.gpr[RAX] = TOOL_DEVICE_GPA;
    let exit = VmExit::MmioAccess {
        gpa: TOOL_DEVICE_GPA,
        write: false,
        fetch: false,
        page_walk: true,
    };
    let action = handle_exit(
        &mut vcpu,
        exit,
        &mut guest,
        &mut env(&mut log, &mut no_policy()),
    );
    assert!(
        matches!(
            action,
            ExitAction::Stop(StopReason::MemoryViolation { gpa, .. }) if gpa == TOOL_DEVICE_GPA
        ),
        "{action:?}"
    );
    assert_eq!(vcpu.regs.gpr[RAX], TOOL_DEVICE_GPA, "no register was read");
    assert_eq!(vcpu.regs.rip, 0x10_0000);
}

#[test]
fn the_tool_device_from_compatibility_mode_stops_the_guest() {
    let mut vcpu = FakeVcpu::new(MEM, vec![]);
    let mut guest = GuestState::new("compat");
    let mut log = Lines::default();
    vcpu.regs.legacy_code = true;
    let exit = VmExit::MmioAccess {
        gpa: TOOL_DEVICE_GPA,
        write: false,
        fetch: false,
        page_walk: false,
    };
    let action = handle_exit(
        &mut vcpu,
        exit,
        &mut guest,
        &mut env(&mut log, &mut no_policy()),
    );
    assert!(
        matches!(&action, ExitAction::Stop(StopReason::BadDeviceAccess(why)) if why.contains("compatibility mode")),
        "{action:?}"
    );
}
