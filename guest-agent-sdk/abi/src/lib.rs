//! Hypercall ABI v1 shared by the guest SDK and the hypervisor.
#![cfg_attr(not(test), no_std)]
