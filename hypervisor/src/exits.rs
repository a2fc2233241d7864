//! Exit handlers, written only against the backend-neutral [`Vcpu`] trait: hypercalls, port I/O to the
//! guest console, CPUID filtering, MSR allow-list, XSETBV checks, the tool device MMIO window, and the
//! exits that stop a guest (HLT, memory violations, triple faults, anything unexpected).

use crate::host_services::ToolService;
use crate::hypercall::{self, HypercallResult, Transport};
use crate::vcpu::{Registers, Vcpu, VmExit, RAX, RBX, RCX, RDX};
use crate::vm::{GuestState, LogSink, StopReason};
use alloc::format;
use hypercall_abi::mmio::{self, Register, DEVICE_ID, TOOL_DEVICE_GPA, TOOL_DEVICE_SIZE};
use hypercall_abi::VERSION;
use vmx::mmio_decode;

/// Ports a guest may write its console to (Bochs/QEMU debug port, COM1 data register).
pub const CONSOLE_PORTS: [u16; 2] = [0xE9, 0x3F8];
/// COM1 line status register: reads say "transmitter empty" so a UART driver keeps writing.
const COM1_LINE_STATUS: u16 = 0x3FD;
const LSR_THR_EMPTY: u32 = 0x60;
/// MSRs a guest may read and write without an exit: FS and GS base (in the VMCS guest area, or the
/// VMCB) and kernel GS base (swapped by hand around each VT-x entry; VMLOAD/VMSAVE on AMD SVM).
pub const MSR_ALLOW_LIST: [u32; 3] = [0xC000_0100, 0xC000_0101, 0xC000_0102];
/// Hypervisor CPUID leaf range and signature.
pub const HYPERVISOR_LEAF: u32 = 0x4000_0000;
pub const HYPERVISOR_SIGNATURE: &[u8; 12] = b"probevisor\0\0";
const CPUID1_ECX_VMX: u32 = 1 << 5;
const CPUID1_ECX_HYPERVISOR: u32 = 1 << 31;
const CPUID1_ECX_XSAVE: u32 = 1 << 26;
const CPUID1_ECX_OSXSAVE: u32 = 1 << 27;
/// CPUID.1:EDX MCE and MCA.
const CPUID1_EDX_MCE_MCA: u32 = (1 << 7) | (1 << 14);
/// Features whose CR4 bit a guest may not set (vmx::msr::CR4_GUEST_OWNED) are hidden:
/// CPUID.(7,0):ECX PKU, OSPKE, CET_SS, Key Locker, PKS; EDX UINTR, CET_IBT; CPUID.(7,1):EAX LASS,
/// FRED, LAM.
const CPUID7_ECX_UNSWITCHED: u32 = (1 << 3) | (1 << 4) | (1 << 7) | (1 << 23) | (1 << 31);
const CPUID7_EDX_UNSWITCHED: u32 = (1 << 5) | (1 << 20);
const CPUID7_1_EAX_UNSWITCHED: u32 = (1 << 6) | (1 << 17) | (1 << 26);
/// Instructions a guest cannot use here (VT-x leaves them disabled: #UD; SVM stops a guest at
/// RDTSCP), hidden so that a guest's CPUID does not promise them: CPUID.(7,0):EBX INVPCID, ECX
/// WAITPKG and RDPID; CPUID.8000_0001h:EDX RDTSCP; CPUID.(0Dh,1):EAX XSAVES.
const CPUID7_EBX_UNUSABLE: u32 = 1 << 10;
const CPUID7_ECX_UNUSABLE: u32 = (1 << 5) | (1 << 22);
const CPUID_EXT1_EDX_RDTSCP: u32 = 1 << 27;
const CPUID_D_1_EAX_XSAVES: u32 = 1 << 3;
/// CPUID.(0Dh,1):EAX XFD (extended feature disable; its MSRs are refused).
const CPUID_D_1_EAX_XFD: u32 = 1 << 4;
const XCR0_X87: u64 = 1;
const XCR0_SSE: u64 = 2;
const XCR0_AVX: u64 = 4;
/// The XSAVE components a guest may enable (`xcr0_valid`).
const GUEST_XCR0_COMPONENTS: u64 = XCR0_X87 | XCR0_SSE | XCR0_AVX;
/// XSAVE's legacy region (x87, SSE) and header, in bytes.
const XSAVE_LEGACY_AND_HEADER: u32 = 512 + 64;

/// What the scheduler does with the guest after an exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitAction {
    Resume,
    /// The time slice is over: run the next guest.
    Yield,
    Stop(StopReason),
}

/// What the handlers need from the host.
pub struct ExitEnv<'a> {
    pub log: &'a mut dyn LogSink,
    /// Native CPUID (leaf, subleaf) -> [EAX, EBX, ECX, EDX].
    pub host_cpuid: &'a dyn Fn(u32, u32) -> [u32; 4],
    /// XCR0 bits a guest may enable (the host's own XCR0).
    pub xcr0_allowed: u64,
    /// The policy gate and the tools behind it; also audits violations.
    pub services: &'a mut dyn ToolService,
}

/// Whether `gpa` lies in the tool device's MMIO window.
fn in_tool_device_window(gpa: u64) -> bool {
    (TOOL_DEVICE_GPA..TOOL_DEVICE_GPA + TOOL_DEVICE_SIZE).contains(&gpa)
}

fn set_rax_rdx(regs: &mut Registers, (rax, rdx): (u64, u64)) {
    regs.gpr[RAX] = rax;
    regs.gpr[RDX] = rdx;
}

/// Handles one exit of `vcpu` (guest state `guest`) and says what happens next.
pub fn handle_exit<V: Vcpu + ?Sized>(
    vcpu: &mut V,
    exit: VmExit,
    guest: &mut GuestState,
    env: &mut ExitEnv<'_>,
) -> ExitAction {
    guest.stats.exits += 1;
    // The call ABI, the console ports and the tool device serve the guest's 64-bit kernel code:
    // from user code or compatibility mode a hypercall or port access is a #GP (the instruction
    // would also be decoded as 64-bit code), a device access stops the guest.
    let regs = vcpu.regs();
    let unprivileged = match (regs.user_mode, regs.legacy_code) {
        (true, _) => Some("user mode (CPL > 0)"),
        (_, true) => Some("compatibility mode"),
        _ => None,
    };
    if let Some(mode) = unprivileged {
        match exit {
            VmExit::Hypercall | VmExit::PortIo { .. } => {
                env.log.line(format_args!(
                    "guest {}: {} from {mode} refused (#GP)",
                    guest.name,
                    if exit == VmExit::Hypercall {
                        "hypercall"
                    } else {
                        "port I/O"
                    }
                ));
                vcpu.inject_gp();
                return ExitAction::Resume;
            }
            VmExit::MmioAccess { gpa, .. } if in_tool_device_window(gpa) => {
                let why = format!("tool device access from {mode}");
                return refuse_device_access(guest, env, why.clone(), &why);
            }
            _ => {}
        }
    }
    match exit {
        VmExit::Hypercall => {
            let (number, gpa) = (vcpu.regs().gpr[RAX], vcpu.regs().gpr[RBX]);
            let len = vcpu.exit_instruction_len();
            match hypercall::handle(
                number,
                gpa,
                Transport::Hypercall,
                vcpu.memory_mut(),
                guest,
                env.log,
                env.services,
            ) {
                HypercallResult::Reply(response) => {
                    set_rax_rdx(vcpu.regs_mut(), response.registers());
                    vcpu.advance_rip(len);
                    ExitAction::Resume
                }
                HypercallResult::Stop(reason) => ExitAction::Stop(reason),
            }
        }
        VmExit::Cpuid {
            leaf,
            subleaf,
            osxsave,
        } => {
            let guest_state = CpuidGuestState {
                osxsave,
                xcr0: vcpu.guest_xcr0(),
            };
            let [a, b, c, d] = filtered_cpuid(leaf, subleaf, guest_state, env.host_cpuid);
            let regs = vcpu.regs_mut();
            for (slot, value) in [(RAX, a), (RBX, b), (RCX, c), (RDX, d)] {
                regs.gpr[slot] = u64::from(value);
            }
            let len = vcpu.exit_instruction_len();
            vcpu.advance_rip(len);
            ExitAction::Resume
        }
        VmExit::Msr { msr, write, .. } => {
            // Allowed MSRs are passed through by the bitmap; any MSR that exits is refused with #GP.
            env.log.line(format_args!(
                "guest {}: {} of MSR {msr:#x} refused (#GP)",
                guest.name,
                if write { "WRMSR" } else { "RDMSR" }
            ));
            vcpu.inject_gp();
            ExitAction::Resume
        }
        VmExit::PortIo {
            port,
            size,
            write,
            value,
            string,
        } => port_io(vcpu, guest, env, port, size, write, value, string),
        VmExit::Xsetbv { xcr, value } => {
            if xcr == 0 && xcr0_valid(value, env.xcr0_allowed) {
                vcpu.set_guest_xcr0(value);
                let len = vcpu.exit_instruction_len();
                vcpu.advance_rip(len);
            } else {
                env.log.line(format_args!(
                    "guest {}: XSETBV xcr{xcr}={value:#x} refused (#GP)",
                    guest.name
                ));
                vcpu.inject_gp();
            }
            ExitAction::Resume
        }
        VmExit::MmioAccess {
            gpa,
            write,
            fetch,
            page_walk,
            event_delivery,
        } => {
            // Only an instruction's own data access is a device access: a fetch from the window,
            // guest page tables placed in it, or an event's frame pushed onto a stack placed in it,
            // stop the guest like any access outside its memory.
            if in_tool_device_window(gpa) && !fetch && !page_walk && !event_delivery {
                return tool_device(vcpu, guest, env, gpa, write);
            }
            let reason = StopReason::MemoryViolation { gpa, write, fetch };
            env.services.violation(
                &guest.name,
                "memory_violation",
                &format!("{reason}"),
                env.log,
            );
            stop_with_dump(vcpu, env, reason)
        }
        VmExit::Hlt => ExitAction::Stop(StopReason::Halted),
        VmExit::PreemptionTimer => {
            guest.stats.time_slices += 1;
            ExitAction::Yield
        }
        VmExit::HostInterrupt => ExitAction::Resume,
        VmExit::TripleFault => stop_with_dump(vcpu, env, StopReason::TripleFault),
        VmExit::Fault { vector, .. } => stop_with_dump(vcpu, env, StopReason::Fault { vector }),
        VmExit::ForbiddenState { what } => {
            stop_with_dump(vcpu, env, StopReason::ForbiddenState(what))
        }
        VmExit::Other { reason, name } => stop_with_dump(
            vcpu,
            env,
            StopReason::UnexpectedExit(format!("exit reason {reason} ({name})")),
        ),
    }
}

fn stop_with_dump<V: Vcpu + ?Sized>(
    vcpu: &mut V,
    env: &mut ExitEnv<'_>,
    reason: StopReason,
) -> ExitAction {
    for line in vcpu.diagnostic_dump() {
        env.log.line(format_args!("  {line}"));
    }
    ExitAction::Stop(reason)
}

/// The guest's state that some CPUID fields report, as of the CPUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuidGuestState {
    /// CR4.OSXSAVE as the guest reads it.
    pub osxsave: bool,
    /// The guest's XCR0.
    pub xcr0: u64,
}

/// CPUID as the guest sees it: no VMX, the hypervisor bit set, and the probevisor leaf at 0x40000000;
/// OSXSAVE and leaf 0Dh's XSAVE area sizes from `guest`'s CR4.OSXSAVE and XCR0, not the host's.
pub fn filtered_cpuid(
    leaf: u32,
    subleaf: u32,
    guest: CpuidGuestState,
    host: &dyn Fn(u32, u32) -> [u32; 4],
) -> [u32; 4] {
    if leaf == HYPERVISOR_LEAF {
        let word = |i: usize| {
            u32::from_le_bytes(HYPERVISOR_SIGNATURE[i..i + 4].try_into().unwrap_or([0; 4]))
        };
        return [HYPERVISOR_LEAF, word(0), word(4), word(8)];
    }
    if (HYPERVISOR_LEAF..HYPERVISOR_LEAF + 0x100).contains(&leaf) {
        return [0; 4];
    }
    let mut out = host(leaf, subleaf);
    if leaf == 1 {
        out[2] = (out[2] & !CPUID1_ECX_VMX) | CPUID1_ECX_HYPERVISOR;
        // OSXSAVE is a copy of the guest's CR4.OSXSAVE (the host's is always on): a guest that
        // has not set it would be told XGETBV/XSETBV work, and they #UD. It can be set only
        // where XSAVE is.
        out[2] &= !CPUID1_ECX_OSXSAVE;
        if guest.osxsave && out[2] & CPUID1_ECX_XSAVE != 0 {
            out[2] |= CPUID1_ECX_OSXSAVE;
        }
        // Machine checks are the host's (CR4.MCE is outside the guest's CR4 allow-list).
        out[3] &= !CPUID1_EDX_MCE_MCA;
    }
    if leaf == 7 && subleaf == 0 {
        // Protection keys, CET, Key Locker, UINTR: their state is not switched between guests
        // (CR4 refuses them).
        out[1] &= !CPUID7_EBX_UNUSABLE;
        out[2] &= !(CPUID7_ECX_UNSWITCHED | CPUID7_ECX_UNUSABLE);
        out[3] &= !CPUID7_EDX_UNSWITCHED;
    }
    if leaf == 0x8000_0001 {
        out[3] &= !CPUID_EXT1_EDX_RDTSCP;
    }
    if leaf == 0xD && subleaf == 0 {
        // The XCR0 bits a guest's XSETBV may set (xcr0_valid): x87, SSE, AVX, and none of the
        // upper 32 (AVX-512, PKRU, AMX were listed and then refused).
        out[0] &= GUEST_XCR0_COMPONENTS as u32;
        out[3] = 0;
        // The XSAVE area sizes: EBX for the components the guest's XCR0 enables, ECX for all it
        // may enable (the host's were for the host's XCR0 and every component the CPU has).
        if u64::from(out[0]) & XCR0_X87 != 0 {
            let may_enable = u64::from(out[0]);
            out[1] = xsave_area_size(guest.xcr0 & may_enable, host);
            out[2] = xsave_area_size(may_enable, host);
        }
    }
    if leaf == 0xD && subleaf == 1 {
        // No XSAVES and no XFD (their MSRs are refused): no supervisor state to list, and the
        // area for XCR0 | IA32_XSS is the one for the guest's XCR0.
        out[0] &= !(CPUID_D_1_EAX_XSAVES | CPUID_D_1_EAX_XFD);
        if host(0xD, 0)[0] & XCR0_X87 as u32 != 0 {
            out[1] = xsave_area_size(guest.xcr0 & GUEST_XCR0_COMPONENTS, host);
        }
        out[2] = 0;
        out[3] = 0;
    }
    if leaf == 0xD && subleaf >= 2 && (subleaf >= 64 || GUEST_XCR0_COMPONENTS >> subleaf & 1 == 0) {
        // A component the guest can never enable (AVX-512, PKRU, AMX, ...) has no area.
        out = [0; 4];
    }
    if leaf == 7 && subleaf == 1 {
        out[0] &= !CPUID7_1_EAX_UNSWITCHED;
    }
    out
}

/// The size of a standard-format XSAVE area holding `components` (of x87, SSE and AVX): the
/// legacy region and the header, to the end of AVX's state when it is included (its offset and
/// size from CPUID leaf 0Dh, sub-leaf 2).
fn xsave_area_size(components: u64, host: &dyn Fn(u32, u32) -> [u32; 4]) -> u32 {
    let mut size = XSAVE_LEGACY_AND_HEADER;
    if components & XCR0_AVX != 0 {
        let [avx_size, avx_offset, _, _] = host(0xD, 2);
        size = size.max(avx_offset.saturating_add(avx_size));
    }
    size
}

/// A valid XCR0 for a guest: x87 set, AVX only with SSE, no bit the host does not allow.
pub fn xcr0_valid(value: u64, allowed: u64) -> bool {
    value & XCR0_X87 != 0
        && value & !(GUEST_XCR0_COMPONENTS & allowed) == 0
        && (value & XCR0_AVX == 0 || value & XCR0_SSE != 0)
}

#[allow(clippy::too_many_arguments)]
fn port_io<V: Vcpu + ?Sized>(
    vcpu: &mut V,
    guest: &mut GuestState,
    env: &mut ExitEnv<'_>,
    port: u16,
    size: u8,
    write: bool,
    value: u32,
    string: bool,
) -> ExitAction {
    let len = vcpu.exit_instruction_len();
    if !string && write && CONSOLE_PORTS.contains(&port) {
        guest.console_write(&value.to_le_bytes()[..usize::from(size.min(4))], env.log);
    } else if !string && !write && port == COM1_LINE_STATUS && size == 1 {
        let regs = vcpu.regs_mut();
        regs.gpr[RAX] = (regs.gpr[RAX] & !0xFF) | u64::from(LSR_THR_EMPTY);
    } else {
        return stop_with_dump(vcpu, env, StopReason::BadPortIo { port, write });
    }
    vcpu.advance_rip(len);
    ExitAction::Resume
}

/// The refused tool device access in words (for the stop reason and the audit record).
fn describe_device_error(err: mmio::MmioError) -> alloc::string::String {
    match err {
        mmio::MmioError::OutsideWindow { gpa } => format!("{gpa:#x} is outside the window"),
        mmio::MmioError::NoRegister { offset } => format!("no register at offset {offset:#x}"),
        mmio::MmioError::BadWidth { register, width } => {
            format!("{width}-byte access to register {register:?}")
        }
        mmio::MmioError::BadDirection {
            register,
            write: true,
        } => {
            format!("write to read-only register {register:?}")
        }
        mmio::MmioError::BadDirection {
            register,
            write: false,
        } => {
            format!("read of write-only register {register:?}")
        }
    }
}

/// A refused tool-device access: its console line and `tool_device` audit record (`detail`), then
/// the stop (`why`), which counts as audited (vm.rs).
fn refuse_device_access(
    guest: &GuestState,
    env: &mut ExitEnv<'_>,
    why: alloc::string::String,
    detail: &str,
) -> ExitAction {
    env.log.line(format_args!(
        "audit: guest {} tool device access refused: {detail}",
        guest.name
    ));
    env.services
        .violation(&guest.name, "tool_device", detail, env.log);
    ExitAction::Stop(StopReason::BadDeviceAccess(why))
}

/// Emulates one access to the tool device window (decoded with iced-x86 through vmx::mmio_decode).
fn tool_device<V: Vcpu + ?Sized>(
    vcpu: &mut V,
    guest: &mut GuestState,
    env: &mut ExitEnv<'_>,
    gpa: u64,
    write: bool,
) -> ExitAction {
    let regs = *vcpu.regs();
    let (bytes, fetched) =
        crate::guest_memory::fetch_instruction(vcpu.memory(), regs.cr3, regs.rip);
    let mut bad = |why: alloc::string::String| {
        let detail = format!("{why} (gpa {gpa:#x}, rip {:#x})", regs.rip);
        refuse_device_access(guest, env, why, &detail)
    };
    let insn = match mmio_decode::decode(&bytes[..fetched]) {
        Ok(insn) if (insn.direction == mmio_decode::MmioDirection::Write) == write => insn,
        Ok(insn) => {
            return bad(format!(
                "{:?} at rip {:#x} is not a single access of the faulting kind",
                insn.mnemonic, regs.rip
            ))
        }
        Err(err) => return bad(format!("{err} at rip {:#x}", regs.rip)),
    };
    let register = match mmio::decode_access(gpa, insn.size, write) {
        Ok(register) => register,
        Err(err) => return bad(describe_device_error(err)),
    };
    if write {
        let value = insn
            .write_value(|r| regs.gpr.get(usize::from(r)).copied().unwrap_or(0))
            .unwrap_or(0);
        match register {
            Register::RequestGpa => guest.device.request_gpa = value,
            Register::Doorbell => {
                let request = guest.device.request_gpa;
                match hypercall::handle(
                    value,
                    request,
                    Transport::ToolDevice,
                    vcpu.memory_mut(),
                    guest,
                    env.log,
                    env.services,
                ) {
                    HypercallResult::Reply(response) => {
                        (guest.device.status, guest.device.result_len) = response.registers();
                    }
                    HypercallResult::Stop(reason) => return ExitAction::Stop(reason),
                }
            }
            _ => return bad(format!("write to read-only register {register:?}")),
        }
    } else {
        let value = match register {
            Register::Id => u64::from(DEVICE_ID),
            Register::Version => u64::from(VERSION),
            Register::RequestGpa => guest.device.request_gpa,
            Register::Status => guest.device.status,
            Register::ResultLen => guest.device.result_len,
            Register::Doorbell => return bad(format!("read of write-only register {register:?}")),
        };
        let Some(target) = insn.register() else {
            return bad(format!("read into a non-register at rip {:#x}", regs.rip));
        };
        let slot = usize::from(target.index);
        let old = regs.gpr.get(slot).copied().unwrap_or(0);
        if let (Some(new), Some(dest)) = (
            insn.apply_read(old, value),
            vcpu.regs_mut().gpr.get_mut(slot),
        ) {
            *dest = new;
        }
    }
    vcpu.advance_rip(u64::from(insn.len));
    ExitAction::Resume
}

#[cfg(test)]
#[path = "exits_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "exits_device_tests.rs"]
mod device_tests;

#[cfg(test)]
#[path = "exits_cpuid_tests.rs"]
mod cpuid_tests;
