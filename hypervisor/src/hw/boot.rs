//! The boot sequence after the firmware's long-mode switch: console, GDT/IDT, boot info, heap, paging,
//! SIMD, then the VT-x or SVM bring-up (hw::backend) and the end-of-run marker.

use super::console::{self, line};
use super::gate;
use super::guests::AgentModule;
use super::{backend, cpu, exit, gdt, heap, idt, paging};
use crate::cmdline::{self, BootTest};
use crate::gate_setup::{self, GateModules, ModuleRole};
use crate::memory::{identity_map_top, usable_ram, MapEntry, Range, RangeSet};
use crate::status::RunStatus;
use crate::test_guests;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use firmware::multiboot2::{BootInfo, MemoryKind, BOOTLOADER_MAGIC};

extern "C" {
    static __kernel_start: u8;
    static __kernel_end: u8;
    static __text_start: u8;
    static __text_end: u8;
}

/// Addresses below this are left alone (real-mode IVT, BIOS data, EBDA, option ROMs).
const LOW_MEMORY_END: u64 = 1 << 20;
/// The early page tables of the firmware map this much; the heap starts with RAM below it.
const EARLY_MAP_END: u64 = firmware::boot::EARLY_IDENTITY_MAP_BYTES;
/// Address `test=pf` reads: canonical (bit 47 clear; 0xdead_0000_0000 is not and raises #GP), and above the
/// identity map unless the memory map reaches 128 TiB (checked before the read).
const UNMAPPED_ADDRESS: u64 = 0x7fff_dead_0000;
/// Most disjoint usable RAM ranges the heap setup keeps track of.
const MAX_RAM_RANGES: usize = 64;
/// Most disjoint reserved ranges (low memory, image, boot info, modules) after merging.
const MAX_RESERVED_RANGES: usize = 32;

fn symbol_range(start: *const u8, end: *const u8) -> Range {
    Range::new(start as u64, end as u64)
}

fn fail(args: core::fmt::Arguments<'_>) -> ! {
    line(format_args!("probevisor: boot failed: {args}"));
    exit::finish(RunStatus::Fail)
}

/// Runs the hypervisor from the firmware's hand-off to the end of the run.
pub fn run(mb_magic: u32, mb_info: u64) -> ! {
    console::init();
    console::init_logger(log::LevelFilter::Info);
    let (stack_bottom, stack_top) = firmware::boot::boot_stack_range();
    line(format_args!(
        "probevisor: starting (entry {:#x}, stack {stack_bottom:#x}..{stack_top:#x})",
        firmware::boot::entry_address()
    ));
    let selectors = gdt::init();
    idt::init(selectors.code);
    log::info!(
        "GDT loaded (code {:#x}, data {:#x}, tss {:#x}), IDT loaded",
        selectors.code.0,
        selectors.data.0,
        selectors.tss.0
    );

    if mb_magic != BOOTLOADER_MAGIC {
        fail(format_args!("not started by a multiboot2 loader (EAX={mb_magic:#x}, expected {BOOTLOADER_MAGIC:#x})"));
    }
    // SAFETY: EAX held the multiboot2 magic, so EBX is the boot info address; the early page tables
    // identity-map it and nothing has been allocated over it (the heap excludes it below).
    let info_bytes = unsafe { firmware::boot::boot_info_bytes(mb_info) }
        .unwrap_or_else(|err| fail(format_args!("boot info at {mb_info:#x}: {err}")));
    let info =
        BootInfo::parse(info_bytes).unwrap_or_else(|err| fail(format_args!("boot info: {err}")));
    let command_line = match info.command_line() {
        None => "",
        Some(Ok(text)) => text,
        Some(Err(err)) => fail(format_args!("command line: {err}")),
    };
    let options = cmdline::parse(command_line)
        .unwrap_or_else(|err| fail(format_args!("command line: {err}")));
    log::set_max_level(options.log_level);
    if let Some(Ok(name)) = info.bootloader_name() {
        log::info!("boot loader: {name}");
    }
    log::info!("command line: {command_line:?}");

    let features = cpu::detect();
    log::info!(
        "cpu: {} vmx={} svm={} 1g-pages={} nx={} avx={} avx2={} fma={} xsave={} hypervisor-bit={} phys-bits={}",
        features.vendor_str(),
        features.has_vmx,
        features.has_svm,
        features.has_1g_pages,
        features.nx_enabled,
        features.simd.avx,
        features.has_avx2,
        features.has_fma,
        features.simd.xsave,
        features.hypervisor_present,
        features.physical_address_bits
    );

    let memory_map = match info.memory_map() {
        Some(Ok(map)) => map,
        Some(Err(err)) => fail(format_args!("memory map: {err}")),
        None => fail(format_args!("the boot loader passed no memory map")),
    };
    for region in memory_map.clone() {
        log::info!(
            "memory map: {} {:?}",
            Range::from_len(region.base, region.length),
            region.kind
        );
    }
    let map_entries = memory_map.map(|region| MapEntry {
        range: Range::from_len(region.base, region.length),
        available: region.kind == MemoryKind::Available,
    });

    // SAFETY: only the addresses of the linker-script symbols are taken.
    let (kernel, text) = unsafe {
        (
            symbol_range(&__kernel_start, &__kernel_end),
            symbol_range(&__text_start, &__text_end),
        )
    };
    let boot_info = Range::from_len(mb_info, info.total_size() as u64);
    let mut reserved = RangeSet::<MAX_RESERVED_RANGES>::new();
    for range in [Range::new(0, LOW_MEMORY_END), kernel, boot_info] {
        reserved
            .insert(range)
            .unwrap_or_else(|err| fail(format_args!("reserved ranges: {err}")));
    }
    for module in info.modules() {
        let module = module.unwrap_or_else(|err| fail(format_args!("module: {err}")));
        let range = Range::new(u64::from(module.start), u64::from(module.end));
        log::info!("module: {range} {} bytes {:?}", range.len(), module.string);
        reserved
            .insert(range)
            .unwrap_or_else(|err| fail(format_args!("boot modules: {err}")));
    }
    let usable: RangeSet<MAX_RAM_RANGES> = usable_ram(map_entries.clone(), reserved.as_slice())
        .unwrap_or_else(|err| fail(format_args!("memory map: {err}")));
    log::info!(
        "kernel image {kernel}, code {text}, usable RAM {} MiB in {} ranges",
        usable.total_bytes() >> 20,
        usable.as_slice().len()
    );

    for range in usable.clipped_to(Range::new(0, EARLY_MAP_END)).as_slice() {
        // SAFETY: usable RAM below 4 GiB, mapped by the early page tables, outside the image, boot info
        // and modules.
        unsafe { heap::add_region(*range) };
    }
    let top = identity_map_top(map_entries, features.physical_address_bits);
    let summary = paging::init(top, &[text], features.has_1g_pages, features.nx_enabled)
        .unwrap_or_else(|err| fail(format_args!("paging: {err}")));
    log::info!(
        "paging: identity map up to {top:#x}: {} x 1 GiB + {} x 2 MiB pages, {} tables, PML4 at {:#x}",
        summary.huge_1g,
        summary.pages_2m,
        summary.tables,
        summary.pml4
    );
    for range in usable.clipped_to(Range::new(EARLY_MAP_END, top)).as_slice() {
        // SAFETY: usable RAM above 4 GiB, now identity-mapped by the new page tables.
        unsafe { heap::add_region(*range) };
    }
    let (heap_total, heap_used) = heap::usage();
    log::info!(
        "heap: {} MiB, {} KiB in use",
        heap_total >> 20,
        heap_used >> 10
    );

    let simd =
        cpu::enable_simd(features.simd).unwrap_or_else(|err| fail(format_args!("simd: {err}")));
    log::info!(
        "simd: sse on, xcr0={:?}, avx={}",
        simd.xcr0,
        simd.avx_enabled()
    );

    line(format_args!("probevisor: boot ok"));
    match options.test {
        Some(BootTest::InvalidOpcode) => {
            log::info!("test=ud: executing ud2");
            // SAFETY: ud2 raises #UD, which the IDT reports and ends the run; nothing after it runs.
            unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
        }
        Some(BootTest::PageFault) => {
            if UNMAPPED_ADDRESS < top {
                fail(format_args!(
                    "test=pf: {UNMAPPED_ADDRESS:#x} lies inside the identity map (top {top:#x})"
                ));
            }
            log::info!("test=pf: reading {UNMAPPED_ADDRESS:#x}");
            // SAFETY: the address is canonical and not mapped: the read raises #PF, which the IDT reports and
            // ends the run; no memory is read.
            let value = unsafe { core::ptr::read_volatile(UNMAPPED_ADDRESS as *const u64) };
            log::error!("read of unmapped {UNMAPPED_ADDRESS:#x} returned {value:#x}");
        }
        None => {}
    }
    let mut agents = Vec::new();
    let mut gate_modules = GateModules::default();
    for module in info.modules().flatten() {
        // SAFETY: GRUB loaded the module at [start, end) in RAM below 4 GiB; the range is reserved (the heap
        // excludes it), identity-mapped, and nothing writes it for the rest of the run.
        let bytes = unsafe {
            core::slice::from_raw_parts(
                module.start as usize as *const u8,
                module.end.saturating_sub(module.start) as usize,
            )
        };
        let role = gate_setup::module_role(module.string)
            .unwrap_or_else(|err| fail(format_args!("{err}; guests not started")));
        match role {
            ModuleRole::Agent(name) => agents.push(AgentModule {
                name: String::from(name),
                bytes,
            }),
            ModuleRole::Other => line(format_args!(
                "probevisor: boot module {:?} ignored (not agent:NAME, model, policy or fs)",
                module.string
            )),
            role => gate_modules
                .add(role, bytes)
                .unwrap_or_else(|err| fail(format_args!("{err}; guests not started"))),
        }
    }
    for name in test_guests::requested(command_line) {
        let Some(code) = test_guests::code(name) else {
            line(format_args!(
                "probevisor: unknown test guest {name:?} (test_guests::code lists the names)"
            ));
            continue;
        };
        let image: &'static [u8] = Box::leak(test_guests::elf_image(&code).into_boxed_slice());
        agents.push(AgentModule {
            name: alloc::format!("test-{name}"),
            bytes: image,
        });
    }
    if let Some(name) = gate_setup::first_duplicate(agents.iter().map(|a| a.name.as_str())) {
        fail(format_args!(
            "two guests named {name:?} (their audit records and rate limits would mix); guests not started"
        ));
    }
    let bridge = crate::bridge_client::requested(command_line)
        .unwrap_or_else(|err| fail(format_args!("command line: {err}")));
    let mut services = gate::setup(&gate_modules, bridge)
        .unwrap_or_else(|err| fail(format_args!("gate: {err}; guests not started")));
    exit::finish(backend::run(
        &features,
        &agents,
        simd.xcr0,
        services.as_mut(),
    ))
}
