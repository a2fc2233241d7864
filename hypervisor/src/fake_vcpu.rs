//! A scripted vCPU for host tests of the exit handlers and the scheduler.

use crate::vcpu::{Registers, Vcpu, VcpuError, VmExit};
use crate::vm::LogSink;
use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

pub struct FakeVcpu {
    pub regs: Registers,
    pub mem: Vec<u8>,
    /// Exits returned by `run`, in order; an empty script is an entry failure.
    pub script: VecDeque<VmExit>,
    pub insn_len: u64,
    pub gp_injected: u32,
    pub xcr0: Option<u64>,
    pub runs: u32,
}

impl FakeVcpu {
    pub fn new(mem_size: usize, script: Vec<VmExit>) -> Self {
        Self {
            regs: Registers::default(),
            mem: vec![0; mem_size],
            script: script.into(),
            insn_len: 3,
            gp_injected: 0,
            xcr0: None,
            runs: 0,
        }
    }
}

impl Vcpu for FakeVcpu {
    fn run(&mut self) -> Result<VmExit, VcpuError> {
        self.runs += 1;
        self.script
            .pop_front()
            .ok_or(VcpuError::EntryFailed("script ended".into()))
    }
    fn regs(&self) -> &Registers {
        &self.regs
    }
    fn regs_mut(&mut self) -> &mut Registers {
        &mut self.regs
    }
    fn advance_rip(&mut self, len: u64) {
        self.regs.rip += len;
    }
    fn exit_instruction_len(&self) -> u64 {
        self.insn_len
    }
    fn inject_gp(&mut self) {
        self.gp_injected += 1;
    }
    fn set_guest_xcr0(&mut self, value: u64) {
        self.xcr0 = Some(value);
    }
    fn guest_xcr0(&self) -> u64 {
        self.xcr0.unwrap_or(1)
    }
    fn memory(&self) -> &[u8] {
        &self.mem
    }
    fn memory_mut(&mut self) -> &mut [u8] {
        &mut self.mem
    }
    fn diagnostic_dump(&mut self) -> Vec<String> {
        vec!["FAKE_DUMP rip=".to_string() + &alloc::format!("{:#x}", self.regs.rip)]
    }
}

#[derive(Default)]
pub struct Lines(pub Vec<String>);

impl LogSink for Lines {
    fn line(&mut self, args: fmt::Arguments<'_>) {
        self.0.push(alloc::format!("{args}"));
    }
}

impl Lines {
    pub fn has(&self, needle: &str) -> bool {
        self.0.iter().any(|l| l.contains(needle))
    }
}

pub fn host_cpuid(leaf: u32, _subleaf: u32) -> [u32; 4] {
    match leaf {
        1 => [0x906A0, 0, 0x7FFA_F3BF, 0xBFEB_FBFF],
        _ => [leaf, 1, 2, 3],
    }
}
