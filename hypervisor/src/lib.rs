//! The bare-metal hypervisor: pure logic lives in the top-level modules so it is unit-tested on the host;
//! the hardware side (`hw`) is only built for `target_os = "none"`.
#![cfg_attr(not(test), no_std)]

#[cfg(target_os = "none")]
extern crate alloc;

pub mod cmdline;
pub mod exception;
pub mod idt_gate;
pub mod memory;
pub mod page_table;
pub mod simd;
pub mod status;
pub mod vmx_bringup;

#[cfg(target_os = "none")]
pub mod hw;
