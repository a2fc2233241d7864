//! The emulator's process group: started with `Command::process_group(0)` (setpgid, from std),
//! watched by a shell watchdog in the same group that kills the group when xtask dies, and
//! killed as a whole (`kill -KILL -- -PGID`) when the guard is dropped.

use std::process::{Child, Command, ExitStatus, Stdio};

/// An emulator in its own process group, plus a watchdog in that group that kills the group if
/// xtask dies. Dropping it kills the whole group and reaps the children.
pub struct ProcessGroup {
    leader: Child,
    watchdog: Option<Child>,
    pgid: u32,
    exit: Option<ExitStatus>,
}

/// Polls every half second whether xtask ($1) lives; when it does not, kills group $2 (with the
/// external `kill`: dash's builtin takes `-PGID` for an option).
const WATCHDOG: &str = "while kill -0 \"$1\" 2>/dev/null; do sleep 0.5; done; \
                        exec env kill -KILL -- \"-$2\" 2>/dev/null";

impl ProcessGroup {
    /// Starts `command` in a new process group, watched on behalf of this process.
    pub fn spawn(command: &mut Command) -> Result<ProcessGroup, String> {
        Self::spawn_guarded(command, std::process::id())
    }

    /// Starts `command` in a new process group that dies when process `guardian` does.
    fn spawn_guarded(command: &mut Command, guardian: u32) -> Result<ProcessGroup, String> {
        use std::os::unix::process::CommandExt;
        let program = command.get_program().to_string_lossy().into_owned();
        let leader = command
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {program}: {e}"))?;
        let pgid = leader.id();
        let watchdog = Command::new("sh")
            .args(["-c", WATCHDOG, "probevisor-watchdog"])
            .arg(guardian.to_string())
            .arg(pgid.to_string())
            .process_group(pgid as i32)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let watchdog = match watchdog {
            Ok(child) => Some(child),
            Err(e) => {
                eprintln!(
                    "warning: no watchdog for {program} (it may outlive an interrupted xtask): {e}"
                );
                None
            }
        };
        Ok(ProcessGroup {
            leader,
            watchdog,
            pgid,
            exit: None,
        })
    }

    /// The emulator's exit status once it has exited.
    pub fn try_exit(&mut self) -> Result<Option<ExitStatus>, String> {
        if self.exit.is_none() {
            self.exit = self
                .leader
                .try_wait()
                .map_err(|e| format!("cannot wait for the emulator: {e}"))?;
        }
        Ok(self.exit)
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let killed = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.pgid)])
            .stderr(Stdio::null())
            .status();
        if killed.is_err() {
            let _ = self.leader.kill();
            if let Some(watchdog) = self.watchdog.as_mut() {
                let _ = watchdog.kill();
            }
        }
        let _ = self.leader.wait();
        if let Some(watchdog) = self.watchdog.as_mut() {
            let _ = watchdog.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn process_group_is_killed_on_drop() {
        let mut command = Command::new("sleep");
        command.arg("30").stdin(Stdio::null());
        let group = ProcessGroup::spawn(&mut command).unwrap();
        let pgid = group.pgid;
        drop(group);
        // The watchdog's `sleep` is reaped by init, asynchronously: allow it a moment.
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut alive = true;
        while alive && Instant::now() < deadline {
            alive = Command::new("kill")
                .args(["-0", "--", &format!("-{pgid}")])
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .success();
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!alive, "process group {pgid} survived the guard");
    }

    #[test]
    fn watchdog_kills_the_group_when_its_guardian_dies() {
        use std::os::unix::process::ExitStatusExt;
        let mut guardian = Command::new("sleep").arg("30").spawn().unwrap();
        let mut command = Command::new("sleep");
        command.arg("30").stdin(Stdio::null());
        let mut group = ProcessGroup::spawn_guarded(&mut command, guardian.id()).unwrap();
        assert_eq!(group.try_exit().unwrap(), None);
        guardian.kill().unwrap();
        guardian.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(status) = group.try_exit().unwrap() {
                break Some(status);
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let status = status.expect("the watchdog did not kill the group");
        assert_eq!(status.signal(), Some(9));
    }
}
