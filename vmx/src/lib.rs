//! VT-x logic behind a small trait over the privileged instructions, host-testable.
#![cfg_attr(not(test), no_std)]
