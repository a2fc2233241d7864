//! The AMD SVM backend of [`Vcpu`]: one VMCB per guest (svm::setup), nested page tables mapping only the
//! guest's own RAM (the tool device window and everything else unmapped, so an access there is a nested
//! page fault), an MSR permission map trapping all but the allow-list, an I/O permission map trapping
//! every port, one ASID per guest, and the guest's extended state switched around the hypervisor's own
//! work (hw::xsave). Exit decoding and instruction lengths are pure logic in `crate::svm_exit`.

use super::guest_ram::{allocate_guest_ram, setup_err, GuestRam, TableFrames};
use super::svm_timer::SliceTimer;
use super::xsave::GuestXstate;
use crate::exits::xcr0_valid;
use crate::exits::MSR_ALLOW_LIST;
use crate::guest_memory::{GDT_GPA, GDT_LIMIT, INITIAL_RSP, PML4_GPA, TSS_GPA};
use crate::svm_exit::{
    decode_exit, instruction_len, is_instruction_exit, is_vmcall_at, load_registers,
    store_registers, VMCALL,
};
use crate::vcpu::{isolation_prerequisites, Registers, Vcpu, VcpuError, VmExit, RSP};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use svm::capabilities::SvmFeatures;
use svm::completed_instruction::GuestEventState;
use svm::consistency::{check_vmrun_consistency, CpuLimits};
use svm::exit::{EventInfo, EventType, ExitCode};
use svm::guest_regs::GuestRegisters;
use svm::hw::real::RealSvm;
use svm::hw::SvmHardware;
use svm::npt::{Npt, NptMemoryType, NptPerms};
use svm::permission_maps::{IoPermissionMap, MsrAccess, MsrPermissionMap};
use svm::setup::{write_long_mode_guest, InterceptChoice, LongModeGuest, TSS_ATTRIB};
use svm::vmcb::control::{self, Intercept, TlbControl};
use svm::vmcb::save::{self, SegmentRegister};
use svm::vmcb::{Segment, Vmcb};

/// #UD: intercepted so that VMCALL works as a hypercall on SVM too; any other #UD is given back.
const UD_VECTOR: u8 = 6;
/// Most NPT table frames one guest may use (8 MiB of RAM needs 4).
const NPT_FRAME_LIMIT: usize = 64;

/// What every guest's VMCB shares.
pub struct SvmPlatform {
    pub features: SvmFeatures,
    /// The page where the entry code keeps the host's VMSAVE state.
    pub host_vmcb_pa: u64,
    pub host_xcr0: Option<u64>,
    /// MAXPHYADDR, for the VMRUN consistency checks.
    pub physical_address_bits: u8,
    /// The time-slice timer (None: guests run until they exit for another reason).
    pub slice: Option<SliceTimer>,
}

pub struct SvmVcpu {
    hw: RealSvm,
    vmcb: Box<Vmcb>,
    ram: &'static mut [u8],
    _npt: Npt<TableFrames>,
    _iopm: Box<IoPermissionMap>,
    _msrpm: Box<MsrPermissionMap>,
    regs: Registers,
    gprs: GuestRegisters,
    exit_len: u64,
    pending_gp: bool,
    /// A handler completed the exiting instruction for the guest (moved RIP past it): the next entry
    /// ends its interrupt shadow and delivers its single-step trap (svm::completed_instruction).
    instruction_completed: bool,
    /// EXITINTINFO of the last exit: an event whose delivery the exit interrupted, delivered again.
    reinject: Option<u64>,
    nrip_save: bool,
    slice: Option<SliceTimer>,
    xstate: Option<GuestXstate>,
    /// XCR0 bits a guest may enable (the host's XCR0).
    xcr0_allowed: u64,
    /// The guest's XCR0 as last set (XSETBV exit, or read back after an exit: see [`Self::track_xcr0`]).
    guest_xcr0: u64,
}

fn xgetbv0() -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: XGETBV of XCR0 only reads a register; CR4.OSXSAVE is on whenever the host has an XCR0.
    unsafe {
        core::arch::asm!("xgetbv", in("ecx") 0u32, out("eax") low, out("edx") high,
            options(nomem, nostack, preserves_flags));
    }
    u64::from(high) << 32 | u64::from(low)
}

impl SvmVcpu {
    /// Builds the guest: RAM (boot structures and the loaded image), NPT, permission maps and VMCB with
    /// ASID `asid`. `load` writes the image into the RAM and returns the entry point.
    pub fn new(
        platform: &SvmPlatform,
        asid: u32,
        ram_size: usize,
        load: impl FnOnce(&mut [u8]) -> Result<u64, String>,
    ) -> Result<Self, String> {
        isolation_prerequisites(platform.slice.is_some())?;
        let GuestRam {
            ram,
            host_base: base,
            entry,
        } = allocate_guest_ram(ram_size, load)?;
        let mut npt =
            Npt::new(TableFrames::new(NPT_FRAME_LIMIT)).map_err(|e| setup_err("NPT", e))?;
        npt.map_range(
            0,
            base,
            ram_size as u64,
            NptPerms::RWX,
            NptMemoryType::WriteBack,
        )
        .map_err(|e| setup_err("NPT", e))?;
        let mut msrpm = Box::new(MsrPermissionMap::trap_all());
        for number in MSR_ALLOW_LIST {
            for access in [MsrAccess::Read, MsrAccess::Write] {
                if !msrpm.set(number, access, false) {
                    return Err(format!("MSR permission map cannot hold MSR {number:#x}"));
                }
            }
        }
        let iopm = Box::new(IoPermissionMap::trap_all());
        let mut vmcb = Box::new(Vmcb::new());
        let guest = LongModeGuest {
            entry,
            stack: INITIAL_RSP,
            cr3: PML4_GPA,
            gdtr: (GDT_GPA, GDT_LIMIT as u16),
            idtr: (0, 0),
            asid,
            tlb_control: TlbControl::FlushAll,
            ncr3: npt.ncr3(),
            iopm_pa: iopm.as_bytes().as_ptr() as u64,
            msrpm_pa: msrpm.as_bytes().as_ptr() as u64,
            intercepts: InterceptChoice {
                intr: platform.slice.is_some(),
                ..InterceptChoice::default()
            },
        };
        write_long_mode_guest(&mut vmcb, &guest);
        if let Some(ud) = Intercept::exception(UD_VECTOR) {
            vmcb.set_intercept(ud, true);
        }
        vmcb.set_segment(
            SegmentRegister::Tr,
            Segment {
                selector: 0x18,
                attrib: TSS_ATTRIB,
                limit: 0x67,
                base: TSS_GPA,
            },
        );
        let limits = CpuLimits {
            max_physical_address_bits: platform.physical_address_bits,
            long_mode: true,
        };
        let violations = check_vmrun_consistency(&vmcb, limits);
        if let Some(first) = violations.first() {
            return Err(format!(
                "VMCB fails the VMRUN checks ({} problems, first: {first})",
                violations.len()
            ));
        }
        // SAFETY: SVM is enabled on the boot CPU (svm_bringup); vCPUs are used one at a time on it; every
        // address reaching the CPU through this handle (the VMCBs, and the NPT and permission maps they
        // name) is memory this guest or the bring-up owns for the rest of the run.
        let hw = unsafe { RealSvm::new(platform.host_vmcb_pa) }
            .map_err(|e| setup_err("host save area", e))?;
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
            "vcpu: VMCB {:#x}, RAM {:#x}..{:#x}, nCR3 {:#x}, asid {asid}, entry {entry:#x}, intr intercept {}",
            &*vmcb as *const Vmcb as u64,
            base,
            base + ram_size as u64,
            npt.ncr3(),
            platform.slice.is_some()
        );
        Ok(Self {
            hw,
            vmcb,
            ram,
            _npt: npt,
            _iopm: iopm,
            _msrpm: msrpm,
            regs,
            gprs: GuestRegisters::default(),
            exit_len: 0,
            pending_gp: false,
            instruction_completed: false,
            reinject: None,
            nrip_save: platform.features.nrip_save(),
            slice: platform.slice,
            xstate: Some(GuestXstate::new(platform.host_xcr0)),
            guest_xcr0: 1,
            xcr0_allowed: platform.host_xcr0.unwrap_or(1),
        })
    }

    /// Right after #VMEXIT, before the guest's extended state is saved: an XSETBV the CPU did not
    /// intercept (QEMU 7.2 TCG ignores the XSETBV intercept) changed XCR0 under the guest; save and later
    /// restore the state under the XCR0 the guest really has, so XSAVE/XRSTOR stay consistent. (The
    /// hardware only accepts XCR0 values the CPU supports; the allow-list of the XSETBV exit handler
    /// applies only where the intercept works.)
    ///
    /// Returns false when the XCR0 the guest set is outside the allow-list (the guest is then stopped).
    fn track_xcr0(&mut self) -> bool {
        let Some(x) = self.xstate.as_mut().filter(|x| x.uses_xsave()) else {
            return true;
        };
        let actual = xgetbv0();
        if actual != self.guest_xcr0 {
            log::warn!(
                "svm: guest XCR0 {:#x} -> {actual:#x} without an XSETBV exit",
                self.guest_xcr0
            );
            self.guest_xcr0 = actual;
            x.set_guest_xcr0(actual);
        }
        xcr0_valid(actual, self.xcr0_allowed)
    }

    fn vmcb_pa(&self) -> u64 {
        &*self.vmcb as *const Vmcb as u64
    }

    /// The event to inject on the next VMRUN: a #GP the handlers asked for, else an interrupted event,
    /// else the single-step trap of an instruction a handler completed (whose interrupt shadow and
    /// RFLAGS.RF end with it; registers already in the VMCB).
    fn next_event(&mut self) -> u64 {
        let completed = core::mem::take(&mut self.instruction_completed);
        if core::mem::take(&mut self.pending_gp) {
            self.reinject = None;
            return EventInfo {
                vector: 13,
                event_type: EventType::Exception,
                error_code: Some(0),
            }
            .encode();
        }
        if let Some(event) = self.reinject.take() {
            return event;
        }
        if !completed {
            return 0;
        }
        let (after, trap) = GuestEventState {
            rflags: self.vmcb.get64(save::RFLAGS),
            interrupt_shadow: self.vmcb.get64(control::INTERRUPT_SHADOW),
            dr6: self.vmcb.get64(save::DR6),
        }
        .after_completed_instruction();
        self.regs.rflags = after.rflags;
        self.vmcb.set64(save::RFLAGS, after.rflags);
        self.vmcb
            .set64(control::INTERRUPT_SHADOW, after.interrupt_shadow);
        self.vmcb.set64(save::DR6, after.dr6);
        trap.map_or(0, EventInfo::encode)
    }

    /// One VMRUN with the registers and pending event loaded; afterwards the registers are stored and
    /// the interrupted event (if any) kept for re-injection. Returns whether the guest's XCR0 is allowed.
    fn enter_once(&mut self) -> Result<bool, VcpuError> {
        load_registers(&mut self.vmcb, &self.regs);
        let event = self.next_event();
        self.vmcb.set64(control::EVENTINJ, event);
        self.gprs.gpr = self.regs.gpr;
        let pa = self.vmcb_pa();
        if let Some(x) = self.xstate.as_mut() {
            x.enter();
        }
        let result = match self.slice {
            Some(timer) => timer.with_interrupts(|| self.hw.vmrun(pa, &mut self.gprs)),
            None => self.hw.vmrun(pa, &mut self.gprs),
        };
        let xcr0_ok = self.track_xcr0();
        if let Some(x) = self.xstate.as_mut() {
            x.leave();
        }
        result.map_err(|e| VcpuError::EntryFailed(format!("VMRUN ({e})")))?;
        self.vmcb
            .set8(control::TLB_CONTROL, TlbControl::DoNothing as u8);
        self.vmcb.set64(control::EVENTINJ, 0);
        self.regs = store_registers(&self.vmcb, &self.gprs.gpr);
        if ExitCode::from_raw(self.vmcb.get64(control::EXITCODE)) == ExitCode::Invalid {
            return Err(VcpuError::EntryFailed(
                "VMRUN refused the guest state (VMEXIT_INVALID)".into(),
            ));
        }
        let interrupted = self.vmcb.get64(control::EXITINTINFO);
        self.reinject = (interrupted & (1 << 31) != 0).then_some(interrupted);
        Ok(xcr0_ok)
    }
}

impl Vcpu for SvmVcpu {
    fn run(&mut self) -> Result<VmExit, VcpuError> {
        loop {
            let xcr0_ok = self.enter_once()?;
            let raw_code = self.vmcb.get64(control::EXITCODE);
            if !xcr0_ok {
                return Ok(VmExit::ForbiddenState {
                    what: "XCR0 set outside the allow-list without an XSETBV exit",
                });
            }
            // CR4 is the guest's under SVM (no write intercept): a bit outside the allow-list
            // (protection keys, CET, ...: state nothing here switches between guests) found set
            // at an exit stops the guest.
            if self.vmcb.get64(save::CR4) & vmx::msr::CR4_HOST_OWNED != 0 {
                return Ok(VmExit::ForbiddenState {
                    what: "CR4 bit outside the guest's allow-list (protection keys, CET, ...)",
                });
            }
            if ExitCode::from_raw(raw_code) == ExitCode::Exception(UD_VECTOR) {
                if is_vmcall_at(self.ram, self.regs.cr3, self.regs.rip) {
                    self.exit_len = VMCALL.len() as u64;
                    return Ok(VmExit::Hypercall);
                }
                // Not VMCALL: the guest gets its #UD as if nothing intercepted it.
                self.reinject = Some(
                    EventInfo {
                        vector: UD_VECTOR,
                        event_type: EventType::Exception,
                        error_code: None,
                    }
                    .encode(),
                );
                continue;
            }
            let exit = decode_exit(&self.vmcb, &self.regs, self.slice.is_some());
            self.exit_len = 0;
            if is_instruction_exit(&self.vmcb) {
                match instruction_len(&self.vmcb, self.nrip_save, self.ram, self.regs.cr3) {
                    Ok(len) => self.exit_len = len,
                    Err(_) => {
                        return Ok(VmExit::Other {
                            reason: raw_code as u32,
                            name: "intercepted instruction of unknown length",
                        })
                    }
                }
            }
            return Ok(exit);
        }
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
        self.guest_xcr0 = value;
        if let Some(x) = self.xstate.as_mut() {
            x.set_guest_xcr0(value);
        }
    }
    fn guest_xcr0(&self) -> u64 {
        self.guest_xcr0
    }
    fn memory(&self) -> &[u8] {
        self.ram
    }
    fn memory_mut(&mut self) -> &mut [u8] {
        self.ram
    }
    fn diagnostic_dump(&mut self) -> Vec<String> {
        let v = &self.vmcb;
        let exit = svm::exit::VmExit::read(v);
        let cs = v.segment(SegmentRegister::Cs);
        let mut lines = alloc::vec![
            format!(
                "vmcb: exit {} info1 {:#x} info2 {:#x} exitintinfo {:#x}",
                exit.code,
                exit.info1,
                exit.info2,
                v.get64(control::EXITINTINFO)
            ),
            format!(
                "vmcb: rip {:#x} nrip {:#x} rsp {:#x} rflags {:#x} cs {:#x}/{:#x}",
                v.get64(save::RIP),
                v.get64(control::NRIP),
                v.get64(save::RSP),
                v.get64(save::RFLAGS),
                cs.selector,
                cs.attrib.0
            ),
            format!(
                "vmcb: cr0 {:#x} cr3 {:#x} cr4 {:#x} efer {:#x} asid {} ncr3 {:#x}",
                v.get64(save::CR0),
                v.get64(save::CR3),
                v.get64(save::CR4),
                v.get64(save::EFER),
                v.get32(control::GUEST_ASID),
                v.get64(control::N_CR3)
            ),
        ];
        let limits = CpuLimits {
            max_physical_address_bits: 52,
            long_mode: true,
        };
        lines.extend(
            check_vmrun_consistency(v, limits)
                .iter()
                .map(|p| format!("vmrun check: {p}")),
        );
        lines
    }
}
