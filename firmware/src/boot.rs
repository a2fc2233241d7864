//! The multiboot2 header and the 32-bit entry that switches to long mode (bare metal only).
//!
//! GRUB enters `_start` in 32-bit protected mode, paging off, EAX = [`BOOTLOADER_MAGIC`], EBX = the physical
//! address of the boot information. The code below:
//! 1. saves EAX/EBX, zeroes `.bss` (`__bss_start`..`__bss_end`, both 4-byte aligned, from the linker script),
//! 2. checks CPUID for long mode; without it prints `PROBEVISOR-PANIC: ...` and `PROBEVISOR-DONE status=panic`
//!    to COM1 and port 0xE9, asks QEMU (port 0xF4) and Bochs (port 0x8900) to exit, and halts,
//! 3. identity maps the first [`EARLY_IDENTITY_MAP_BYTES`] with 2 MiB pages, enables PAE, EFER.LME (and
//!    EFER.NXE when CPUID says NX exists), paging, loads a temporary GDT and far-jumps to 64-bit code,
//! 4. loads the data segments, switches to a [`BOOT_STACK_SIZE`] stack and calls
//!    `extern "C" fn hypervisor_main(mb_magic: u32, mb_info: u64) -> !`, which the binary must define.
//!
//! The temporary GDT has the 64-bit code segment at selector 0x08 and the data segment at 0x10.
//!
//! [`BOOTLOADER_MAGIC`]: crate::multiboot2::BOOTLOADER_MAGIC

use core::arch::global_asm;

/// Bytes identity-mapped by the early page tables (four page directories of 2 MiB pages).
pub const EARLY_IDENTITY_MAP_BYTES: u64 = 4 << 30;
/// Size of the stack `hypervisor_main` starts on.
pub const BOOT_STACK_SIZE: usize = 256 * 1024;

global_asm!(
    r#"
    .set MB2_MAGIC, 0xE85250D6
    .set MB2_ARCH_I386, 0
    .set MB2_HEADER_LEN, mb2_header_end - mb2_header_start

    .section .multiboot2_header, "a"
    .balign 8
mb2_header_start:
    .long MB2_MAGIC
    .long MB2_ARCH_I386
    .long MB2_HEADER_LEN
    .long 0x100000000 - (MB2_MAGIC + MB2_ARCH_I386 + MB2_HEADER_LEN)
    .balign 8
    .short 0, 0
    .long 8
mb2_header_end:

    .section .data.boot_handoff, "aw"
    .balign 4
boot_mb_magic: .long 0
boot_mb_info:  .long 0

    .section .rodata.boot_gdt, "a"
    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF
    .quad 0x00CF92000000FFFF
boot_gdt_end:
boot_gdt_ptr:
    .short boot_gdt_end - boot_gdt - 1
    .quad boot_gdt
boot_no_long_mode_msg:
    .ascii "PROBEVISOR-PANIC: the CPU has no long mode (CPUID 0x80000001 EDX[29] = 0)\r\n"
    .asciz "PROBEVISOR-DONE status=panic\r\n"
boot_bochs_shutdown:
    .asciz "Shutdown"

    .section .bss.boot_page_tables, "aw", @nobits
    .balign 4096
boot_pml4: .skip 4096
boot_pdpt: .skip 4096
boot_pd:   .skip 4096 * 4

    .section .bss.boot_stack, "aw", @nobits
    .balign 16
    .global boot_stack_bottom
boot_stack_bottom:
    .skip {stack_size}
    .global boot_stack_top
boot_stack_top:

    .section .text.boot32, "ax"
    .code32
    .global _start
_start:
    cli
    cld
    movl %eax, boot_mb_magic
    movl %ebx, boot_mb_info

    movl $__bss_start, %edi
    movl $__bss_end, %ecx
    subl %edi, %ecx
    shrl $2, %ecx
    xorl %eax, %eax
    rep stosl
    movl $boot_stack_top, %esp

    movl $0x80000000, %eax
    cpuid
    cmpl $0x80000001, %eax
    jb boot_no_long_mode
    movl $0x80000001, %eax
    cpuid
    btl $29, %edx
    jnc boot_no_long_mode
    movl %edx, %ebx

    movl $boot_pd, %edi
    xorl %ecx, %ecx
1:  movl %ecx, %eax
    shll $21, %eax
    orl $0x83, %eax
    movl %eax, (%edi,%ecx,8)
    incl %ecx
    cmpl $2048, %ecx
    jb 1b

    movl $boot_pd + 3, %eax
    movl $boot_pdpt, %edi
    xorl %ecx, %ecx
2:  movl %eax, (%edi,%ecx,8)
    addl $4096, %eax
    incl %ecx
    cmpl $4, %ecx
    jb 2b

    movl $boot_pdpt + 3, %eax
    movl %eax, boot_pml4

    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl $boot_pml4, %eax
    movl %eax, %cr3

    movl $0xC0000080, %ecx
    rdmsr
    orl $0x100, %eax
    btl $20, %ebx
    jnc 3f
    orl $0x800, %eax
3:  wrmsr

    movl %cr0, %eax
    orl $0x80010001, %eax
    movl %eax, %cr0

    lgdt boot_gdt_ptr
    .byte 0xEA
    .long boot_long_mode
    .short 0x08

boot_no_long_mode:
    movl $boot_no_long_mode_msg, %esi
4:  movb (%esi), %al
    testb %al, %al
    jz 5f
    movw $0x3F8, %dx
    outb %al, %dx
    movw $0xE9, %dx
    outb %al, %dx
    incl %esi
    jmp 4b
5:  movw $0xF4, %dx
    movl $0x11, %eax
    outl %eax, %dx
    movl $boot_bochs_shutdown, %esi
    movw $0x8900, %dx
6:  movb (%esi), %al
    testb %al, %al
    jz 7f
    outb %al, %dx
    incl %esi
    jmp 6b
7:  cli
    hlt
    jmp 7b

    .code64
boot_long_mode:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    movq $boot_stack_top, %rsp
    xorl %ebp, %ebp
    movl boot_mb_magic(%rip), %edi
    movl boot_mb_info(%rip), %esi
    call hypervisor_main
8:  cli
    hlt
    jmp 8b
    "#,
    stack_size = const BOOT_STACK_SIZE,
    options(att_syntax)
);

extern "C" {
    static _start: u8;
    static boot_stack_bottom: u8;
    static boot_stack_top: u8;
}

/// Address of the 32-bit entry point. Referencing it also makes sure the boot code is linked in.
pub fn entry_address() -> u64 {
    core::ptr::addr_of!(_start) as u64
}

/// `[bottom, top)` of the boot stack that `hypervisor_main` runs on.
pub fn boot_stack_range() -> (u64, u64) {
    (
        core::ptr::addr_of!(boot_stack_bottom) as u64,
        core::ptr::addr_of!(boot_stack_top) as u64,
    )
}

/// The multiboot2 boot information at physical `address`, as a byte slice of its declared `total_size`.
///
/// # Safety
/// `address` must be the EBX value a multiboot2 loader passed, still identity-mapped and not overwritten.
pub unsafe fn boot_info_bytes(
    address: u64,
) -> Result<&'static [u8], crate::multiboot2::Multiboot2Error> {
    use crate::multiboot2::Multiboot2Error;
    const MAX_BOOT_INFO_SIZE: u32 = 16 << 20;
    if address == 0 || !address.is_multiple_of(8) {
        return Err(Multiboot2Error::BadAddress { address });
    }
    // SAFETY: the caller guarantees a multiboot2 info block at `address`; its first field is the u32 size.
    let total_size = unsafe { core::ptr::read_volatile(address as *const u32) };
    if !(8..=MAX_BOOT_INFO_SIZE).contains(&total_size) {
        return Err(Multiboot2Error::BadTotalSize {
            total_size,
            buffer_len: MAX_BOOT_INFO_SIZE as usize,
        });
    }
    // SAFETY: the loader placed `total_size` bytes at `address`; the caller keeps them mapped and unchanged.
    Ok(unsafe { core::slice::from_raw_parts(address as *const u8, total_size as usize) })
}
