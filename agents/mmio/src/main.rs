//! MMIO agent: talks to the tool device window (docs/hypercall-abi.md) instead of using VMCALL/VMMCALL:
//! reads its ID and VERSION registers, makes one tool call through the doorbell, then makes an access
//! the device does not allow (a write to the read-only STATUS register), which should stop the agent.
#![no_std]
#![no_main]

use core::fmt::Write as _;
use guest_agent_sdk::abi::mmio::{Register, DEVICE_ID, TOOL_DEVICE_GPA};
use guest_agent_sdk::guest::{mmio_write, MmioTransport};
use guest_agent_sdk::{agent_main, Agent, GuestAgent};

agent_main!(main);

fn main(agent: &mut GuestAgent) -> u32 {
    let _ = writeln!(
        agent.console(),
        "mmio: tool device window at {TOOL_DEVICE_GPA:#x}"
    );
    let (id, version, listing) = {
        let mut mmio = Agent::new(MmioTransport::new(agent.transport_mut()));
        let id = mmio.transport_mut().read(Register::Id) as u32;
        let version = mmio.transport_mut().read(Register::Version);
        let listing = mmio
            .list_dir("/project")
            .map(|r| r.output.len())
            .map_err(|e| e.code());
        (id, version, listing)
    };
    let id_ok = id == DEVICE_ID;
    let _ = writeln!(
        agent.console(),
        "mmio: id ok={id_ok} version={version} list_dir via doorbell: {listing:?}"
    );
    let _ = writeln!(
        agent.console(),
        "mmio: writing the read-only STATUS register (should stop the agent)"
    );
    mmio_write(TOOL_DEVICE_GPA + Register::Status.offset(), 0);
    let _ = writeln!(agent.console(), "mmio: the bad write was ignored");
    u32::from(!id_ok)
}
