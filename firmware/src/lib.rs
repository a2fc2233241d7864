//! Boot path: multiboot2 header, 32-bit entry and the switch to long mode (`boot`, bare metal only),
//! and the multiboot2 boot information parser (`multiboot2`, pure and host-tested).
#![cfg_attr(not(test), no_std)]

#[cfg(target_os = "none")]
pub mod boot;
pub mod multiboot2;
