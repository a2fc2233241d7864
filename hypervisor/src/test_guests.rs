//! Built-in test guests, selected on the kernel command line with `testguests=NAME[,NAME...]`: a few bytes
//! of machine code each, wrapped in an ELF image and loaded through the same loader as agents, to exercise
//! exit paths the example agents do not reach (or reach only one of, since a stop is final).
//!
//! - `cpuid`: reads CPUID 0x40000000, writes the signature to port 0xE9, then HLT (ends cleanly).
//! - `msr`: RDMSR of the TSC (not on the allow-list): #GP is injected; with no IDT the guest triple-faults.
//! - `triple-fault`: loads an empty IDT and executes INT3: triple fault.
//! - `xsetbv`: sets CR4.OSXSAVE, XSETBV x87|SSE (allowed; prints XCR0 = 3 read back with XGETBV), then
//!   XSETBV with PKRU (refused: #GP, no IDT: triple fault).
//! - `kgs-a`, `kgs-b` (the same code): print IA32_KERNEL_GS_BASE's low byte as a digit, set it to
//!   0x11, leave for a console write, read it back and print it, then HLT. Each must print `0.A`: a
//!   guest starts with its own zero and keeps its own value across exits (run both: the second would
//!   print `A.A` if it saw the first one's value).
//! - `xcr0-shrink`: sets XCR0 to x87|SSE|AVX, makes the upper half of YMM0 non-zero, leaves for a
//!   console write (its AVX state is saved), sets XCR0 back to x87|SSE and writes again: restoring
//!   a saved AVX state under an XCR0 without AVX would fault in the hypervisor. Prints `.ok`, HLT.
//! - `mxcsr-a`, `mxcsr-b` (the same code): print MXCSR, set it to 0x7F80 (round toward zero), print
//!   it again after those exits: each must print `0000000000001F80 0000000000007F80 ` (a guest starts
//!   with the default and keeps its own; the second would start with 7F80 if state leaked).
//! - `mxcsr-unmask`: unmasks every SSE exception (MXCSR = 0) and makes a `read_file` tool call: with
//!   a model loaded, the gate's inference must not run with the guest's MXCSR (#XM in the host).
//! - `clgi`, `vmload` (AMD SVM): CLGI then spin, VMLOAD of host-physical page 0: both intercepted,
//!   the guest is stopped (under VT-x they are #UD: triple fault).
//! - `cr2-a`, `cr2-b` (the same code): print CR2, set it to 0x1234abcd, print it again after
//!   those exits: each must print `0000000000000000 .000000001234ABCD ` (CR2 is not in the VMCS).
//! - `dr0`, `cr8`: MOV to DR0 / to CR8. Under VT-x both exit and stop the guest (DR0-3 are not in
//!   the VMCS; CR8 would be the host's task priority); under SVM DR0 exits and stops it, CR8 is the
//!   guest's own V_TPR (it halts).
//! - `pkru`: turns on CR4.PKE and writes PKRU (not switched between guests): stopped, under VT-x
//!   at the MOV to CR4, under SVM at its next exit (before its console write is carried out).
//! - `mwait`: MONITOR then MWAIT with interrupts off: both exit (a deep C-state would stop the
//!   slice timer on real hardware), the guest is stopped.
//! - `spin`: `jmp $`: never exits on its own; stopped when its time slices run out.
//! - `compat`: far return to a 32-bit code segment of its own GDT, then a tool-device read from
//!   compatibility mode (it would be decoded as 64-bit code): the guest is stopped.
//! - `cpl3`: drops to CPL 3 (its pages made user-accessible) and makes a console hypercall, then a
//!   port write: each is a #GP (no IDT: triple fault); nothing is printed.
//! - `pkru-a`, `pkru-b`: PKRU set with CR4.PKE turned off again before any exit
//!   (test_guests_cpu_state.rs); `cr4-vme`: a CR4 bit outside the guest's allow-list;
//!   `mxcsr-keep`: MXCSR kept across an exit (there too).
//! - `tf-step`: single-step across an emulated CPUID; `db-window`: a #DB whose frame is pushed into
//!   the tool device window (test_guests_step.rs).
//! - `osxsave`: CPUID's OSXSAVE bit and XSAVE area sizes follow its CR4 and XCR0 (test_guests_cpuid.rs).
//! - `misbehave`: a `write_file` tool call (denied by the policy's tier), a tool call whose request
//!   pointer lies outside guest memory (refused: bad pointer), then a write outside guest memory
//!   (EPT violation: the guest is stopped). Each one leaves an audit record.

use crate::guest_memory::RESERVED_LOW;
use alloc::vec;
use alloc::vec::Vec;
use hypercall_abi::{Kind, Request};

/// Where test guests are linked (the agents' base).
pub const TEST_GUEST_BASE: u64 = 0x40_0000;
const _: () = assert!(TEST_GUEST_BASE >= RESERVED_LOW);

const CPUID_GUEST: &[u8] = &[
    0xB8, 0x00, 0x00, 0x00, 0x40, // mov eax, 0x40000000
    0x0F, 0xA2, // cpuid
    0x89, 0xD8, 0xE7, 0xE9, // mov eax, ebx; out 0xE9, eax
    0x89, 0xC8, 0xE7, 0xE9, // mov eax, ecx; out 0xE9, eax
    0x89, 0xD0, 0xE7, 0xE9, // mov eax, edx; out 0xE9, eax
    0xB0, 0x0A, 0xE6, 0xE9, // mov al, '\n'; out 0xE9, al
    0xF4, // hlt
];

const MSR_GUEST: &[u8] = &[
    0xB9, 0x10, 0x00, 0x00, 0x00, // mov ecx, 0x10 (IA32_TIME_STAMP_COUNTER)
    0x0F, 0x32, // rdmsr
    0xF4, // hlt (not reached: #GP with no IDT)
];

const TRIPLE_FAULT_GUEST: &[u8] = &[
    0x0F, 0x01, 0x1D, 0x02, 0x00, 0x00, 0x00, // lidt [rip + 2]
    0xCC, // int3
    0xF4, // hlt (not reached)
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // IDTR image: limit 0, base 0
];

const XSETBV_GUEST: &[u8] = &[
    0x0F, 0x20, 0xE0, // mov rax, cr4
    0x48, 0x0D, 0x00, 0x00, 0x04, 0x00, // or rax, CR4.OSXSAVE
    0x0F, 0x22, 0xE0, // mov cr4, rax
    0x31, 0xC9, 0x31, 0xD2, // xor ecx, ecx; xor edx, edx
    0xB8, 0x03, 0x00, 0x00, 0x00, // mov eax, 3 (x87|SSE)
    0x0F, 0x01, 0xD1, // xsetbv (allowed)
    0x0F, 0x01, 0xD0, // xgetbv
    0x04, 0x30, 0xE6, 0xE9, // add al, '0'; out 0xE9, al
    0xB0, 0x0A, 0xE6, 0xE9, // mov al, '\n'; out 0xE9, al
    0xB8, 0x01, 0x02, 0x00, 0x00, // mov eax, 0x201 (PKRU: not allowed)
    0x31, 0xD2, // xor edx, edx
    0x0F, 0x01, 0xD1, // xsetbv: #GP, no IDT: triple fault
    0xF4, // hlt (not reached)
];

const KERNEL_GS_BASE_GUEST: &[u8] = &[
    0xB9, 0x02, 0x01, 0x00, 0xC0, // mov ecx, 0xC0000102 (IA32_KERNEL_GS_BASE)
    0x0F, 0x32, // rdmsr
    0x04, 0x30, 0xE6, 0xE9, // add al, '0'; out 0xE9, al
    0xB8, 0x11, 0x00, 0x00, 0x00, // mov eax, 0x11
    0x31, 0xD2, // xor edx, edx
    0x0F, 0x30, // wrmsr
    0xB0, 0x2E, 0xE6, 0xE9, // mov al, '.'; out 0xE9, al (an exit)
    0x0F, 0x32, // rdmsr
    0x04, 0x30, 0xE6, 0xE9, // add al, '0'; out 0xE9, al
    0xB0, 0x0A, 0xE6, 0xE9, // mov al, '\n'; out 0xE9, al
    0xF4, // hlt
];

const XCR0_SHRINK_GUEST: &[u8] = &[
    0x0F, 0x20, 0xE0, // mov rax, cr4
    0x48, 0x0D, 0x00, 0x00, 0x04, 0x00, // or rax, CR4.OSXSAVE
    0x0F, 0x22, 0xE0, // mov cr4, rax
    0x31, 0xC9, 0x31, 0xD2, // xor ecx, ecx; xor edx, edx
    0xB8, 0x07, 0x00, 0x00, 0x00, // mov eax, 7 (x87|SSE|AVX)
    0x0F, 0x01, 0xD1, // xsetbv
    0xC5, 0xFD, 0x74, 0xC0, // vpcmpeqb ymm0, ymm0, ymm0 (all ones: AVX state in use)
    0xB0, 0x2E, 0xE6, 0xE9, // mov al, '.'; out 0xE9, al (an exit: the AVX state is saved)
    0x31, 0xD2, // xor edx, edx
    0xB8, 0x03, 0x00, 0x00, 0x00, // mov eax, 3 (x87|SSE)
    0x0F, 0x01, 0xD1, // xsetbv
    0xB0, 0x6F, 0xE6, 0xE9, // mov al, 'o'; out 0xE9, al
    0xB0, 0x6B, 0xE6, 0xE9, // mov al, 'k'; out 0xE9, al
    0xB0, 0x0A, 0xE6, 0xE9, // mov al, '\n'; out 0xE9, al
    0xF4, // hlt
];

/// `print_hex`: RAX as 16 hex digits and a space on port 0xE9 (call it; clobbers RAX, RCX, RDX).
pub(crate) const PRINT_HEX: &[u8] = &[
    0x48, 0x89, 0xC2, // mov rdx, rax
    0xB9, 0x10, 0x00, 0x00, 0x00, // mov ecx, 16
    0x48, 0xC1, 0xC2, 0x04, // rol rdx, 4
    0x89, 0xD0, // mov eax, edx
    0x83, 0xE0, 0x0F, // and eax, 0xf
    0x3C, 0x0A, 0x72, 0x02, // cmp al, 10; jb +2
    0x04, 0x07, // add al, 7
    0x04, 0x30, 0xE6, 0xE9, // add al, '0'; out 0xE9, al
    0xFF, 0xC9, 0x75, 0xE9, // dec ecx; jnz rol
    0xB0, 0x20, 0xE6, 0xE9, // mov al, ' '; out 0xE9, al
    0xC3, // ret
];

fn mxcsr_pair_code() -> Vec<u8> {
    // 52 bytes of code, then print_hex (36 bytes), then the MXCSR value.
    let mut code = vec![
        0x0F, 0x20, 0xE0, // mov rax, cr4
        0x48, 0x0D, 0x00, 0x06, 0x00, 0x00, // or rax, CR4.OSFXSR | CR4.OSXMMEXCPT
        0x0F, 0x22, 0xE0, // mov cr4, rax
        0x0F, 0xAE, 0x5C, 0x24, 0xF8, // stmxcsr [rsp - 8]
        0x8B, 0x44, 0x24, 0xF8, // mov eax, [rsp - 8]
        0xE8, 0x1A, 0x00, 0x00, 0x00, // call print_hex (at 52: +0x1a)
        0x0F, 0xAE, 0x15, 0x37, 0x00, 0x00,
        0x00, // ldmxcsr [rip + 0x37] (at 88, after print_hex)
        0x0F, 0xAE, 0x5C, 0x24, 0xF8, // stmxcsr [rsp - 8]
        0x8B, 0x44, 0x24, 0xF8, // mov eax, [rsp - 8]
        0xE8, 0x05, 0x00, 0x00, 0x00, // call print_hex (+5)
        0xB0, 0x0A, 0xE6, 0xE9, // mov al, '\n'; out 0xE9, al
        0xF4, // hlt
    ];
    debug_assert_eq!(code.len(), 52);
    code.extend_from_slice(PRINT_HEX);
    debug_assert_eq!(code.len(), 88);
    code.extend_from_slice(&0x7F80u32.to_le_bytes());
    code
}

/// MXCSR = `mxcsr`, then a `read_file` tool call; prints the call's status digit.
fn mxcsr_tool_call_code(mxcsr: u32) -> Vec<u8> {
    let base = TEST_GUEST_BASE as u32;
    let mxcsr_at = 0x80u32;
    let mut code = vec![
        0x0F, 0x20, 0xE0, // mov rax, cr4
        0x48, 0x0D, 0x00, 0x06, 0x00, 0x00, // or rax, CR4.OSFXSR | CR4.OSXMMEXCPT
        0x0F, 0x22, 0xE0, // mov cr4, rax
        0x0F, 0xAE, 0x14, 0x25, // ldmxcsr [imm32]
    ];
    code.extend_from_slice(&(base + mxcsr_at).to_le_bytes());
    code.push(0xBB); // mov ebx, imm32
    code.extend_from_slice(&(base + REQUEST_AT).to_le_bytes());
    code.push(0xB8); // mov eax, imm32
    code.extend_from_slice(&(Kind::ToolCall as u32).to_le_bytes());
    code.extend_from_slice(&[0x0F, 0x01, 0xC1]); // vmcall
    code.extend_from_slice(&[0x04, 0x30, 0xE6, 0xE9, 0xB0, 0x0A, 0xE6, 0xE9, 0xF4]); // status digit, '\n', hlt
    code.resize(mxcsr_at as usize, 0);
    code.extend_from_slice(&mxcsr.to_le_bytes());
    append_tool_call(&mut code, b"read_file", br#"{"path":"/project/README.md"}"#);
    code
}

fn cr2_pair_code() -> Vec<u8> {
    // 44 bytes of code, then print_hex.
    let mut code = vec![
        0x0F, 0x20, 0xD0, // mov rax, cr2
        0xE8, 0x24, 0x00, 0x00, 0x00, // call print_hex (at 44: +0x24)
        0x48, 0xC7, 0xC0, 0xCD, 0xAB, 0x34, 0x12, // mov rax, 0x1234abcd
        0x0F, 0x22, 0xD0, // mov cr2, rax
        0xB0, 0x2E, 0xE6, 0xE9, // mov al, '.'; out 0xE9, al (an exit)
        0x0F, 0x20, 0xD0, // mov rax, cr2
        0xE8, 0x0E, 0x00, 0x00, 0x00, // call print_hex (+0x0e)
        0xB0, 0x0A, 0xE6, 0xE9, // mov al, '\n'; out 0xE9, al
        0xF4, // hlt
    ];
    debug_assert_eq!(code.len(), 35);
    code.resize(44, 0x90); // nop up to print_hex
    code.extend_from_slice(PRINT_HEX);
    code
}

const DR0_GUEST: &[u8] = &[
    0xB8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1
    0x0F, 0x23, 0xC0, // mov dr0, rax
    0xF4, // hlt
];

const CR8_GUEST: &[u8] = &[
    0xB8, 0x09, 0x00, 0x00, 0x00, // mov eax, 9
    0x44, 0x0F, 0x22, 0xC0, // mov cr8, rax
    0xF4, // hlt
];

const PKRU_GUEST: &[u8] = &[
    0x0F, 0x20, 0xE0, // mov rax, cr4
    0x48, 0x0D, 0x00, 0x00, 0x40, 0x00, // or rax, CR4.PKE
    0x0F, 0x22, 0xE0, // mov cr4, rax
    0xB8, 0x54, 0x55, 0x55, 0x55, // mov eax, 0x55555554
    0x31, 0xC9, 0x31, 0xD2, // xor ecx, ecx; xor edx, edx
    0x0F, 0x01, 0xEF, // wrpkru
    0xB0, 0x2E, 0xE6, 0xE9, // mov al, '.'; out 0xE9, al
    0xF4, // hlt
];

const MWAIT_GUEST: &[u8] = &[
    0xB8, 0x00, 0x00, 0x40, 0x00, // mov eax, 0x400000
    0x31, 0xC9, 0x31, 0xD2, // xor ecx, ecx; xor edx, edx
    0x0F, 0x01, 0xC8, // monitor
    0xFA, // cli
    0x31, 0xC0, 0x31, 0xC9, // xor eax, eax; xor ecx, ecx
    0x0F, 0x01, 0xC9, // mwait
    0xEB, 0xF7, // jmp back to the xors
];

const SPIN_GUEST: &[u8] = &[0xEB, 0xFE]; // jmp $

const COMPAT_GUEST: &[u8] = &[
    0x0F, 0x01, 0x15, 0x41, 0x00, 0x00,
    0x00, // 0x00: lgdt   [rip+0x41]        # 400048 <gdtr>
    0x48, 0x8D, 0x05, 0x05, 0x00, 0x00,
    0x00, // 0x07: lea    rax,[rip+0x5]        # 400013 <compat>
    0x6A, 0x18, // 0x0e: push   0x18
    0x50, // 0x10: push   rax
    0x48, 0xCB, // 0x11: retfq
    0xA1, 0x00, 0x00, 0xB0, 0xFE, 0xE7, 0xE9, 0xB0,
    0x2E, // 0x13: movabs eax,ds:0x2eb0e9e7feb00000
    0xE6, 0xE9, // 0x1c: out    0xe9,al
    0xB0, 0x0A, // 0x1e: mov    al,0xa
    0xE6, 0xE9, // 0x20: out    0xe9,al
    0xF4, // 0x22: hlt
    0x0F, 0x1F, 0x44, 0x00, 0x00, // 0x23: nop    DWORD PTR [rax+rax*1+0x0]
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 0x28: data
    0xFF, 0xFF, 0x00, 0x00, 0x00, 0x9B, 0xAF, 0x00, // 0x30: data
    0xFF, 0xFF, 0x00, 0x00, 0x00, 0x93, 0xCF, 0x00, // 0x38: data
    0xFF, 0xFF, 0x00, 0x00, 0x00, 0x9B, 0xCF, 0x00, // 0x40: data
    0x1F, 0x00, 0x28, 0x00, 0x40, 0x00, 0x00, 0x00, // 0x48: data
    0x00, 0x00, // 0x50: data
];

const CPL3_GUEST: &[u8] = &[
    0x0F, 0x01, 0x15, 0x79, 0x00, 0x00,
    0x00, // 0x00: lgdt   [rip+0x79]        # 400080 <gdtr>
    0x48, 0x83, 0x0C, 0x25, 0x00, 0x30, 0x00, 0x00,
    0x04, // 0x07: or     QWORD PTR ds:0x3000,0x4
    0x48, 0x83, 0x0C, 0x25, 0x00, 0x40, 0x00, 0x00,
    0x04, // 0x10: or     QWORD PTR ds:0x4000,0x4
    0x48, 0x83, 0x0C, 0x25, 0x10, 0x50, 0x00, 0x00,
    0x04, // 0x19: or     QWORD PTR ds:0x5010,0x4
    0x0F, 0x20, 0xD8, // 0x22: mov    rax,cr3
    0x0F, 0x22, 0xD8, // 0x25: mov    cr3,rax
    0x6A, 0x2B, // 0x28: push   0x2b
    0x68, 0x00, 0x20, 0x40, 0x00, // 0x2a: push   0x402000
    0x6A, 0x02, // 0x2f: push   0x2
    0x6A, 0x23, // 0x31: push   0x23
    0x48, 0x8D, 0x05, 0x03, 0x00, 0x00,
    0x00, // 0x33: lea    rax,[rip+0x3]        # 40003d <user>
    0x50, // 0x3a: push   rax
    0x48, 0xCF, // 0x3b: iretq
    0xBB, 0x00, 0x01, 0x40, 0x00, // 0x3d: mov    ebx,0x400100
    0xB8, 0x02, 0x00, 0x00, 0x00, // 0x42: mov    eax,0x2
    0x0F, 0x01, 0xC1, // 0x47: vmcall
    0xB0, 0x21, // 0x4a: mov    al,0x21
    0xE6, 0xE9, // 0x4c: out    0xe9,al
    0xF4, // 0x4e: hlt
    0x90, // 0x4f: nop
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 0x50: data
    0xFF, 0xFF, 0x00, 0x00, 0x00, 0x9B, 0xAF, 0x00, // 0x58: data
    0xFF, 0xFF, 0x00, 0x00, 0x00, 0x93, 0xCF, 0x00, // 0x60: data
    0xFF, 0xFF, 0x00, 0x00, 0x00, 0x93, 0xCF, 0x00, // 0x68: data
    0xFF, 0xFF, 0x00, 0x00, 0x00, 0xFB, 0xAF, 0x00, // 0x70: data
    0xFF, 0xFF, 0x00, 0x00, 0x00, 0xF3, 0xCF, 0x00, // 0x78: data
    0x2F, 0x00, 0x50, 0x00, 0x40, 0x00, 0x00, 0x00, // 0x80: data
    0x00, 0x00, // 0x88: data
];

fn cpl3_code() -> Vec<u8> {
    let base = TEST_GUEST_BASE as u32;
    let mut code = CPL3_GUEST.to_vec();
    let text: &[u8] = b"console write from CPL3\n";
    let mut request = Request::new(Kind::ConsoleWrite);
    (request.args_gpa, request.args_len) = (u64::from(base + 0x140), text.len() as u64);
    code.resize(0x100, 0);
    code.extend_from_slice(&request.to_bytes());
    code.resize(0x140, 0);
    code.extend_from_slice(text);
    code.resize(0x2000, 0);
    code
}

const CLGI_GUEST: &[u8] = &[
    0x0F, 0x01, 0xDD, // clgi
    0xEB, 0xFE, // jmp $ (with GIF clear no interrupt would ever end the slice)
];

const VMLOAD_GUEST: &[u8] = &[
    0x31, 0xC0, // xor eax, eax
    0x0F, 0x01, 0xDA, // vmload (RAX: a host-physical address)
    0xB0, 0x21, 0xE6, 0xE9, // mov al, '!'; out 0xE9, al (not reached)
    0xB0, 0x0A, 0xE6, 0xE9, // mov al, '\n'; out 0xE9, al
    0xF4, // hlt
];

/// Guest-physical address the `misbehave` guest writes (outside its RAM, inside its page tables).
pub const OUTSIDE_RAM_GPA: u32 = 0x7000_0000;
/// Request pointer of the `misbehave` guest's second call: outside its RAM.
pub const BAD_REQUEST_GPA: u32 = 0xFFFF_F000;
const MISBEHAVE_NAME: &[u8] = b"write_file";
const MISBEHAVE_ARGS: &[u8] = br#"{"path":"/project/owned","content":"x"}"#;

/// Where the guests that call tools keep their request, its name, its arguments and the result
/// buffer (offsets from the image start).
const REQUEST_AT: u32 = 0x100;
const NAME_AT: u32 = 0x140;
const ARGS_AT: u32 = 0x160;
const RESULT_AT: u32 = 0x1000;

/// Appends the data of a tool call `name(args)` to `code` at the offsets above (with a 256-byte
/// result buffer at the end).
fn append_tool_call(code: &mut Vec<u8>, name: &[u8], args: &[u8]) {
    let base = TEST_GUEST_BASE as u32;
    let mut request = Request::new(Kind::ToolCall);
    (request.name_gpa, request.name_len) = (u64::from(base + NAME_AT), name.len() as u64);
    (request.args_gpa, request.args_len) = (u64::from(base + ARGS_AT), args.len() as u64);
    (request.result_gpa, request.result_cap) = (u64::from(base + RESULT_AT), 256);
    for (at, bytes) in [
        (REQUEST_AT, &request.to_bytes()[..]),
        (NAME_AT, name),
        (ARGS_AT, args),
    ] {
        code.resize(at as usize, 0);
        code.extend_from_slice(bytes);
    }
    code.resize(RESULT_AT as usize + 256, 0);
}

fn misbehave_code() -> Vec<u8> {
    let base = TEST_GUEST_BASE as u32;
    let mut code = Vec::new();
    let tool_call = Kind::ToolCall as u32;
    for request in [base + REQUEST_AT, BAD_REQUEST_GPA] {
        code.push(0xBB); // mov ebx, imm32
        code.extend_from_slice(&request.to_le_bytes());
        code.push(0xB8); // mov eax, imm32
        code.extend_from_slice(&tool_call.to_le_bytes());
        code.extend_from_slice(&[0x0F, 0x01, 0xC1]); // vmcall
    }
    code.extend_from_slice(&[0xC6, 0x04, 0x25]); // mov byte [imm32], imm8
    code.extend_from_slice(&OUTSIDE_RAM_GPA.to_le_bytes());
    code.extend_from_slice(&[0x01, 0xF4]); // 1; hlt (not reached)
    append_tool_call(&mut code, MISBEHAVE_NAME, MISBEHAVE_ARGS);
    code
}

/// The machine code of built-in guest `name`.
pub fn code(name: &str) -> Option<Vec<u8>> {
    match name {
        "cpuid" => Some(CPUID_GUEST.to_vec()),
        "msr" => Some(MSR_GUEST.to_vec()),
        "triple-fault" => Some(TRIPLE_FAULT_GUEST.to_vec()),
        "xsetbv" => Some(XSETBV_GUEST.to_vec()),
        "kgs-a" | "kgs-b" => Some(KERNEL_GS_BASE_GUEST.to_vec()),
        "xcr0-shrink" => Some(XCR0_SHRINK_GUEST.to_vec()),
        "mxcsr-a" | "mxcsr-b" => Some(mxcsr_pair_code()),
        "mxcsr-unmask" => Some(mxcsr_tool_call_code(0)),
        "clgi" => Some(CLGI_GUEST.to_vec()),
        "cr2-a" | "cr2-b" => Some(cr2_pair_code()),
        "dr0" => Some(DR0_GUEST.to_vec()),
        "cr8" => Some(CR8_GUEST.to_vec()),
        "pkru" => Some(PKRU_GUEST.to_vec()),
        "mwait" => Some(MWAIT_GUEST.to_vec()),
        "spin" => Some(SPIN_GUEST.to_vec()),
        "compat" => Some(COMPAT_GUEST.to_vec()),
        "cpl3" => Some(cpl3_code()),
        "vmload" => Some(VMLOAD_GUEST.to_vec()),
        "pkru-a" | "pkru-b" => Some(crate::test_guests_cpu_state::pkru_pair_code()),
        "cr4-vme" => Some(crate::test_guests_cpu_state::CR4_VME_GUEST.to_vec()),
        "mxcsr-keep" => Some(crate::test_guests_cpu_state::mxcsr_keep_code()),
        "tf-step" => Some(crate::test_guests_step::TF_STEP_GUEST.to_vec()),
        "db-window" => Some(crate::test_guests_step::DB_WINDOW_GUEST.to_vec()),
        "osxsave" => Some(crate::test_guests_cpuid::OSXSAVE_GUEST.to_vec()),
        "misbehave" => Some(misbehave_code()),
        _ => None,
    }
}

/// The names listed by `testguests=` on the command line (the last occurrence wins), in order.
pub fn requested(cmdline: &str) -> Vec<&str> {
    cmdline
        .split_ascii_whitespace()
        .filter_map(|word| word.strip_prefix("testguests="))
        .next_back()
        .map(|list| list.split(',').filter(|n| !n.is_empty()).collect())
        .unwrap_or_default()
}

/// A static ELF64 EXEC with one read+execute PT_LOAD of `code` at [`TEST_GUEST_BASE`], entry at its start.
pub fn elf_image(code: &[u8]) -> Vec<u8> {
    const HEADERS: u64 = 64 + 56;
    let mut f = Vec::with_capacity(HEADERS as usize + code.len());
    f.extend_from_slice(b"\x7fELF\x02\x01\x01");
    f.resize(16, 0);
    for half in [2u16, 62] {
        f.extend_from_slice(&half.to_le_bytes());
    }
    f.extend_from_slice(&1u32.to_le_bytes());
    for word in [TEST_GUEST_BASE, 64, 0] {
        f.extend_from_slice(&word.to_le_bytes());
    }
    f.extend_from_slice(&0u32.to_le_bytes());
    for half in [64u16, 56, 1, 0, 0, 0] {
        f.extend_from_slice(&half.to_le_bytes());
    }
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&5u32.to_le_bytes());
    let len = code.len() as u64;
    for word in [HEADERS, TEST_GUEST_BASE, TEST_GUEST_BASE, len, len, 0x1000] {
        f.extend_from_slice(&word.to_le_bytes());
    }
    f.extend_from_slice(code);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest_loader::parse;
    use crate::guest_memory::GUEST_RAM_SIZE;

    #[test]
    fn builtin_images_pass_the_loader() {
        for name in [
            "cpuid",
            "msr",
            "triple-fault",
            "xsetbv",
            "misbehave",
            "kgs-a",
            "xcr0-shrink",
            "mxcsr-a",
            "mxcsr-unmask",
            "clgi",
            "vmload",
            "cr2-a",
            "dr0",
            "cr8",
            "pkru",
            "mwait",
            "spin",
            "compat",
            "cpl3",
        ] {
            let code = code(name).unwrap();
            let file = elf_image(&code);
            let image = parse(&file, RESERVED_LOW, GUEST_RAM_SIZE).unwrap();
            assert_eq!(image.entry, TEST_GUEST_BASE);
            let mut mem = vec![0u8; GUEST_RAM_SIZE as usize];
            image.load(&file, &mut mem).unwrap();
            let at = TEST_GUEST_BASE as usize;
            assert_eq!(&mem[at..at + code.len()], &code[..], "{name}");
        }
        assert_eq!(code("nope"), None);
    }

    #[test]
    fn command_line_lists_test_guests() {
        assert_eq!(
            requested("log=info testguests=cpuid,triple-fault"),
            ["cpuid", "triple-fault"]
        );
        assert_eq!(requested("testguests=msr testguests=cpuid"), ["cpuid"]);
        assert!(requested("log=debug").is_empty());
    }
}
