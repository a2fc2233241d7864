use super::*;

fn reg(index: u8, width: u8) -> MmioOperand {
    MmioOperand::Register(GpRegister {
        index,
        width,
        high_byte: false,
    })
}

#[test]
fn mov_mem_from_reg_is_a_4_byte_write() {
    // mov [rax], ebx
    let i = decode(&[0x89, 0x18]).unwrap();
    assert_eq!(i.mnemonic, MmioMnemonic::Mov);
    assert_eq!(i.direction, MmioDirection::Write);
    assert_eq!(i.size, 4);
    assert_eq!(i.operand, reg(3, 4));
    assert_eq!(i.len, 2);
    assert_eq!(
        i.write_value(|r| if r == 3 { 0x1122_3344_5566_7788 } else { 0 }),
        Some(0x5566_7788)
    );
    assert_eq!(i.apply_read(0, 0), None);
}

#[test]
fn mov_reg_from_mem_is_a_read_that_zero_extends_32_bit() {
    // mov ecx, [rdx] (trailing bytes of the next instruction are ignored)
    let i = decode(&[0x8B, 0x0A, 0x90, 0x90]).unwrap();
    assert_eq!(
        (i.direction, i.size, i.operand, i.len),
        (MmioDirection::Read, 4, reg(1, 4), 2)
    );
    assert_eq!(
        i.apply_read(0xFFFF_FFFF_0000_0000, 0xAABB_CCDD),
        Some(0xAABB_CCDD)
    );
    assert_eq!(i.write_value(|_| 0), None);
}

#[test]
fn mov_byte_immediate_to_memory() {
    // mov byte [rdi], 0x5a
    let i = decode(&[0xC6, 0x07, 0x5A]).unwrap();
    assert_eq!(i.direction, MmioDirection::Write);
    assert_eq!(i.size, 1);
    assert_eq!(i.operand, MmioOperand::Immediate(0x5A));
    assert_eq!(i.len, 3);
    assert_eq!(i.write_value(|_| unreachable!()), Some(0x5A));
}

#[test]
fn mov_qword_immediate_is_sign_extended() {
    // mov qword [rax], -1
    let i = decode(&[0x48, 0xC7, 0x00, 0xFF, 0xFF, 0xFF, 0xFF]).unwrap();
    assert_eq!((i.size, i.len), (8, 7));
    assert_eq!(i.operand, MmioOperand::Immediate(u64::MAX));
}

#[test]
fn movzx_word_read() {
    // movzx eax, word [rsi]
    let i = decode(&[0x0F, 0xB7, 0x06]).unwrap();
    assert_eq!(i.mnemonic, MmioMnemonic::Movzx);
    assert_eq!(
        (i.direction, i.size, i.operand, i.len),
        (MmioDirection::Read, 2, reg(0, 4), 3)
    );
    assert_eq!(i.apply_read(u64::MAX, 0xFFFF_8001), Some(0x8001));
}

#[test]
fn movsx_byte_read_sign_extends() {
    // movsx rax, byte [rbx]
    let i = decode(&[0x48, 0x0F, 0xBE, 0x03]).unwrap();
    assert_eq!(i.mnemonic, MmioMnemonic::Movsx);
    assert_eq!((i.size, i.operand), (1, reg(0, 8)));
    assert_eq!(i.apply_read(0, 0x80), Some(0xFFFF_FFFF_FFFF_FF80));
}

#[test]
fn sixteen_bit_read_keeps_upper_bits_and_uses_extended_registers() {
    // mov r9w, [r10]
    let i = decode(&[0x66, 0x45, 0x8B, 0x0A]).unwrap();
    assert_eq!((i.size, i.operand, i.len), (2, reg(9, 2), 4));
    assert_eq!(
        i.apply_read(0x1111_2222_3333_4444, 0xBEEF),
        Some(0x1111_2222_3333_BEEF)
    );
}

#[test]
fn high_byte_register_source() {
    // mov [rax], ah
    let i = decode(&[0x88, 0x20]).unwrap();
    let MmioOperand::Register(r) = i.operand else {
        panic!("expected register")
    };
    assert!(r.high_byte);
    assert_eq!((r.index, r.width, i.size), (0, 1, 1));
    assert_eq!(i.write_value(|_| 0xABCD), Some(0xAB));
}

#[test]
fn rep_stosd() {
    let i = decode(&[0xF3, 0xAB]).unwrap();
    assert_eq!(i.mnemonic, MmioMnemonic::Stos);
    assert_eq!(
        (i.direction, i.size, i.len, i.rep),
        (MmioDirection::Write, 4, 2, true)
    );
    assert_eq!(i.operand, reg(0, 4));
    let plain = decode(&[0xAA]).unwrap();
    assert_eq!((plain.size, plain.rep), (1, false));
}

#[test]
fn truncated_instruction_is_reported() {
    // mov dword [rax], imm32 with only two immediate bytes.
    assert_eq!(
        decode(&[0xC7, 0x00, 0x78, 0x56]),
        Err(MmioDecodeError::Truncated(4))
    );
    assert_eq!(decode(&[0x8B]), Err(MmioDecodeError::Truncated(1)));
}

#[test]
fn too_long_empty_and_invalid_input() {
    assert_eq!(decode(&[]), Err(MmioDecodeError::Empty));
    assert_eq!(decode(&[0x90; 16]), Err(MmioDecodeError::InputTooLong(16)));
    // 14 operand-size prefixes + 89 18 would be 16 bytes: not a legal instruction.
    let mut long = [0x66u8; 15];
    long[14] = 0x89;
    assert!(matches!(
        decode(&long),
        Err(MmioDecodeError::Invalid | MmioDecodeError::Truncated(15))
    ));
    // 13 prefixes + 89 18 is exactly 15 bytes and legal.
    let mut fifteen = [0x66u8; 15];
    fifteen[13] = 0x89;
    fifteen[14] = 0x18;
    assert_eq!(decode(&fifteen).unwrap().len, 15);
    // PUSH ES does not exist in 64-bit mode.
    assert_eq!(
        decode(&[0x06, 0x90, 0x90, 0x90]),
        Err(MmioDecodeError::Invalid)
    );
}

#[test]
fn unsupported_instructions_and_forms() {
    assert_eq!(
        decode(&[0x0F, 0xA2]),
        Err(MmioDecodeError::Unsupported(Mnemonic::Cpuid))
    );
    // mov eax, ecx: no memory operand.
    assert_eq!(
        decode(&[0x89, 0xC8]),
        Err(MmioDecodeError::UnsupportedForm(Mnemonic::Mov))
    );
    // mov [rax], ds: segment register source.
    assert_eq!(
        decode(&[0x8C, 0x18]),
        Err(MmioDecodeError::UnsupportedForm(Mnemonic::Mov))
    );
    let text = MmioDecodeError::Unsupported(Mnemonic::Cpuid).to_string();
    assert_eq!(text, "MMIO decode: unsupported instruction Cpuid");
}

#[test]
fn absolute_address_forms_are_reads() {
    // mov eax, [0xfee00030] with a SIB absolute address, and the A1 moffs64 form.
    let sib = decode(&[0x8B, 0x04, 0x25, 0x30, 0x00, 0xE0, 0xFE]).unwrap();
    assert_eq!(
        (sib.direction, sib.size, sib.operand, sib.len),
        (MmioDirection::Read, 4, reg(0, 4), 7)
    );
    let moffs = decode(&[0xA1, 0x30, 0x00, 0xE0, 0xFE, 0, 0, 0, 0]).unwrap();
    assert_eq!(
        (moffs.direction, moffs.size, moffs.operand, moffs.len),
        (MmioDirection::Read, 4, reg(0, 4), 9)
    );
    // mov [rdi], r8 (REX.W + REX.R): 8-byte write from register 8.
    let w = decode(&[0x4C, 0x89, 0x07]).unwrap();
    assert_eq!(
        (w.direction, w.size, w.operand),
        (MmioDirection::Write, 8, reg(8, 8))
    );
}

#[test]
fn zz_probe() {
    let cases: &[&[u8]] = &[
        &[0xF0, 0x89, 0x18],
        &[0x48, 0x66, 0x89, 0x18],
        &[0x66, 0x48, 0x89, 0x18],
        &[0x40, 0x48, 0x89, 0x18],
        &[0x48, 0x40, 0x89, 0x18],
        &[0x40, 0x88, 0x20],
        &[0x41, 0x88, 0x20],
        &[0x88, 0x20],
        &[0x67, 0xA1, 1, 2, 3, 4, 5, 6, 7, 8],
        &[0x66, 0xA1, 1, 2, 3, 4, 5, 6, 7, 8],
        &[0x48, 0xA1, 1, 2, 3, 4, 5, 6, 7, 8],
        &[0x48, 0xA3, 1, 2, 3, 4, 5, 6, 7, 8],
        &[0xA2, 1, 2, 3, 4, 5, 6, 7, 8],
        &[0xF3, 0x89, 0x18],
        &[0xF2, 0x89, 0x18],
        &[0xF2, 0x8B, 0x18],
        &[0xF3, 0xC7, 0x00, 1, 2, 3, 4],
        &[0x8B, 0x05, 1, 2, 3, 4],
        &[0x8B, 0x04, 0x05, 1, 2, 3, 4],
        &[0x8B, 0x04, 0x2D, 1, 2, 3, 4],
        &[0x8B, 0x45, 0x00],
        &[0x41, 0x8B, 0x04, 0x24],
        &[0x41, 0x8B, 0x45, 0x00],
        &[0x41, 0x8B, 0x04, 0x25, 1, 2, 3, 4],
        &[0x67, 0x8B, 0x05, 1, 2, 3, 4],
        &[0x63, 0x00],
        &[0x66, 0x63, 0x00],
        &[0x48, 0x63, 0x00],
        &[0x66, 0x0F, 0xBE, 0x00],
        &[0x66, 0x0F, 0xB7, 0x00],
        &[0x48, 0x0F, 0xB7, 0x00],
        &[0x0F, 0xBF, 0x00],
        &[0x66, 0xC7, 0x00, 0x34, 0x12],
        &[0x66, 0x48, 0xC7, 0x00, 0x34, 0x12, 0x00, 0x80],
        &[0xC5, 0xF9, 0x7E, 0x00],
        &[0x62, 0xF1, 0x7D, 0x08, 0x7E, 0x00],
        &[0x8E, 0x18],
        &[0xA4],
        &[0xAA],
        &[0x67, 0xAA],
        &[0xF2, 0xAA],
        &[0xC6, 0xF8, 0x01],
        &[0xC6, 0x08, 0x01],
        &[0x64, 0x8B, 0x00],
        &[0x2E, 0x3E, 0x26, 0x36, 0x65, 0x8B, 0x00],
        &[0x0F, 0x20, 0xC0],
        &[0x48, 0x8C, 0x18],
        &[0x0F, 0x38, 0xF0, 0x00],
        &[0x0F, 0xC3, 0x00],
        &[0x86, 0x00],
        &[0xF0, 0x0F, 0x20, 0xC0],
        &[0x8F, 0x00],
        &[0xFF, 0x30],
        &[0x8A, 0x20],
        &[0x44, 0x8A, 0x20],
        &[0x0F, 0xB6, 0x20],
        &[0x40, 0x0F, 0xB6, 0x20],
        &[0x66, 0x66, 0x48, 0x66, 0x8B, 0x00],
        &[0xF3, 0x0F, 0xB8, 0x00],
        &[0x0F, 0x6E, 0x00],
        &[0x9B, 0x8B, 0x00],
        &[0xD7],
        &[0xC7, 0xF8, 0, 0, 0, 0],
        &[0x8D, 0x00],
    ];
    for c in cases {
        std::println!("{:02X?} => {:?}", c, decode(c));
    }
}
