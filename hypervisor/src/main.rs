//! The probevisor bare-metal image entry (built for x86_64-unknown-none by `cargo xtask image`).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the hypervisor is a bare-metal image: build and boot it with `cargo xtask image` / `cargo xtask run`");
    std::process::exit(2);
}
