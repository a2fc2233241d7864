//! Multiboot2 header and the 32-bit entry: zero .bss, identity-map 1 GiB with 2-MiB pages,
//! enable PAE + long mode + paging, load a 64-bit GDT, and call `smoke_main` on a 64-KiB stack.

core::arch::global_asm!(
    r#"
.section .multiboot2_header, "a"
.align 8
mb2_start:
    .long 0xE85250D6
    .long 0
    .long mb2_end - mb2_start
    .long -(0xE85250D6 + (mb2_end - mb2_start))
    .short 0
    .short 0
    .long 8
mb2_end:

.section .rodata
.align 16
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF
    .quad 0x00CF92000000FFFF
boot_gdt_end:
boot_gdt_ptr:
    .short boot_gdt_end - boot_gdt - 1
    .quad boot_gdt

.section .bss
.align 4096
.global boot_pml4
boot_pml4: .skip 4096
boot_pdpt: .skip 4096
boot_pd: .skip 4096
boot_stack: .skip 65536
boot_stack_top:

.section .text.boot32, "ax"
.code32
.global _start
_start:
    cli
    mov edi, offset __bss_start
    mov ecx, offset __bss_end
    sub ecx, edi
    xor eax, eax
    rep stosb
    mov edi, offset boot_pd
    xor ecx, ecx
2:
    mov eax, ecx
    shl eax, 21
    or eax, 0x83
    mov dword ptr [edi + ecx * 8], eax
    mov dword ptr [edi + ecx * 8 + 4], 0
    inc ecx
    cmp ecx, 512
    jne 2b
    mov eax, offset boot_pd
    or eax, 3
    mov dword ptr [boot_pdpt], eax
    mov eax, offset boot_pdpt
    or eax, 3
    mov dword ptr [boot_pml4], eax
    mov eax, offset boot_pml4
    mov cr3, eax
    mov eax, cr4
    or eax, 0x20
    mov cr4, eax
    mov ecx, 0xC0000080
    rdmsr
    or eax, 0x900
    wrmsr
    mov eax, cr0
    or eax, 0x80000001
    mov cr0, eax
    lgdt [boot_gdt_ptr]
    .byte 0xEA
    .long long_mode_entry
    .short 0x08

.code64
long_mode_entry:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov fs, ax
    mov gs, ax
    lea rsp, [rip + boot_stack_top]
    call smoke_main
3:
    hlt
    jmp 3b
"#
);
