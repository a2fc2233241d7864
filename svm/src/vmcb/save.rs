//! State-save area fields (APM Vol. 2, Table B-2); offsets here are from the start of the VMCB
//! (0x400 + the table's offset).

use super::{Field16, Field32, Field64, Field8, SAVE_AREA_OFFSET};

const fn at(offset: u16) -> u16 {
    SAVE_AREA_OFFSET as u16 + offset
}

/// The ten segment-like registers of the state-save area, 16 bytes each from 0x400.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentRegister {
    /// ES (0x400).
    Es = 0,
    /// CS (0x410).
    Cs,
    /// SS (0x420).
    Ss,
    /// DS (0x430).
    Ds,
    /// FS (0x440).
    Fs,
    /// GS (0x450).
    Gs,
    /// GDTR (0x460; selector and attrib unused).
    Gdtr,
    /// LDTR (0x470).
    Ldtr,
    /// IDTR (0x480; selector and attrib unused).
    Idtr,
    /// TR (0x490).
    Tr,
}

/// The four fields of one segment register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentFields {
    /// Selector (+0).
    pub selector: Field16,
    /// Packed attributes (+2).
    pub attrib: Field16,
    /// Limit (+4).
    pub limit: Field32,
    /// Base (+8).
    pub base: Field64,
}

impl SegmentRegister {
    /// All ten, in VMCB order.
    pub const ALL: [Self; 10] = [
        Self::Es,
        Self::Cs,
        Self::Ss,
        Self::Ds,
        Self::Fs,
        Self::Gs,
        Self::Gdtr,
        Self::Ldtr,
        Self::Idtr,
        Self::Tr,
    ];

    /// The fields of this register.
    pub const fn fields(self) -> SegmentFields {
        let base = at(16 * self as u16);
        SegmentFields {
            selector: Field16::new(base, "SEG.selector"),
            attrib: Field16::new(base + 2, "SEG.attrib"),
            limit: Field32::new(base + 4, "SEG.limit"),
            base: Field64::new(base + 8, "SEG.base"),
        }
    }
}

/// CPL.
pub const CPL: Field8 = Field8::new(at(0x0CB), "CPL");
/// EFER.
pub const EFER: Field64 = Field64::new(at(0x0D0), "EFER");
/// CR4.
pub const CR4: Field64 = Field64::new(at(0x148), "CR4");
/// CR3.
pub const CR3: Field64 = Field64::new(at(0x150), "CR3");
/// CR0.
pub const CR0: Field64 = Field64::new(at(0x158), "CR0");
/// DR7.
pub const DR7: Field64 = Field64::new(at(0x160), "DR7");
/// DR6.
pub const DR6: Field64 = Field64::new(at(0x168), "DR6");
/// RFLAGS.
pub const RFLAGS: Field64 = Field64::new(at(0x170), "RFLAGS");
/// RIP.
pub const RIP: Field64 = Field64::new(at(0x178), "RIP");
/// RSP.
pub const RSP: Field64 = Field64::new(at(0x1D8), "RSP");
/// S_CET.
pub const S_CET: Field64 = Field64::new(at(0x1E0), "S_CET");
/// SSP.
pub const SSP: Field64 = Field64::new(at(0x1E8), "SSP");
/// ISST_ADDR.
pub const ISST_ADDR: Field64 = Field64::new(at(0x1F0), "ISST_ADDR");
/// RAX (VMRUN loads the guest's RAX from here; #VMEXIT stores it back).
pub const RAX: Field64 = Field64::new(at(0x1F8), "RAX");
/// STAR.
pub const STAR: Field64 = Field64::new(at(0x200), "STAR");
/// LSTAR.
pub const LSTAR: Field64 = Field64::new(at(0x208), "LSTAR");
/// CSTAR.
pub const CSTAR: Field64 = Field64::new(at(0x210), "CSTAR");
/// SFMASK.
pub const SFMASK: Field64 = Field64::new(at(0x218), "SFMASK");
/// KernelGsBase.
pub const KERNEL_GS_BASE: Field64 = Field64::new(at(0x220), "KernelGsBase");
/// SYSENTER_CS.
pub const SYSENTER_CS: Field64 = Field64::new(at(0x228), "SYSENTER_CS");
/// SYSENTER_ESP.
pub const SYSENTER_ESP: Field64 = Field64::new(at(0x230), "SYSENTER_ESP");
/// SYSENTER_EIP.
pub const SYSENTER_EIP: Field64 = Field64::new(at(0x238), "SYSENTER_EIP");
/// CR2.
pub const CR2: Field64 = Field64::new(at(0x240), "CR2");
/// G_PAT: the guest PAT used with nested paging.
pub const G_PAT: Field64 = Field64::new(at(0x268), "G_PAT");
/// DBGCTL.
pub const DBGCTL: Field64 = Field64::new(at(0x270), "DBGCTL");
/// BR_FROM.
pub const BR_FROM: Field64 = Field64::new(at(0x278), "BR_FROM");
/// BR_TO.
pub const BR_TO: Field64 = Field64::new(at(0x280), "BR_TO");
/// LASTEXCPFROM.
pub const LAST_EXCEPTION_FROM: Field64 = Field64::new(at(0x288), "LASTEXCPFROM");
/// LASTEXCPTO.
pub const LAST_EXCEPTION_TO: Field64 = Field64::new(at(0x290), "LASTEXCPTO");
