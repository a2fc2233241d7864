//! Guest extended state (x87/SSE/AVX) kept in an XSAVE area: restored with the guest's XCR0 just before
//! each entry and saved right after each exit, then the host's XCR0 is put back, so the hypervisor's own
//! SIMD code never sees or clobbers guest state, and a guest never sees host register contents.

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

/// Offset of the XSAVE header's XSTATE_BV (the components the area holds non-initial state of).
const XSTATE_BV: usize = 512;

/// One guest's extended state and XCR0.
pub struct GuestXstate {
    area: Box<Area>,
    guest_xcr0: u64,
    host_xcr0: u64,
    /// The components XSAVE/XRSTOR may name: in the host's XCR0 and inside the area.
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
    /// `host_xcr0`: the XCR0 the hypervisor runs with (None when XSAVE is off: then nothing is switched).
    pub fn new(host_xcr0: Option<u64>) -> Option<Self> {
        let host_xcr0 = host_xcr0?;
        Some(Self {
            area: Box::new(Area([0; AREA_SIZE])),
            guest_xcr0: 1,
            host_xcr0,
            allowed: host_xcr0 & components_inside_area(host_xcr0),
        })
    }

    pub fn set_guest_xcr0(&mut self, value: u64) {
        self.guest_xcr0 = value;
    }

    /// The requested-feature bitmap of XSAVE/XRSTOR: the guest's components that the host also
    /// enables and that fit the area.
    fn components(&self) -> (u32, u32) {
        let mask = self.guest_xcr0 & self.allowed;
        (mask as u32, (mask >> 32) as u32)
    }

    /// Before entry: the guest's XCR0 and registers. A zeroed area (XSTATE_BV = 0) loads the init state.
    pub fn enter(&mut self) {
        xsetbv(self.guest_xcr0);
        // XRSTOR faults (#GP, in the hypervisor) when the header's XSTATE_BV names a component that
        // XCR0 lacks: a guest that saved AVX state and then cleared XCR0.AVX would do that. Such a
        // component is off for the guest now; it is dropped from the header (it restarts in its
        // initial state if the guest turns it on again).
        let bv = &mut self.area.0[XSTATE_BV..XSTATE_BV + 8];
        let kept = u64::from_le_bytes([bv[0], bv[1], bv[2], bv[3], bv[4], bv[5], bv[6], bv[7]])
            & self.guest_xcr0;
        bv.copy_from_slice(&kept.to_le_bytes());
        let area = self.area.0.as_ptr();
        let (low, high) = self.components();
        // SAFETY: the area is 64-byte aligned and AREA_SIZE bytes; the components asked for
        // (`allowed`) lie inside it (CPUID leaf 0Dh, checked in `new`); the header names only
        // components of the XCR0 just set; XRSTOR only reads the area.
        unsafe {
            core::arch::asm!("xrstor64 [{a}]", a = in(reg) area, in("eax") low, in("edx") high,
                options(nostack, preserves_flags, readonly));
        }
    }

    /// After exit: save the guest's registers under its XCR0, then switch back to the host's.
    pub fn leave(&mut self) {
        let area = self.area.0.as_mut_ptr();
        let (low, high) = self.components();
        // SAFETY: as in `enter`; XSAVE writes only the header and the components asked for, which
        // lie inside the area.
        unsafe {
            core::arch::asm!("xsave64 [{a}]", a = in(reg) area, in("eax") low, in("edx") high,
                options(nostack, preserves_flags));
        }
        xsetbv(self.host_xcr0);
    }
}
