//! Which control register bits turn on SSE/AVX for the hypervisor's own code.
//!
//! CR0.MP=1 and CR0.EM=0 (no x87 emulation), CR4.OSFXSR and CR4.OSXMMEXCPT (SSE), and, when XSAVE exists,
//! CR4.OSXSAVE with XCR0 = x87|SSE, plus AVX when the CPU has AVX and XCR0 may hold its state, plus
//! PKRU when XCR0 may hold it: the hypervisor never uses protection keys itself, but with PKRU in
//! XCR0 the guests' XSAVE areas (hw::xsave) switch it, so a guest that wrote PKRU (SVM lets it turn
//! CR4.PKE on and off between exits) cannot pass the value to the next guest.

use core::fmt;

pub const CR0_MP: u64 = 1 << 1;
pub const CR0_EM: u64 = 1 << 2;
pub const CR4_OSFXSR: u64 = 1 << 9;
pub const CR4_OSXMMEXCPT: u64 = 1 << 10;
pub const CR4_OSXSAVE: u64 = 1 << 18;
pub const XCR0_X87: u64 = 1 << 0;
pub const XCR0_SSE: u64 = 1 << 1;
pub const XCR0_AVX: u64 = 1 << 2;
pub const XCR0_PKRU: u64 = 1 << 9;

/// What CPUID says about SIMD support.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SimdSupport {
    pub sse2: bool,
    pub fxsave: bool,
    pub xsave: bool,
    pub avx: bool,
    /// XCR0 bits the CPU supports (CPUID.(EAX=0Dh,ECX=0):EAX), meaningful only with `xsave`.
    pub xcr0_supported: u64,
}

/// Control register changes to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimdPlan {
    pub cr0_set: u64,
    pub cr0_clear: u64,
    pub cr4_set: u64,
    /// Value for XCR0, when XSAVE is enabled.
    pub xcr0: Option<u64>,
}

impl SimdPlan {
    /// True when AVX state is enabled in XCR0.
    pub fn avx_enabled(&self) -> bool {
        self.xcr0.is_some_and(|x| x & XCR0_AVX != 0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimdError {
    /// Every x86_64 CPU has SSE2 and FXSAVE; a CPUID saying otherwise is broken.
    NoSse2OrFxsave,
}

impl fmt::Display for SimdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSse2OrFxsave => write!(
                f,
                "CPUID reports no SSE2 or no FXSAVE, which every x86_64 CPU has"
            ),
        }
    }
}

pub fn plan(support: SimdSupport) -> Result<SimdPlan, SimdError> {
    if !support.sse2 || !support.fxsave {
        return Err(SimdError::NoSse2OrFxsave);
    }
    let mut cr4_set = CR4_OSFXSR | CR4_OSXMMEXCPT;
    let xcr0 = if support.xsave {
        cr4_set |= CR4_OSXSAVE;
        let avx_allowed = support.avx && support.xcr0_supported & XCR0_AVX != 0;
        let avx = if avx_allowed { XCR0_AVX } else { 0 };
        Some(XCR0_X87 | XCR0_SSE | avx | (support.xcr0_supported & XCR0_PKRU))
    } else {
        None
    };
    Ok(SimdPlan {
        cr0_set: CR0_MP,
        cr0_clear: CR0_EM,
        cr4_set,
        xcr0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: SimdSupport = SimdSupport {
        sse2: true,
        fxsave: true,
        xsave: false,
        avx: false,
        xcr0_supported: 0,
    };

    #[test]
    fn sse_only_without_xsave() {
        let p = plan(BASE).unwrap();
        assert_eq!((p.cr0_set, p.cr0_clear), (CR0_MP, CR0_EM));
        assert_eq!(p.cr4_set, CR4_OSFXSR | CR4_OSXMMEXCPT);
        assert_eq!(p.xcr0, None);
        assert!(!p.avx_enabled());
    }

    #[test]
    fn avx_with_xsave() {
        let p = plan(SimdSupport {
            xsave: true,
            avx: true,
            xcr0_supported: 0xe7,
            ..BASE
        })
        .unwrap();
        assert_eq!(p.cr4_set, CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_OSXSAVE);
        assert_eq!(p.xcr0, Some(7));
        assert!(p.avx_enabled());
    }

    #[test]
    fn pkru_state_is_enabled_when_xcr0_may_hold_it() {
        let p = plan(SimdSupport {
            xsave: true,
            avx: true,
            xcr0_supported: 0x2e7,
            ..BASE
        })
        .unwrap();
        assert_eq!(p.xcr0, Some(XCR0_X87 | XCR0_SSE | XCR0_AVX | XCR0_PKRU));
    }

    #[test]
    fn xsave_without_avx_enables_x87_and_sse_state_only() {
        assert_eq!(
            plan(SimdSupport {
                xsave: true,
                xcr0_supported: 3,
                ..BASE
            })
            .unwrap()
            .xcr0,
            Some(3)
        );
        let no_avx_state = SimdSupport {
            xsave: true,
            avx: true,
            xcr0_supported: 3,
            ..BASE
        };
        assert_eq!(plan(no_avx_state).unwrap().xcr0, Some(3));
    }

    #[test]
    fn broken_cpuid_is_an_error() {
        assert_eq!(
            plan(SimdSupport {
                sse2: false,
                ..BASE
            }),
            Err(SimdError::NoSse2OrFxsave)
        );
    }
}
