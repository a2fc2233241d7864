//! The COM2 bridge between probevisor and an MCP server (docs/bridge.md).
//!
//! Without the `std` feature (no_std + alloc, for the hypervisor): the frame codec ([`frame`]), CRC-32, a small
//! JSON value ([`json`]), error payloads ([`wire_error`]) and the tool mapping ([`mapping`]).
//! With `std` (default, host side): the MCP stdio client ([`client`]), the bridge loop ([`bridge`]) and the
//! `probevisor bridge` command ([`cli_main`]).
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod crc32;
pub mod frame;
pub mod json;
pub mod mapping;
pub mod wire_error;

#[cfg(feature = "std")]
pub mod bridge;
#[cfg(feature = "std")]
mod cli;
#[cfg(feature = "std")]
pub mod client;

#[cfg(feature = "std")]
pub use bridge::{run_bridge, BridgeStats};
#[cfg(feature = "std")]
pub use cli::cli_main;
#[cfg(feature = "std")]
pub use client::{ClientOptions, McpClient};
