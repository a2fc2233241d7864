//! The VT-x backend of [`Vcpu`]: one VMCS per guest, an EPT mapping only the guest's own RAM (the tool
//! device window and everything else unmapped), MSR bitmap trapping all but an allow-list, I/O bitmaps
//! trapping every port, VPID when available, the VMX preemption timer for time slices.

use super::guest_ram::{allocate_guest_ram, setup_err, GuestRam, TableFrames};
use super::xsave::GuestXstate;
use crate::exits::MSR_ALLOW_LIST;
use crate::guest_memory::{GDT_GPA, GDT_LIMIT, INITIAL_RSP, PML4_GPA, TSS_GPA};
use crate::simd::CR4_OSXSAVE;
use crate::vcpu::{isolation_prerequisites, Registers, Vcpu, VcpuError, VmExit, RSP};
use crate::vmx_bringup::VmxCapabilities;
use alloc::alloc::{alloc_zeroed, Layout};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use vmx::bitmaps::{IoBitmaps, MsrAccess, MsrBitmap};
use vmx::completed_instruction::GuestEventState;
use vmx::controls::{exit as exit_ctl, pin, secondary};
use vmx::entry_checks::{check_current_vmcs, FixedCrs};
use vmx::ept::{Ept, EptMemoryType, EptPerms};
use vmx::event_reinjection::{reinjection, EntryEvent};
use vmx::exit::{
    BasicExitReason, EptViolation, ExitReason, InterruptionInfo, IoDirection, IoQualification,
};
use vmx::exit::{VmcsDump, DEFAULT_DUMP_FIELDS};
use vmx::fields as f;
use vmx::guest_regs::GuestRegisters;
use vmx::hw::real::RealVmx;
use vmx::hw::{ControlRegister, VmxHardware, VmxInstructionError};
use vmx::msr;
use vmx::vmcs_setup::{self, ControlRequest, ExecutionPointers, HostState, LongModeGuest};

const PAGE: Layout = match Layout::from_size_align(4096, 4096) {
    Ok(l) => l,
    Err(_) => panic!("4096/4096 is a valid layout"),
};
/// Most EPT table frames one guest may use (8 MiB of RAM needs 4).
const EPT_FRAME_LIMIT: usize = 64;
/// #GP(0) as a hardware exception with an error code, valid.
const INJECT_GP: u32 = (1 << 31) | (1 << 11) | (3 << 8) | 13;
const GUEST_PAT: u64 = 0x0007_0406_0007_0406;

/// What every guest's VMCS shares: capabilities, host state, time slice.
pub struct Platform {
    pub caps: VmxCapabilities,
    pub host: HostState,
    pub cr0_fixed: (u64, u64),
    pub cr4_fixed: (u64, u64),
    /// Preemption timer ticks per slice (None: no timer, guests run until they stop).
    pub slice: Option<u32>,
    pub host_xcr0: Option<u64>,
}

pub struct VmxVcpu {
    hw: RealVmx,
    vmcs: u64,
    ram: &'static mut [u8],
    _ept: Ept<TableFrames>,
    _msr_bitmap: Box<MsrBitmap>,
    _io_bitmaps: Box<IoBitmaps>,
    regs: Registers,
    gprs: GuestRegisters,
    launched: bool,
    exit_len: u64,
    pending_gp: bool,
    /// A handler completed the exiting instruction for the guest (moved RIP past it): the next entry
    /// ends its interrupt shadow and delivers its single-step trap (vmx::completed_instruction).
    instruction_completed: bool,
    /// An event whose delivery the last exit interrupted: injected again on the next entry.
    reinject: Option<EntryEvent>,
    new_slice: bool,
    slice: Option<u32>,
    save_timer: bool,
    xstate: Option<GuestXstate>,
    /// The guest's IA32_KERNEL_GS_BASE: not in the VMCS guest area, so swapped around each entry.
    kernel_gs_base: u64,
    /// The guest's CR2 (its last page-fault address): not in the VMCS either.
    cr2: u64,
    fixed: FixedCrs,
}

/// IA32_KERNEL_GS_BASE (the SWAPGS target), on the MSR allow-list but not saved by VM exits.
const IA32_KERNEL_GS_BASE: u32 = 0xC000_0102;

impl VmxVcpu {
    /// Builds the guest: RAM (with its boot structures and the loaded image), EPT, bitmaps and VMCS.
    /// `load` writes the image into the RAM and returns the entry point.
    pub fn new(
        platform: &Platform,
        vpid: u16,
        ram_size: usize,
        load: impl FnOnce(&mut [u8]) -> Result<u64, String>,
    ) -> Result<Self, String> {
        let timer =
            platform.slice.is_some() && platform.caps.pin_based.can_set(pin::PREEMPTION_TIMER);
        isolation_prerequisites(timer)?;
        let GuestRam {
            ram,
            host_base: base,
            entry,
        } = allocate_guest_ram(ram_size, load)?;
        let mut ept =
            Ept::new(TableFrames::new(EPT_FRAME_LIMIT)).map_err(|e| setup_err("EPT", e))?;
        ept.map_range(
            0,
            base,
            ram_size as u64,
            EptPerms::RWX,
            EptMemoryType::WriteBack,
        )
        .map_err(|e| setup_err("EPT", e))?;
        let mut msr_bitmap = Box::new(MsrBitmap::trap_all());
        for number in MSR_ALLOW_LIST {
            for access in [MsrAccess::Read, MsrAccess::Write] {
                msr_bitmap
                    .clear_trap(number, access)
                    .map_err(|e| setup_err("MSR bitmap", e))?;
            }
        }
        let io_bitmaps = Box::new(IoBitmaps::trap_all());
        // SAFETY: non-zero size; checked for null; the VMCS lives as long as the guest.
        let vmcs = unsafe { alloc_zeroed(PAGE) };
        if vmcs.is_null() {
            return Err("no memory for the VMCS".into());
        }
        // SAFETY: fresh 4 KiB region; its first dword is the revision id.
        unsafe {
            vmcs.cast::<u32>()
                .write(platform.caps.basic.revision_id & 0x7FFF_FFFF)
        };
        // SAFETY: the boot CPU is in VMX operation; vCPUs are used one at a time on it, so this handle never
        // runs concurrently with another; every address written below is memory this guest owns.
        let mut hw = unsafe { RealVmx::new() };
        let vmcs = vmcs as u64;
        hw.vmclear(vmcs).map_err(|e| setup_err("VMCLEAR", e))?;
        hw.vmptrld(vmcs).map_err(|e| setup_err("VMPTRLD", e))?;

        let caps = &platform.caps;
        let mut request = ControlRequest::long_mode_guest_with_ept();
        let secondary_allowed = caps.secondary.map_or(0, |s| s.allowed1);
        request.secondary &= secondary_allowed | !secondary::ENABLE_VPID;
        let use_vpid = request.secondary & secondary::ENABLE_VPID != 0;
        if platform.slice.is_some() && caps.pin_based.can_set(pin::PREEMPTION_TIMER) {
            request.pin |= pin::PREEMPTION_TIMER;
        }
        let save_timer = request.pin & pin::PREEMPTION_TIMER != 0
            && caps.exit.can_set(exit_ctl::SAVE_PREEMPTION_TIMER);
        if save_timer {
            request.exit |= exit_ctl::SAVE_PREEMPTION_TIMER;
        }
        let written = vmcs_setup::write_controls(&mut hw, &caps.basic, request)
            .map_err(|e| setup_err("controls", e))?;
        vmcs_setup::write_host_state(&mut hw, &platform.host)
            .map_err(|e| setup_err("host state", e))?;
        let crs = vmcs_setup::guest_control_registers(platform.cr0_fixed, platform.cr4_fixed);
        let guest = LongModeGuest {
            rip: entry,
            rsp: INITIAL_RSP,
            cr3: PML4_GPA,
            gdtr: (GDT_GPA, GDT_LIMIT),
            idtr: (0, 0),
            tr_base: TSS_GPA,
            pat: GUEST_PAT,
        };
        vmcs_setup::write_long_mode_guest(&mut hw, &guest, &crs, platform.cr0_fixed.0)
            .map_err(|e| setup_err("guest state", e))?;
        let pointers = ExecutionPointers {
            eptp: ept.eptp(false),
            vpid: if use_vpid { vpid } else { 0 },
            io_bitmap_a: &io_bitmaps.a as *const _ as u64,
            io_bitmap_b: &io_bitmaps.b as *const _ as u64,
            msr_bitmap: &*msr_bitmap as *const MsrBitmap as u64,
        };
        vmcs_setup::write_execution_pointers(&mut hw, &written, &pointers)
            .map_err(|e| setup_err("pointers", e))?;
        if let Some(ept_caps) = &caps.ept_vpid {
            vmx::invalidate::flush_ept(&mut hw, ept_caps, pointers.eptp)
                .map_err(|e| setup_err("INVEPT", e))?;
        }
        let regs = Registers {
            rip: entry,
            rflags: 2,
            cr3: PML4_GPA,
            gpr: {
                let mut g = [0; 16];
                g[RSP] = INITIAL_RSP;
                g
            },
            ..Registers::default()
        };
        log::info!(
            "vcpu: VMCS {vmcs:#x}, RAM {:#x}..{:#x}, EPTP {:#x}, vpid {}, entry {entry:#x}, controls pin {:#x} proc {:#x} proc2 {:#x} exit {:#x} entry {:#x}",
            base, base + ram_size as u64, pointers.eptp, pointers.vpid,
            written.pin, written.primary, written.secondary, written.exit, written.entry
        );
        Ok(Self {
            hw,
            vmcs,
            ram,
            _ept: ept,
            _msr_bitmap: msr_bitmap,
            _io_bitmaps: io_bitmaps,
            regs,
            gprs: GuestRegisters::default(),
            launched: false,
            exit_len: 0,
            pending_gp: false,
            instruction_completed: false,
            reinject: None,
            new_slice: true,
            slice: platform
                .slice
                .filter(|_| written.pin & pin::PREEMPTION_TIMER != 0),
            save_timer,
            xstate: Some(GuestXstate::new(platform.host_xcr0)),
            kernel_gs_base: 0,
            cr2: 0,
            fixed: FixedCrs {
                cr0: platform.cr0_fixed,
                cr4: platform.cr4_fixed,
            },
        })
    }

    /// VMCLEAR: flushes the VMCS to memory and leaves it inactive (before VMXOFF).
    pub fn clear(&mut self) -> Result<(), VmxInstructionError> {
        self.hw.vmclear(self.vmcs)
    }

    fn control(err: VmxInstructionError) -> VcpuError {
        VcpuError::Control(err.to_string())
    }

    fn load_state(&mut self) -> Result<(), VmxInstructionError> {
        let hw = &mut self.hw;
        hw.vmptrld(self.vmcs)?;
        f::GUEST_RIP.write(hw, self.regs.rip)?;
        f::GUEST_RSP.write(hw, self.regs.gpr[RSP])?;
        self.gprs.gpr = self.regs.gpr;
        let completed = core::mem::take(&mut self.instruction_completed);
        let reinject = self.reinject.take();
        // Instruction exits never happen during an event's delivery, and a fault of the delivery
        // stops the guest: a completed instruction and an event to inject again never meet.
        debug_assert!(!(completed && reinject.is_some()));
        if core::mem::take(&mut self.pending_gp) {
            // The instruction faulted instead of completing: no trap of its own, RIP unmoved.
            f::VM_ENTRY_INTERRUPTION_INFO.write(hw, INJECT_GP)?;
            f::VM_ENTRY_EXCEPTION_ERROR_CODE.write(hw, 0)?;
        } else if let Some(event) = reinject {
            f::VM_ENTRY_INTERRUPTION_INFO.write(hw, event.interruption_info)?;
            if let Some(code) = event.error_code {
                f::VM_ENTRY_EXCEPTION_ERROR_CODE.write(hw, code)?;
            }
            if let Some(len) = event.instruction_len {
                f::VM_ENTRY_INSTRUCTION_LENGTH.write(hw, len)?;
            }
        } else if completed {
            let after = GuestEventState {
                rflags: self.regs.rflags,
                interruptibility: f::GUEST_INTERRUPTIBILITY_STATE.read(hw)?,
                pending_debug: f::GUEST_PENDING_DEBUG_EXCEPTIONS.read(hw)?,
            }
            .after_completed_instruction();
            self.regs.rflags = after.rflags;
            f::GUEST_INTERRUPTIBILITY_STATE.write(hw, after.interruptibility)?;
            f::GUEST_PENDING_DEBUG_EXCEPTIONS.write(hw, after.pending_debug)?;
        }
        f::GUEST_RFLAGS.write(hw, self.regs.rflags)?;
        if let Some(ticks) = self.slice {
            if !self.save_timer || core::mem::take(&mut self.new_slice) {
                f::VMX_PREEMPTION_TIMER_VALUE.write(hw, ticks)?;
            }
        }
        Ok(())
    }

    fn store_state(&mut self) -> Result<(), VmxInstructionError> {
        let hw = &mut self.hw;
        let rsp = f::GUEST_RSP.read(hw)?;
        self.regs.gpr = self.gprs.gpr;
        self.regs.gpr[RSP] = rsp;
        self.regs.rip = f::GUEST_RIP.read(hw)?;
        self.regs.rflags = f::GUEST_RFLAGS.read(hw)?;
        self.regs.cr3 = f::GUEST_CR3.read(hw)?;
        // CPL is SS.DPL (access rights bits 6:5); CS.L is bit 13.
        self.regs.user_mode = (f::GUEST_SS_ACCESS_RIGHTS.read(hw)? >> 5) & 3 != 0;
        self.regs.legacy_code = f::GUEST_CS_ACCESS_RIGHTS.read(hw)? & (1 << 13) == 0;
        self.exit_len = u64::from(f::VM_EXIT_INSTRUCTION_LENGTH.read(hw)?);
        Ok(())
    }

    fn decode_exit(&mut self) -> Result<VmExit, VmxInstructionError> {
        let hw = &mut self.hw;
        let reason = ExitReason::from_raw(f::VM_EXIT_REASON.read(hw)?);
        let qualification = f::EXIT_QUALIFICATION.read(hw)?;
        let (rax, rcx, rdx) = (self.regs.gpr[0], self.regs.gpr[1], self.regs.gpr[2]);
        let edx_eax = (rdx << 32) | (rax & 0xFFFF_FFFF);
        if reason.entry_failure {
            return Ok(VmExit::Other {
                reason: reason.raw,
                name: reason.basic.name(),
            });
        }
        // An exit in the middle of delivering an event to the guest: the event comes again on the
        // next entry, unless the exit is the delivery's own fault (it stops the guest). The error
        // code is read only for such an exit; the instruction length is store_state's.
        let vectoring = f::IDT_VECTORING_INFO.read(hw)?;
        let interrupted = if InterruptionInfo::from_raw(vectoring).valid {
            let code = f::IDT_VECTORING_ERROR_CODE.read(hw)?;
            reinjection(vectoring, code, self.exit_len as u32)
        } else {
            None
        };
        let event_delivery = interrupted.is_some();
        if reason.basic != BasicExitReason::EptViolation {
            self.reinject = interrupted;
        }
        Ok(match reason.basic {
            BasicExitReason::Vmcall => VmExit::Hypercall,
            BasicExitReason::Cpuid => VmExit::Cpuid {
                leaf: rax as u32,
                subleaf: rcx as u32,
                // CR4 as the guest reads it: its own bits, the others from the read shadow.
                osxsave: vmcs_setup::guest_view_of_cr(
                    f::GUEST_CR4.read(hw)?,
                    f::CR4_GUEST_HOST_MASK.read(hw)?,
                    f::CR4_READ_SHADOW.read(hw)?,
                ) & CR4_OSXSAVE
                    != 0,
            },
            BasicExitReason::Rdmsr => VmExit::Msr {
                msr: rcx as u32,
                write: false,
                value: 0,
            },
            BasicExitReason::Wrmsr => VmExit::Msr {
                msr: rcx as u32,
                write: true,
                value: edx_eax,
            },
            BasicExitReason::Xsetbv => VmExit::Xsetbv {
                xcr: rcx as u32,
                value: edx_eax,
            },
            BasicExitReason::Hlt => VmExit::Hlt,
            BasicExitReason::TripleFault => VmExit::TripleFault,
            BasicExitReason::PreemptionTimerExpired => {
                self.new_slice = true;
                VmExit::PreemptionTimer
            }
            BasicExitReason::ExternalInterrupt => VmExit::HostInterrupt,
            BasicExitReason::IoInstruction => {
                match IoQualification::from_qualification(qualification) {
                    Ok(io) => VmExit::PortIo {
                        port: io.port,
                        size: io.size,
                        write: io.direction == IoDirection::Out,
                        value: rax as u32,
                        string: io.string,
                    },
                    Err(_) => VmExit::Other {
                        reason: reason.raw,
                        name: "I/O with a reserved size",
                    },
                }
            }
            BasicExitReason::EptViolation => {
                let q = EptViolation::from_qualification(qualification);
                let gpa = f::GUEST_PHYSICAL_ADDRESS.read(hw)?;
                VmExit::MmioAccess {
                    gpa,
                    write: q.write,
                    fetch: q.fetch,
                    page_walk: q.linear_address_valid && !q.final_translation,
                    event_delivery,
                }
            }
            BasicExitReason::ExceptionOrNmi => {
                let info = InterruptionInfo::from_raw(f::VM_EXIT_INTERRUPTION_INFO.read(hw)?);
                let code = f::VM_EXIT_INTERRUPTION_ERROR_CODE.read(hw)?;
                VmExit::Fault {
                    vector: info.vector,
                    error_code: info.error_code_valid.then_some(code),
                }
            }
            other => VmExit::Other {
                reason: reason.raw,
                name: other.name(),
            },
        })
    }
}

impl Vcpu for VmxVcpu {
    fn run(&mut self) -> Result<VmExit, VcpuError> {
        self.load_state().map_err(Self::control)?;
        if let Some(x) = self.xstate.as_mut() {
            x.enter();
        }
        // The guest reads and writes IA32_KERNEL_GS_BASE directly (allow-list), and VT-x neither
        // loads nor saves it: it holds this guest's value only while this guest runs.
        // CR2 likewise: the guest sees its own last page-fault address, never the host's or
        // another guest's (the host reads CR2 only inside its own #PF handler).
        let host_kernel_gs_base = self.hw.rdmsr(IA32_KERNEL_GS_BASE);
        self.hw.wrmsr(IA32_KERNEL_GS_BASE, self.kernel_gs_base);
        self.hw.write_cr(ControlRegister::Cr2, self.cr2);
        let result = self.hw.run_guest(&mut self.gprs, self.launched);
        self.cr2 = self.hw.read_cr(ControlRegister::Cr2);
        self.kernel_gs_base = self.hw.rdmsr(IA32_KERNEL_GS_BASE);
        self.hw.wrmsr(IA32_KERNEL_GS_BASE, host_kernel_gs_base);
        if let Some(x) = self.xstate.as_mut() {
            x.leave();
        }
        if let Err(err) = result {
            return Err(VcpuError::EntryFailed(format!(
                "{} ({err})",
                if self.launched {
                    "VMRESUME"
                } else {
                    "VMLAUNCH"
                }
            )));
        }
        self.launched = true;
        self.store_state().map_err(Self::control)?;
        self.decode_exit().map_err(Self::control)
    }
    fn regs(&self) -> &Registers {
        &self.regs
    }
    fn regs_mut(&mut self) -> &mut Registers {
        &mut self.regs
    }
    fn advance_rip(&mut self, len: u64) {
        self.regs.rip = self.regs.rip.wrapping_add(len);
        self.instruction_completed = true;
    }
    fn exit_instruction_len(&self) -> u64 {
        self.exit_len
    }
    fn inject_gp(&mut self) {
        self.pending_gp = true;
    }
    fn set_guest_xcr0(&mut self, value: u64) {
        if let Some(x) = self.xstate.as_mut() {
            x.set_guest_xcr0(value);
        }
    }
    fn guest_xcr0(&self) -> u64 {
        self.xstate.as_ref().map_or(1, GuestXstate::guest_xcr0)
    }
    fn memory(&self) -> &[u8] {
        self.ram
    }
    fn memory_mut(&mut self) -> &mut [u8] {
        self.ram
    }
    fn diagnostic_dump(&mut self) -> Vec<String> {
        if let Err(err) = self.hw.vmptrld(self.vmcs) {
            return alloc::vec![format!("VMCS dump: VMPTRLD failed: {err}")];
        }
        let dump = VmcsDump::capture(&mut self.hw, DEFAULT_DUMP_FIELDS).to_string();
        let mut lines: Vec<String> = dump.lines().map(|l| format!("vmcs: {l}")).collect();
        // Why an entry failed, when it did: the software re-check of the VMCS (SDM 27.2-27.3).
        match check_current_vmcs(&mut self.hw, &self.fixed) {
            Ok(problems) => lines.extend(problems.iter().map(|p| format!("entry check: {p}"))),
            Err(err) => lines.push(format!("entry check: VMREAD failed: {err}")),
        }
        lines
    }
}

/// The host state every VMCS gets: this CPU's control registers, segments, descriptor tables, EFER, PAT.
/// HOST_RSP/HOST_RIP are set by the entry code on each entry.
pub fn current_host_state(hw: &mut RealVmx) -> HostState {
    let (cs, ss, tr): (u16, u16, u16);
    let mut gdtr = [0u8; 10];
    let mut idtr = [0u8; 10];
    // SAFETY: reading segment selectors and descriptor-table registers into local buffers has no side effects.
    unsafe {
        core::arch::asm!("mov {0:x}, cs", "mov {1:x}, ss", "str {2:x}", out(reg) cs, out(reg) ss, out(reg) tr,
            options(nomem, nostack, preserves_flags));
        core::arch::asm!("sgdt [{0}]", "sidt [{1}]", in(reg) gdtr.as_mut_ptr(), in(reg) idtr.as_mut_ptr(),
            options(nostack, preserves_flags));
    }
    let base = |d: &[u8; 10]| u64::from_le_bytes([d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9]]);
    let gdt_base = base(&gdtr);
    let index = u64::from(tr & !7);
    // SAFETY: TR indexes a 16-byte TSS descriptor inside the loaded GDT (identity-mapped, static).
    let (low, high) = unsafe {
        let at = (gdt_base + index) as *const u64;
        (at.read_unaligned(), at.add(1).read_unaligned())
    };
    let tr_base =
        ((low >> 16) & 0xFF_FFFF) | (((low >> 56) & 0xFF) << 24) | ((high & 0xFFFF_FFFF) << 32);
    HostState {
        cr0: hw.read_cr(ControlRegister::Cr0),
        cr3: hw.read_cr(ControlRegister::Cr3),
        cr4: hw.read_cr(ControlRegister::Cr4),
        cs,
        ss,
        data: ss,
        tr,
        fs_base: hw.rdmsr(msr::IA32_FS_BASE),
        gs_base: hw.rdmsr(msr::IA32_GS_BASE),
        tr_base,
        gdtr_base: gdt_base,
        idtr_base: base(&idtr),
        efer: hw.rdmsr(msr::IA32_EFER),
        pat: hw.rdmsr(msr::IA32_PAT),
        rsp: 0,
        rip: 0,
    }
}
