//! Round-robin scheduling of guests on one CPU: each runs until its time slice ends (preemption timer
//! exit) or it stops; a stopped guest is skipped, the others go on. Backend-neutral (any [`Vcpu`]).

use crate::exits::{handle_exit, ExitAction, ExitEnv};
use crate::vcpu::Vcpu;
use crate::vm::{GuestState, LogSink, StopReason};
use alloc::string::ToString;

/// A guest: its vCPU and its state.
pub struct Guest<V> {
    pub vcpu: V,
    pub state: GuestState,
}

/// Index of the next guest after `current` (round robin) that has not stopped.
pub fn next_runnable<V>(guests: &[Guest<V>], current: Option<usize>) -> Option<usize> {
    let n = guests.len();
    let start = current.map_or(0, |c| c + 1);
    (0..n)
        .map(|k| (start + k) % n)
        .find(|&i| guests[i].state.stopped.is_none())
}

/// What each guest may spend before it is stopped (its own budget; the others go on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestBudget {
    /// Exits of any kind ([`StopReason::BudgetExhausted`]): a guest spinning on cheap exits.
    pub exits: u64,
    /// Time slices ([`StopReason::SlicesExhausted`]): a guest that never exits on its own ends
    /// only when its slice does, so this bounds its share of the run's time.
    pub slices: u64,
}

/// Runs every guest until all have stopped. A guest's turn lasts until its time slice ends or an
/// exit costs the hypervisor work (a hypercall or doorbell, a log line). A guest that reaches its
/// budget is stopped and the others go on (a guest spinning on cheap exits, or never exiting at
/// all, spends its own budget, never another's). Every exit counts, so the loop ends. Returns the
/// exits handled in total.
pub fn run_round_robin<V: Vcpu>(
    guests: &mut [Guest<V>],
    env: &mut ExitEnv<'_>,
    budget: GuestBudget,
) -> u64 {
    let mut exits = 0u64;
    let mut current = None;
    while let Some(index) = next_runnable(guests, current) {
        current = Some(index);
        let guest = &mut guests[index];
        loop {
            let (own, slices) = (guest.state.stats.exits, guest.state.stats.time_slices);
            if own >= budget.exits {
                stop(guest, env, StopReason::BudgetExhausted { exits: own });
                break;
            }
            if slices >= budget.slices {
                stop(guest, env, StopReason::SlicesExhausted { slices });
                break;
            }
            let exit = match guest.vcpu.run() {
                Ok(exit) => exit,
                Err(err) => {
                    for line in guest.vcpu.diagnostic_dump() {
                        env.log.line(format_args!("  {line}"));
                    }
                    stop(guest, env, StopReason::EntryFailed(err.to_string()));
                    break;
                }
            };
            exits += 1;
            let calls = guest.state.stats.hypercalls;
            let mut log = LineCount {
                inner: &mut *env.log,
                lines: 0,
            };
            let mut counted = ExitEnv {
                log: &mut log,
                host_cpuid: env.host_cpuid,
                xcr0_allowed: env.xcr0_allowed,
                services: &mut *env.services,
            };
            let action = handle_exit(&mut guest.vcpu, exit, &mut guest.state, &mut counted);
            // Work the hypervisor did for the guest (a gated call, an audit record, a log line on
            // the slow serial port) is not guest time: VT-x's preemption timer does not count it,
            // and SVM's tick that comes meanwhile is taken before the next VMRUN. Such an exit ends
            // the guest's turn, so a guest making calls back to back lets the others run between
            // them instead of holding the CPU until its exit budget is spent.
            let served = guest.state.stats.hypercalls != calls || log.lines > 0;
            match action {
                ExitAction::Resume if served => break,
                ExitAction::Resume => {}
                ExitAction::Yield => break,
                ExitAction::Stop(reason) => {
                    stop(guest, env, reason);
                    break;
                }
            }
        }
    }
    exits
}

/// Counts the lines an exit handler writes (the serial console is slow: each line is host time).
struct LineCount<'l> {
    inner: &'l mut dyn LogSink,
    lines: u64,
}

impl LogSink for LineCount<'_> {
    fn line(&mut self, args: core::fmt::Arguments<'_>) {
        self.lines += 1;
        self.inner.line(args);
    }
}

/// Stops `guest`: its console flushed, a log line, and (for a stop it did not choose, unless its
/// exit handler already recorded the cause) an audit record of kind `guest_stopped`.
fn stop<V>(guest: &mut Guest<V>, env: &mut ExitEnv<'_>, reason: StopReason) {
    guest.state.flush_console(env.log);
    if !reason.is_voluntary() && !reason.audited_where_it_happened() {
        let detail = alloc::format!("{reason}");
        env.services
            .violation(&guest.state.name, "guest_stopped", &detail, env.log);
    }
    env.log.line(format_args!(
        "probevisor: guest {} stopped: {reason}",
        guest.state.name
    ));
    guest.state.stopped = Some(reason);
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
