//! Hardware side of the boot path (bare metal only): console, descriptor tables, paging, heap, CPU
//! features and the VT-x or AMD SVM bring-up (picked by `backend` from CPUID). `boot::run` puts them together.

pub mod backend;
pub mod boot;
pub mod com2;
pub mod console;
pub mod cpu;
pub mod exit;
pub mod gate;
pub mod gdt;
pub mod guest_ram;
pub mod guest_runner;
pub mod guests;
pub mod heap;
pub mod idt;
pub mod paging;
pub mod pit;
pub mod svm_bringup;
pub mod svm_timer;
pub mod svm_vcpu;
pub mod vmx_bringup;
pub mod vmx_vcpu;
pub mod xsave;
