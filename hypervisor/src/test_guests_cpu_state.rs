//! Built-in test guests for CPU state that must not pass between guests (the others are listed in
//! test_guests.rs).
//!
//! - `pkru-a`, `pkru-b` (the same code): turn on CR4.PKE, read PKRU, write 0x5A5A5A5A to it, turn
//!   PKE off again, then print the value read (each must print `0000000000000000 `: a guest
//!   starts with its own PKRU). Under SVM CR4 is the guest's and the PKE check runs only at an exit,
//!   which finds PKE off: before PKRU was switched with the rest of the extended state, the second
//!   guest printed the first one's 5A5A5A5A. Under VT-x the MOV to CR4 setting PKE exits and stops
//!   each guest.

use crate::test_guests::PRINT_HEX;
use alloc::vec::Vec;

/// Assembled with GNU as (Intel syntax), up to its HLT; `print_hex` (test_guests::PRINT_HEX) follows
/// at 0x33, where the CALL's displacement points.
const PKRU_PAIR_HEAD: &[u8] = &[
    0x0F, 0x20, 0xE0, // 0x00: mov rax,cr4
    0x48, 0x0F, 0xBA, 0xE8, 0x16, // 0x03: bts rax,0x16
    0x0F, 0x22, 0xE0, // 0x08: mov cr4,rax
    0x31, 0xC9, // 0x0b: xor ecx,ecx
    0x0F, 0x01, 0xEE, // 0x0d: rdpkru
    0x41, 0x89, 0xC4, // 0x10: mov r12d,eax
    0xB8, 0x5A, 0x5A, 0x5A, 0x5A, // 0x13: mov eax,0x5a5a5a5a
    0x31, 0xC9, // 0x18: xor ecx,ecx
    0x31, 0xD2, // 0x1a: xor edx,edx
    0x0F, 0x01, 0xEF, // 0x1c: wrpkru
    0x0F, 0x20, 0xE0, // 0x1f: mov rax,cr4
    0x48, 0x0F, 0xBA, 0xF0, 0x16, // 0x22: btr rax,0x16
    0x0F, 0x22, 0xE0, // 0x27: mov cr4,rax
    0x44, 0x89, 0xE0, // 0x2a: mov eax,r12d
    0xE8, 0x01, 0x00, 0x00, 0x00, // 0x2d: call 33 <print_hex>
    0xF4, // 0x32: hlt
];

pub(crate) const CR4_VME_GUEST: &[u8] = &[
    0x0F, 0x20, 0xE0, // mov rax, cr4
    0x48, 0x83, 0xC8, 0x01, // or rax, CR4.VME
    0x0F, 0x22, 0xE0, // mov cr4, rax
    0xB0, 0x21, 0xE6, 0xE9, // mov al, '!'; out 0xE9, al
    0xF4, // hlt
];

/// Assembled with GNU as (Intel syntax), up to its HLT; `print_hex` follows at 0x26, then the MXCSR
/// value at 0x4c (`ldmxcsr [rip + ...]` points there).
const MXCSR_KEEP_HEAD: &[u8] = &[
    0x0F, 0x20, 0xE0, // 0x00: mov rax,cr4
    0x48, 0x0D, 0x00, 0x06, 0x00, 0x00, // 0x03: or rax,0x600
    0x0F, 0x22, 0xE0, // 0x09: mov cr4,rax
    0x0F, 0xAE, 0x15, 0x39, 0x00, 0x00,
    0x00, // 0x0c: ldmxcsr DWORD PTR [rip+0x39] # 4c <value>
    0xB0, 0x2E, // 0x13: mov al,0x2e
    0xE6, 0xE9, // 0x15: out 0xe9,al
    0x0F, 0xAE, 0x5C, 0x24, 0xF8, // 0x17: stmxcsr DWORD PTR [rsp-0x8]
    0x8B, 0x44, 0x24, 0xF8, // 0x1c: mov eax,DWORD PTR [rsp-0x8]
    0xE8, 0x01, 0x00, 0x00, 0x00, // 0x20: call 26 <print_hex>
    0xF4, // 0x25: hlt
];

/// `pkru-a`/`pkru-b`.
pub(crate) fn pkru_pair_code() -> Vec<u8> {
    let mut code = PKRU_PAIR_HEAD.to_vec();
    debug_assert_eq!(code.len(), 0x33);
    code.extend_from_slice(PRINT_HEX);
    code
}

/// `mxcsr-keep`.
pub(crate) fn mxcsr_keep_code() -> Vec<u8> {
    let mut code = MXCSR_KEEP_HEAD.to_vec();
    debug_assert_eq!(code.len(), 0x26);
    code.extend_from_slice(PRINT_HEX);
    code.resize(0x4c, 0x90);
    code.extend_from_slice(&0x7F80u32.to_le_bytes());
    code
}
