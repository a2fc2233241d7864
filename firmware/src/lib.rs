//! Boot path: multiboot2 header, 32-bit entry and the switch to long mode.
#![cfg_attr(not(test), no_std)]
