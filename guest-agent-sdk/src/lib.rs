//! no_std SDK for agents that run as probevisor guests.
#![cfg_attr(not(test), no_std)]
