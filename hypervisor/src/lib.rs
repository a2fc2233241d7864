//! The bare-metal hypervisor: pure logic lives here so it is unit-tested on the host.
#![cfg_attr(not(test), no_std)]
