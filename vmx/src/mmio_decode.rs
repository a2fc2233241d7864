//! Decoding of the guest instruction that faulted on an MMIO page (EPT violation), with iced-x86.
//!
//! Supported: `mov` (r/m <-> reg, imm -> mem), `movzx`, `movsx`, and `movsxd` with REX.W.
//! Everything else is reported as unsupported, never guessed. In particular string instructions
//! (`stos`, `movs`, ...) are refused: emulating them also means updating RDI/RSI (by DF) and RCX.
//! MOVSXD without REX.W is refused too: AMD documents only the 64-bit form and decoders disagree
//! on the memory width of the 16-bit form (iced-x86 reads a word, binutils a doubleword).

use core::fmt;
use iced_x86::{Decoder, DecoderError, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

/// Longest legal x86 instruction.
pub const MAX_INSTRUCTION_LEN: usize = 15;

/// The decoded operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioMnemonic {
    /// MOV.
    Mov,
    /// MOVZX.
    Movzx,
    /// MOVSX or MOVSXD (REX.W form only).
    Movsx,
}

/// Whether the guest reads or writes the MMIO location.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioDirection {
    /// Memory -> register.
    Read,
    /// Register or immediate -> memory.
    Write,
}

/// A general-purpose register operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpRegister {
    /// Register number: 0 = RAX, 1 = RCX, 2 = RDX, 3 = RBX, 4 = RSP, 5 = RBP, 6 = RSI, 7 = RDI, 8..15 = R8..R15.
    pub index: u8,
    /// Operand width in bytes (1, 2, 4, 8).
    pub width: u8,
    /// AH/CH/DH/BH: bits 15:8 of register `index`.
    pub high_byte: bool,
}

/// The register that receives a read, or the source of a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioOperand {
    /// A general-purpose register.
    Register(GpRegister),
    /// An immediate, already sign-extended as the instruction defines, masked to the access size.
    Immediate(u64),
}

/// A decoded MMIO access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioInstruction {
    /// The operation.
    pub mnemonic: MmioMnemonic,
    /// Bytes accessed in memory per element (1, 2, 4, 8).
    pub size: u8,
    /// Read or write.
    pub direction: MmioDirection,
    /// Destination register (read) or source register/immediate (write).
    pub operand: MmioOperand,
    /// Instruction length in bytes (to advance RIP).
    pub len: u8,
}

/// Why the bytes could not be decoded into a supported MMIO access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioDecodeError {
    /// No bytes were given.
    Empty,
    /// More than 15 bytes were given.
    InputTooLong(usize),
    /// The bytes end before the instruction does.
    Truncated(usize),
    /// Not a valid x86-64 instruction (including encodings longer than 15 bytes).
    Invalid,
    /// A valid instruction this decoder does not emulate.
    Unsupported(Mnemonic),
    /// A supported mnemonic in a form without a memory operand or with a non-GPR operand.
    UnsupportedForm(Mnemonic),
}

impl fmt::Display for MmioDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "MMIO decode: no instruction bytes"),
            Self::InputTooLong(n) => write!(
                f,
                "MMIO decode: {n} bytes given, at most {MAX_INSTRUCTION_LEN} allowed"
            ),
            Self::Truncated(n) => write!(f, "MMIO decode: instruction cut short after {n} bytes"),
            Self::Invalid => write!(f, "MMIO decode: invalid instruction"),
            Self::Unsupported(m) => write!(f, "MMIO decode: unsupported instruction {m:?}"),
            Self::UnsupportedForm(m) => write!(f, "MMIO decode: unsupported operands for {m:?}"),
        }
    }
}

fn gp_register(reg: Register, mnemonic: Mnemonic) -> Result<GpRegister, MmioDecodeError> {
    if !reg.is_gpr() {
        return Err(MmioDecodeError::UnsupportedForm(mnemonic));
    }
    let high_byte = matches!(
        reg,
        Register::AH | Register::CH | Register::DH | Register::BH
    );
    let index = reg.full_register() as u32 - Register::RAX as u32;
    Ok(GpRegister {
        index: index as u8,
        width: reg.size() as u8,
        high_byte,
    })
}

fn mask(size: u8) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (u32::from(size) * 8)) - 1
    }
}

/// Decodes one 64-bit-mode instruction from `bytes` (at most 15).
pub fn decode(bytes: &[u8]) -> Result<MmioInstruction, MmioDecodeError> {
    if bytes.is_empty() {
        return Err(MmioDecodeError::Empty);
    }
    if bytes.len() > MAX_INSTRUCTION_LEN {
        return Err(MmioDecodeError::InputTooLong(bytes.len()));
    }
    let mut decoder = Decoder::with_ip(64, bytes, 0, DecoderOptions::NONE);
    let instr = decoder.decode();
    match decoder.last_error() {
        DecoderError::None => {}
        // With all 15 bytes present, running out means the encoding exceeds the length limit.
        DecoderError::NoMoreBytes if bytes.len() == MAX_INSTRUCTION_LEN => {
            return Err(MmioDecodeError::Invalid)
        }
        DecoderError::NoMoreBytes => return Err(MmioDecodeError::Truncated(bytes.len())),
        _ => return Err(MmioDecodeError::Invalid),
    }
    let mnemonic = instr.mnemonic();
    let len = instr.len() as u8;
    let size = instr.memory_size().size() as u8;
    let form = MmioDecodeError::UnsupportedForm(mnemonic);
    match mnemonic {
        Mnemonic::Mov | Mnemonic::Movzx | Mnemonic::Movsx | Mnemonic::Movsxd => {
            let kind = match mnemonic {
                Mnemonic::Mov => MmioMnemonic::Mov,
                Mnemonic::Movzx => MmioMnemonic::Movzx,
                _ => MmioMnemonic::Movsx,
            };
            decode_mov(&instr, kind, size, len).ok_or(form)
        }
        // String instructions (STOS, MOVS, LODS, ...) land here and are refused.
        other => Err(MmioDecodeError::Unsupported(other)),
    }
}

fn is_memory(kind: OpKind) -> bool {
    kind == OpKind::Memory
}

fn decode_mov(
    instr: &Instruction,
    mnemonic: MmioMnemonic,
    size: u8,
    len: u8,
) -> Option<MmioInstruction> {
    if instr.op_count() != 2 || size == 0 {
        return None;
    }
    let m = instr.mnemonic();
    let (direction, operand) = if is_memory(instr.op0_kind()) {
        if mnemonic != MmioMnemonic::Mov {
            return None;
        }
        let operand = match instr.op1_kind() {
            OpKind::Register => MmioOperand::Register(gp_register(instr.op1_register(), m).ok()?),
            OpKind::Immediate8
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate32to64 => MmioOperand::Immediate(instr.immediate(1) & mask(size)),
            _ => return None,
        };
        (MmioDirection::Write, operand)
    } else if is_memory(instr.op1_kind()) && instr.op0_kind() == OpKind::Register {
        let destination = gp_register(instr.op0_register(), m).ok()?;
        // MOVSXD r16/r32 (no REX.W): vendor-dependent, see the module documentation.
        if m == Mnemonic::Movsxd && destination.width != 8 {
            return None;
        }
        (MmioDirection::Read, MmioOperand::Register(destination))
    } else {
        return None;
    };
    Some(MmioInstruction {
        mnemonic,
        size,
        direction,
        operand,
        len,
    })
}

impl MmioInstruction {
    /// The register operand (destination of a read, source of a register write), if any.
    pub fn register(&self) -> Option<GpRegister> {
        match self.operand {
            MmioOperand::Register(r) => Some(r),
            MmioOperand::Immediate(_) => None,
        }
    }

    /// For a read: the new value of the full 64-bit destination register, given its old value
    /// and the `size`-byte value read from the device (x86 rules: 32-bit writes zero the upper
    /// half, 8/16-bit writes keep the other bits, MOVZX/MOVSX extend to the register width).
    /// Returns None for a write.
    pub fn apply_read(&self, old: u64, value: u64) -> Option<u64> {
        let MmioOperand::Register(reg) = self.operand else {
            return None;
        };
        if self.direction != MmioDirection::Read {
            return None;
        }
        let value = value & mask(self.size);
        let extended = match self.mnemonic {
            MmioMnemonic::Movsx => {
                let shift = 64 - u32::from(self.size) * 8;
                (((value << shift) as i64) >> shift) as u64
            }
            _ => value,
        } & mask(reg.width);
        Some(match (reg.width, reg.high_byte) {
            (_, true) => (old & !0xFF00) | (extended << 8),
            (1 | 2, false) => (old & !mask(reg.width)) | extended,
            _ => extended,
        })
    }

    /// For a write: the `size`-byte value stored, given a reader for register numbers.
    /// Returns None for a read.
    pub fn write_value(&self, read_register: impl Fn(u8) -> u64) -> Option<u64> {
        if self.direction != MmioDirection::Write {
            return None;
        }
        Some(match self.operand {
            MmioOperand::Immediate(v) => v,
            MmioOperand::Register(r) if r.high_byte => (read_register(r.index) >> 8) & 0xFF,
            MmioOperand::Register(r) => read_register(r.index) & mask(self.size),
        })
    }
}

#[cfg(test)]
#[path = "mmio_decode_tests.rs"]
mod tests;
