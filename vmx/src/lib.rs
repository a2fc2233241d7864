//! VT-x logic behind a small trait over the privileged instructions, host-testable.
//!
//! Everything here is plain data manipulation except [`hw`], whose real implementation
//! (inline asm) is only compiled for `target_os = "none"`; host tests use [`hw::SoftVmcs`].
#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]

extern crate alloc;

pub mod bitmaps;
pub mod capabilities;
pub mod completed_instruction;
pub mod controls;
pub mod entry_checks;
pub mod ept;
pub mod event_reinjection;
pub mod exit;
pub mod feature_control;
pub mod fields;
pub mod fixed_bits;
pub mod guest_regs;
pub mod hw;
pub mod invalidate;
pub mod mmio_decode;
pub mod msr;
pub mod vmcs_setup;
