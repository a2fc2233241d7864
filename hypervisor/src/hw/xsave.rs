//! Guest extended state (x87/SSE/AVX) kept in an XSAVE area: restored with the guest's XCR0 just before
//! each entry and saved right after each exit, then the host's XCR0 is put back, so the hypervisor's own
//! SIMD code never sees or clobbers guest state, and a guest never sees host register contents.

use alloc::boxed::Box;

/// Room for x87|SSE|AVX (legacy 512 + header 64 + AVX 256 bytes) with margin; 64-byte aligned.
#[repr(C, align(64))]
struct Area([u8; 4096]);

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

    /// Before entry: the guest's XCR0 and registers. A zeroed area (XSTATE_BV = 0) loads the init state.
    pub fn enter(&mut self) {
        xsetbv(self.guest_xcr0);
        let area = self.area.0.as_ptr();
        // SAFETY: the area is 64-byte aligned, 4096 bytes (more than x87|SSE|AVX need), and holds either zeros
        // or what XSAVE wrote under the same XCR0; XRSTOR only reads it.
        unsafe {
            core::arch::asm!("xrstor64 [{a}]", a = in(reg) area, in("eax") u32::MAX, in("edx") u32::MAX,
                options(nostack, preserves_flags, readonly));
        }
    }

    /// After exit: save the guest's registers under its XCR0, then switch back to the host's.
    pub fn leave(&mut self) {
        let area = self.area.0.as_mut_ptr();
        // SAFETY: as in `enter`; XSAVE writes at most the components of the current (guest) XCR0 into the area.
        unsafe {
            core::arch::asm!("xsave64 [{a}]", a = in(reg) area, in("eax") u32::MAX, in("edx") u32::MAX,
                options(nostack, preserves_flags));
        }
        xsetbv(self.host_xcr0);
    }
}
