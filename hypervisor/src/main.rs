//! The probevisor bare-metal image entry (built for x86_64-unknown-none by `cargo xtask image`).
//!
//! firmware's 32-bit entry switches to long mode and calls `hypervisor_main`; `hypervisor::hw::boot::run`
//! does the rest and ends with a `PROBEVISOR-DONE status=...` line.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
#[no_mangle]
pub extern "C" fn hypervisor_main(mb_magic: u32, mb_info: u64) -> ! {
    hypervisor::hw::boot::run(mb_magic, mb_info)
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    use hypervisor::hw::{console, exit};
    match info.location() {
        Some(at) => console::line(format_args!(
            "PROBEVISOR-PANIC: {} at {}:{}",
            info.message(),
            at.file(),
            at.line()
        )),
        None => console::line(format_args!("PROBEVISOR-PANIC: {}", info.message())),
    }
    exit::finish(hypervisor::status::RunStatus::Panic)
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the hypervisor is a bare-metal image: build and boot it with `cargo xtask image` / `cargo xtask run`");
    std::process::exit(2);
}
