//! Model-specific register numbers used by VT-x setup (Intel SDM Vol. 4, Table 2-2 and Appendix A).

/// IA32_FEATURE_CONTROL: bit 0 lock, bit 1 VMXON inside SMX, bit 2 VMXON outside SMX.
pub const IA32_FEATURE_CONTROL: u32 = 0x3A;
/// IA32_MTRRCAP: variable MTRR count and fixed-range support.
pub const IA32_MTRRCAP: u32 = 0xFE;
/// IA32_SYSENTER_CS.
pub const IA32_SYSENTER_CS: u32 = 0x174;
/// IA32_SYSENTER_ESP.
pub const IA32_SYSENTER_ESP: u32 = 0x175;
/// IA32_SYSENTER_EIP.
pub const IA32_SYSENTER_EIP: u32 = 0x176;
/// IA32_DEBUGCTL.
pub const IA32_DEBUGCTL: u32 = 0x1D9;
/// IA32_PAT.
pub const IA32_PAT: u32 = 0x277;
/// IA32_MTRR_DEF_TYPE.
pub const IA32_MTRR_DEF_TYPE: u32 = 0x2FF;

/// IA32_VMX_BASIC: revision id, region size, memory type, true-controls support.
pub const IA32_VMX_BASIC: u32 = 0x480;
/// IA32_VMX_PINBASED_CTLS.
pub const IA32_VMX_PINBASED_CTLS: u32 = 0x481;
/// IA32_VMX_PROCBASED_CTLS (primary processor-based controls).
pub const IA32_VMX_PROCBASED_CTLS: u32 = 0x482;
/// IA32_VMX_EXIT_CTLS.
pub const IA32_VMX_EXIT_CTLS: u32 = 0x483;
/// IA32_VMX_ENTRY_CTLS.
pub const IA32_VMX_ENTRY_CTLS: u32 = 0x484;
/// IA32_VMX_MISC: preemption-timer rate, activity states, CR3-target count.
pub const IA32_VMX_MISC: u32 = 0x485;
/// IA32_VMX_CR0_FIXED0: bits that must be 1 in CR0 in VMX operation.
pub const IA32_VMX_CR0_FIXED0: u32 = 0x486;
/// IA32_VMX_CR0_FIXED1: bits that may be 1 in CR0 in VMX operation.
pub const IA32_VMX_CR0_FIXED1: u32 = 0x487;
/// IA32_VMX_CR4_FIXED0: bits that must be 1 in CR4 in VMX operation.
pub const IA32_VMX_CR4_FIXED0: u32 = 0x488;
/// IA32_VMX_CR4_FIXED1: bits that may be 1 in CR4 in VMX operation.
pub const IA32_VMX_CR4_FIXED1: u32 = 0x489;
/// IA32_VMX_VMCS_ENUM: highest VMCS field index.
pub const IA32_VMX_VMCS_ENUM: u32 = 0x48A;
/// IA32_VMX_PROCBASED_CTLS2 (secondary processor-based controls).
pub const IA32_VMX_PROCBASED_CTLS2: u32 = 0x48B;
/// IA32_VMX_EPT_VPID_CAP.
pub const IA32_VMX_EPT_VPID_CAP: u32 = 0x48C;
/// IA32_VMX_TRUE_PINBASED_CTLS (valid when VMX_BASIC bit 55 is set).
pub const IA32_VMX_TRUE_PINBASED_CTLS: u32 = 0x48D;
/// IA32_VMX_TRUE_PROCBASED_CTLS.
pub const IA32_VMX_TRUE_PROCBASED_CTLS: u32 = 0x48E;
/// IA32_VMX_TRUE_EXIT_CTLS.
pub const IA32_VMX_TRUE_EXIT_CTLS: u32 = 0x48F;
/// IA32_VMX_TRUE_ENTRY_CTLS.
pub const IA32_VMX_TRUE_ENTRY_CTLS: u32 = 0x490;
/// IA32_VMX_VMFUNC.
pub const IA32_VMX_VMFUNC: u32 = 0x491;
/// IA32_VMX_PROCBASED_CTLS3 (tertiary controls, 64-bit allowed-1 mask).
pub const IA32_VMX_PROCBASED_CTLS3: u32 = 0x492;

/// IA32_EFER.
pub const IA32_EFER: u32 = 0xC000_0080;
/// IA32_STAR.
pub const IA32_STAR: u32 = 0xC000_0081;
/// IA32_LSTAR.
pub const IA32_LSTAR: u32 = 0xC000_0082;
/// IA32_CSTAR.
pub const IA32_CSTAR: u32 = 0xC000_0083;
/// IA32_FMASK.
pub const IA32_FMASK: u32 = 0xC000_0084;
/// IA32_FS_BASE.
pub const IA32_FS_BASE: u32 = 0xC000_0100;
/// IA32_GS_BASE.
pub const IA32_GS_BASE: u32 = 0xC000_0101;
/// IA32_KERNEL_GS_BASE.
pub const IA32_KERNEL_GS_BASE: u32 = 0xC000_0102;

/// EFER.LME: long mode enable.
pub const EFER_LME: u64 = 1 << 8;
/// EFER.LMA: long mode active.
pub const EFER_LMA: u64 = 1 << 10;
/// EFER.NXE: no-execute enable.
pub const EFER_NXE: u64 = 1 << 11;
/// CR4.VMXE: VMX enable.
pub const CR4_VMXE: u64 = 1 << 13;
/// CR4 bits a guest may change: those whose effect is the guest's own (its page tables, its
/// SIMD state kept in the hypervisor's XSAVE area, FS/GS base in the VMCS or VMCB): TSD, DE, PSE,
/// PAE, PGE, PCE, OSFXSR, OSXMMEXCPT, UMIP, FSGSBASE, PCIDE, OSXSAVE, SMEP, SMAP. An allow-list, not
/// a deny-list: every other bit, known today (VME, PVI, MCE, LA57, VMXE, SMXE, Key Locker's KL, PKE,
/// CET, PKS, UINTR, LASS, LAM, FRED: state no one switches between guests, such as the Key Locker
/// wrapping key, PKRU's use or the user-interrupt flag) or defined later, is the host's: under VT-x it
/// sits in the CR4 guest/host mask (a change exits and stops the guest), under SVM a guest found
/// with one set after an exit is stopped.
pub const CR4_GUEST_OWNED: u64 = (1 << 2)
    | (1 << 3)
    | (1 << 4)
    | (1 << 5)
    | (1 << 7)
    | (1 << 8)
    | (1 << 9)
    | (1 << 10)
    | (1 << 11)
    | (1 << 16)
    | (1 << 17)
    | (1 << 18)
    | (1 << 20)
    | (1 << 21);
/// CR4 bits outside [`CR4_GUEST_OWNED`].
pub const CR4_HOST_OWNED: u64 = !CR4_GUEST_OWNED;
