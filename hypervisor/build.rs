//! Passes the linker script only for the bare-metal target; host builds (tests, the fallback main) link normally.
fn main() {
    println!("cargo:rerun-if-changed=linker.ld");
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target == "x86_64-unknown-none" {
        let dir = std::env::var("CARGO_MANIFEST_DIR")
            .expect("cargo sets CARGO_MANIFEST_DIR for build scripts");
        println!("cargo:rustc-link-arg-bin=hypervisor=-T{dir}/linker.ld");
    }
}
