//! AMD SVM (AMD64 APM Vol. 2, chapter 15) logic behind a small trait over the privileged
//! instructions, host-testable like the `vmx` crate.
//!
//! Everything here is plain data manipulation except [`hw`], whose real implementation
//! (inline asm) is only compiled for `target_os = "none"`; host tests use [`hw::SoftSvm`].
#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]

extern crate alloc;

pub mod asid;
pub mod capabilities;
pub mod completed_instruction;
pub mod consistency;
pub mod exit;
pub mod guest_regs;
pub mod hw;
pub mod msr;
pub mod npt;
pub mod permission_maps;
pub mod setup;
pub mod vmcb;
