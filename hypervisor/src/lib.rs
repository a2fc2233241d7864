//! The bare-metal hypervisor: pure logic lives in the top-level modules so it is unit-tested on the host;
//! the hardware side (`hw`) is only built for `target_os = "none"`.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod bridge_client;
pub mod cmdline;
pub mod exception;
pub mod exits;
pub mod gate_setup;
pub mod guest_loader;
pub mod guest_memory;
pub mod host_fs;
pub mod host_services;
pub mod hypercall;
pub mod idt_gate;
pub mod log_text;
pub mod memory;
pub mod page_table;
pub mod scheduler;
pub mod simd;
pub mod status;
pub mod svm_exit;
pub mod test_guests;
mod test_guests_cpu_state;
mod test_guests_cpuid;
mod test_guests_step;
pub mod tsc_clock;
pub mod vcpu;
pub mod vm;
pub mod vmx_bringup;

#[cfg(test)]
mod fake_vcpu;

#[cfg(target_os = "none")]
pub mod hw;
