//! Guest extended state (x87/SSE/AVX) kept in an XSAVE area: restored with the guest's XCR0 just before
//! each entry and saved right after each exit, then the host's XCR0 is put back, so the hypervisor's own
//! SIMD code never sees or clobbers guest state, and a guest never sees host register contents.

use alloc::boxed::Box;

/// Room for x87|SSE|AVX (legacy 512 + header 64 + AVX 256 bytes) with margin; 64-byte aligned.
#[repr(C, align(64))]
struct Area([u8; 4096]);

/// The state components XSAVE/XRSTOR may touch: those whose standard-format offsets end inside the
/// area (x87, SSE, AVX, AVX-512's opmask/ZMM_Hi256/Hi16_ZMM, PKRU: at most 2696 bytes). Larger
/// components (AMX tile data) are never saved here, whatever XCR0 a guest managed to set.
const FITS_AREA: u64 = 0b10_1110_0111;

/// One guest's extended state and XCR0.
pub struct GuestXstate {
    area: Box<Area>,
    guest_xcr0: u64,
    host_xcr0: u64,
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
    /// `host_xcr0`: the XCR0 the hypervisor runs with (None when XSAVE is off: then nothing is switched).
    pub fn new(host_xcr0: Option<u64>) -> Option<Self> {
        let host_xcr0 = host_xcr0?;
        Some(Self {
            area: Box::new(Area([0; 4096])),
            guest_xcr0: 1,
            host_xcr0,
        })
    }

    pub fn set_guest_xcr0(&mut self, value: u64) {
        self.guest_xcr0 = value;
    }

    /// The requested-feature bitmap of XSAVE/XRSTOR: the guest's components that the host also
    /// enables and that fit the area.
    fn components(&self) -> (u32, u32) {
        let mask = self.guest_xcr0 & self.host_xcr0 & FITS_AREA;
        (mask as u32, (mask >> 32) as u32)
    }

    /// Before entry: the guest's XCR0 and registers. A zeroed area (XSTATE_BV = 0) loads the init state.
    pub fn enter(&mut self) {
        xsetbv(self.guest_xcr0);
        let area = self.area.0.as_ptr();
        let (low, high) = self.components();
        // SAFETY: the area is 64-byte aligned and 4096 bytes; the components asked for (`FITS_AREA`)
        // end within 2696 bytes; it holds either zeros or what XSAVE wrote; XRSTOR only reads it.
        unsafe {
            core::arch::asm!("xrstor64 [{a}]", a = in(reg) area, in("eax") low, in("edx") high,
                options(nostack, preserves_flags, readonly));
        }
    }

    /// After exit: save the guest's registers under its XCR0, then switch back to the host's.
    pub fn leave(&mut self) {
        let area = self.area.0.as_mut_ptr();
        let (low, high) = self.components();
        // SAFETY: as in `enter`; XSAVE writes only the components asked for (within `FITS_AREA`, so
        // within the area's first 2696 bytes) and the header.
        unsafe {
            core::arch::asm!("xsave64 [{a}]", a = in(reg) area, in("eax") low, in("edx") high,
                options(nostack, preserves_flags));
        }
        xsetbv(self.host_xcr0);
    }
}
