//! Guest extended state (x87/SSE/AVX, MXCSR and the x87 control word) kept in an XSAVE area:
//! restored just before each entry and saved right after each exit, both under the host's XCR0, with
//! the guest's XCR0 in force only while it runs; then the host's control state is loaded. So the
//! hypervisor's own SIMD code never sees or clobbers guest state, never runs with a guest's MXCSR,
//! and a guest never sees host register contents or another guest's. On a CPU without XSAVE (older
//! ones with VT-x and EPT, or SVM and nested paging) the same is done with FXSAVE/FXRSTOR, which every
//! x86_64 CPU has: x87, SSE and MXCSR are all such a CPU holds.

use alloc::boxed::Box;

/// Room for x87|SSE|AVX (legacy 512 + header 64 + AVX 256 bytes) with margin; 64-byte aligned.
#[repr(C, align(64))]
struct Area([u8; AREA_SIZE]);

/// The state components XSAVE/XRSTOR may touch: x87, SSE, AVX, AVX-512's opmask/ZMM_Hi256/Hi16_ZMM
/// and PKRU (standard-format offsets end by 2696 bytes; each is also checked against CPUID leaf 0Dh
/// when a guest's state is set up). Larger components (AMX tile data) are never saved here,
/// whatever XCR0 a guest managed to set.
const FITS_AREA: u64 = 0b10_1110_0111;
const AREA_SIZE: usize = 4096;

/// The components of `FITS_AREA` enabled in `xcr0` whose offset and size (CPUID leaf 0Dh) lie
/// inside the area; x87 and SSE live in the legacy region, always inside.
fn components_inside_area(xcr0: u64) -> u64 {
    let mut inside = 0b11;
    for i in 2..10u32 {
        let bit = 1u64 << i;
        if xcr0 & FITS_AREA & bit == 0 {
            continue;
        }
        let leaf = core::arch::x86_64::__cpuid_count(0xD, i);
        let (size, offset) = (leaf.eax as usize, leaf.ebx as usize);
        if offset + size <= AREA_SIZE {
            inside |= bit;
        }
    }
    inside
}

/// Offsets in the legacy region and the header: x87 control word, MXCSR, XSTATE_BV.
const FCW: usize = 0;
const MXCSR: usize = 24;
const XSTATE_BV: usize = 512;
/// The control state the host (Rust code: default rounding, all exceptions masked) runs with, and
/// a new guest starts with.
const DEFAULT_FCW: u16 = 0x037F;
const DEFAULT_MXCSR: u32 = 0x1F80;

/// One guest's extended state and XCR0.
pub struct GuestXstate {
    area: Box<Area>,
    guest_xcr0: u64,
    /// The host's XCR0; None without XSAVE (FXSAVE/FXRSTOR then).
    host_xcr0: Option<u64>,
    /// The components saved and restored: every one the host enables that lies inside the area,
    /// whatever the guest's XCR0 (a guest uses SSE registers and MXCSR with XCR0 = x87 only).
    allowed: u64,
}

fn xsetbv(value: u64) {
    // SAFETY: CR4.OSXSAVE is on (checked by `new` through the host XCR0) and `value` is a valid XCR0 for
    // this CPU: the host's own value, or a guest value the exit handler checked against it.
    unsafe {
        core::arch::asm!("xsetbv", in("ecx") 0u32, in("eax") value as u32, in("edx") (value >> 32) as u32,
            options(nomem, nostack, preserves_flags));
    }
}

impl GuestXstate {
    /// `host_xcr0`: the XCR0 the hypervisor runs with (None when XSAVE is off: FXSAVE/FXRSTOR then).
    /// The guest starts with the default x87 control word and MXCSR and zeroed registers.
    pub fn new(host_xcr0: Option<u64>) -> Self {
        let mut area = Box::new(Area([0; AREA_SIZE]));
        area.0[FCW..FCW + 2].copy_from_slice(&DEFAULT_FCW.to_le_bytes());
        area.0[MXCSR..MXCSR + 4].copy_from_slice(&DEFAULT_MXCSR.to_le_bytes());
        let allowed = host_xcr0.map_or(0, |x| x & components_inside_area(x));
        // x87 and SSE as stored here (the rest in their initial state).
        area.0[XSTATE_BV..XSTATE_BV + 8].copy_from_slice(&(allowed & 0b11).to_le_bytes());
        Self {
            area,
            guest_xcr0: 1,
            host_xcr0,
            allowed,
        }
    }

    /// Whether XSAVE (and so XCR0) is in use; else FXSAVE.
    pub fn uses_xsave(&self) -> bool {
        self.host_xcr0.is_some()
    }

    pub fn set_guest_xcr0(&mut self, value: u64) {
        self.guest_xcr0 = value;
    }

    pub fn guest_xcr0(&self) -> u64 {
        self.guest_xcr0
    }

    /// The requested-feature bitmap of XSAVE/XRSTOR.
    fn components(&self) -> (u32, u32) {
        (self.allowed as u32, (self.allowed >> 32) as u32)
    }

    /// Before entry (the host's XCR0 in force): the guest's registers and control state, then its
    /// XCR0. Restoring under the host's XCR0 means the saved header (written under it too) never
    /// names a component XCR0 lacks, whatever the guest did to its own XCR0.
    pub fn enter(&mut self) {
        let area = self.area.0.as_ptr();
        if !self.uses_xsave() {
            // SAFETY: the area is 16-byte aligned (64) and holds 512 bytes (4096) in FXSAVE's
            // layout: written by `new` (default FCW and MXCSR, no reserved MXCSR bit) or by FXSAVE.
            // FXRSTOR only reads it and replaces the x87/SSE state and MXCSR (declared clobbered).
            unsafe {
                core::arch::asm!("fxrstor64 [{a}]", a = in(reg) area, clobber_abi("C"),
                    options(nostack, preserves_flags, readonly));
            }
            return;
        }
        let (low, high) = self.components();
        // SAFETY: the area is 64-byte aligned and AREA_SIZE bytes; the components asked for
        // (`allowed`) lie inside it (CPUID leaf 0Dh, checked in `new`) and are enabled in the
        // host's XCR0, in force now; the header was written by `new` or by XSAVE under the same
        // XCR0. XRSTOR only reads the area; it replaces the vector, x87 and MXCSR state, which the
        // clobber list declares (no Rust value lives in those registers across it).
        unsafe {
            core::arch::asm!("xrstor64 [{a}]", a = in(reg) area, in("eax") low, in("edx") high,
                clobber_abi("C"), options(nostack, preserves_flags, readonly));
        }
        xsetbv(self.guest_xcr0);
    }

    /// After exit: the host's XCR0 back, the guest's state saved under it, then the host's control
    /// state (x87 control word, MXCSR) loaded: the host's SIMD code never runs with a guest's
    /// exception masks or rounding mode.
    pub fn leave(&mut self) {
        let area = self.area.0.as_mut_ptr();
        if let Some(host_xcr0) = self.host_xcr0 {
            xsetbv(host_xcr0);
            let (low, high) = self.components();
            // SAFETY: as in `enter`; XSAVE writes only the header and the components asked for,
            // which lie inside the area.
            unsafe {
                core::arch::asm!("xsave64 [{a}]", a = in(reg) area, in("eax") low, in("edx") high,
                    options(nostack, preserves_flags));
            }
        } else {
            // SAFETY: FXSAVE writes 512 bytes at the 16-byte aligned area, which has 4096.
            unsafe {
                core::arch::asm!("fxsave64 [{a}]", a = in(reg) area, options(nostack, preserves_flags));
            }
        }
        let (fcw, mxcsr) = (DEFAULT_FCW, DEFAULT_MXCSR);
        // SAFETY: loads the host's default x87 control word and MXCSR from two locals (valid
        // values: all exceptions masked, round to nearest).
        unsafe {
            core::arch::asm!("fldcw [{f}]", "ldmxcsr [{m}]", f = in(reg) &fcw, m = in(reg) &mxcsr,
                options(nostack, preserves_flags, readonly));
        }
    }
}
