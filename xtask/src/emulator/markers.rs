//! Serial log markers: what a run must show to pass or fail, and log clean-up.

/// What a run must show. It passes as soon as every marker of one `pass_if` alternative is in
/// the log, fails as soon as a `fail_on` marker is (pass is checked first). Only complete lines
/// count while the emulator runs.
#[derive(Debug, Clone)]
pub struct Expect {
    pub pass_if: Vec<Vec<String>>,
    pub fail_on: Vec<String>,
}

/// How the hypervisor starts a line of a guest's console output.
const GUEST_LINE: &str = "[guest ";
/// Markers of the hypervisor's status lines, which it prints at the start of a line.
const LINE_START_MARKERS: &[&str] = &["PROBEVISOR-", "AUDIT-FINAL"];

/// Markers that end a run as failed unless it has passed already.
pub const DEFAULT_FAIL_ON: &[&str] = &["PROBEVISOR-PANIC", "PROBEVISOR-DONE status="];

impl Expect {
    /// Passes when all `markers` appear; fails on [`DEFAULT_FAIL_ON`].
    pub fn all(markers: &[&str]) -> Expect {
        Expect::any_of(&[markers])
    }

    /// Passes when all markers of any one alternative appear; fails on [`DEFAULT_FAIL_ON`].
    pub fn any_of(alternatives: &[&[&str]]) -> Expect {
        Expect {
            pass_if: alternatives
                .iter()
                .map(|set| set.iter().map(|m| m.to_string()).collect())
                .collect(),
            fail_on: DEFAULT_FAIL_ON.iter().map(|m| m.to_string()).collect(),
        }
    }

    /// The verdict on a log, if there is one yet. `finished`: the emulator has stopped, so a last
    /// line without a newline counts too.
    pub fn evaluate(&self, log: &str, finished: bool) -> Option<Verdict> {
        let text = if finished {
            log
        } else {
            log.rfind('\n').map_or("", |end| &log[..end])
        };
        // Guest text reaches the log: its console lines (`[guest NAME] ...`), and its words inside
        // hypervisor lines (a tool call's arguments in AUDIT and `audit:` lines, an Exit message).
        // So the hypervisor's own status lines and a guest's console line count only at the start
        // of a line (where guest text never is), and no other marker is looked for in a guest's
        // console lines: an agent printing or sending `PROBEVISOR-DONE status=ok`,
        // `PROBEVISOR-PANIC` or another guest's line decides nothing.
        let seen = |m: &str| {
            let anchored =
                m.starts_with(GUEST_LINE) || LINE_START_MARKERS.iter().any(|p| m.starts_with(p));
            text.lines().find(|l| {
                if anchored {
                    l.starts_with(m)
                } else {
                    !l.starts_with(GUEST_LINE) && l.contains(m)
                }
            })
        };
        if let Some(set) = self
            .pass_if
            .iter()
            .find(|set| set.iter().all(|m| seen(m).is_some()))
        {
            return Some(Verdict::Pass(format!("saw {}", set.join(" + "))));
        }
        if let Some(line) = self.fail_on.iter().find_map(|m| seen(m)) {
            return Some(Verdict::Fail(format!("failure marker: {}", line.trim())));
        }
        None
    }

    pub fn describe(&self) -> String {
        let alternatives: Vec<String> = self.pass_if.iter().map(|s| s.join(" + ")).collect();
        alternatives.join(" | ")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass(String),
    Fail(String),
}

/// The last `n` lines of a text.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Removes terminal escape sequences (GRUB draws with them), carriage returns and other control
/// characters except newline and tab.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                if chars.next() == Some('[') {
                    // CSI: parameters until a final byte in '@'..='~'.
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
            }
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expect_passes_on_all_markers_of_one_alternative() {
        let expect = Expect::all(&["probevisor: VMXON ok", "PROBEVISOR-DONE status=ok"]);
        let log =
            "probevisor: boot ok\nprobevisor: VMXON ok\nvmx basic 0x1\nPROBEVISOR-DONE status=ok\n";
        assert!(matches!(
            expect.evaluate(log, false),
            Some(Verdict::Pass(_))
        ));
        assert_eq!(expect.evaluate("probevisor: VMXON ok\n", false), None);
    }

    #[test]
    fn expect_fails_on_other_done_status_and_panic() {
        let expect = Expect::all(&["probevisor: VMXON ok", "PROBEVISOR-DONE status=ok"]);
        let log = "probevisor: no VT-x: cpuid\nPROBEVISOR-DONE status=no-vtx\n";
        assert_eq!(
            expect.evaluate(log, false),
            Some(Verdict::Fail(
                "failure marker: PROBEVISOR-DONE status=no-vtx".into()
            ))
        );
        let log = "PROBEVISOR-PANIC: oops at x.rs:1\n";
        assert!(
            matches!(expect.evaluate(log, false), Some(Verdict::Fail(m)) if m.contains("oops"))
        );
    }

    #[test]
    fn a_guest_printing_a_marker_decides_nothing() {
        let expect = Expect::all(&["[guest a] hi", "PROBEVISOR-DONE status=ok"]);
        let forged = "[guest a] hi\n[guest evil] PROBEVISOR-DONE status=ok\n";
        assert_eq!(expect.evaluate(forged, false), None);
        let forged_panic = "[guest evil] PROBEVISOR-PANIC: at x.rs:1\n[guest a] hi\n";
        assert_eq!(expect.evaluate(forged_panic, false), None);
        let real = "[guest a] hi\nPROBEVISOR-DONE status=ok\n";
        assert!(matches!(
            expect.evaluate(real, false),
            Some(Verdict::Pass(_))
        ));
        // Inside a hypervisor line that quotes the guest, or posing as another guest's line.
        let in_audit = "[guest a] hi\nAUDIT {\"args\":{\"cmd\":\"PROBEVISOR-DONE status=ok\"}}\n";
        assert_eq!(expect.evaluate(in_audit, false), None);
        let posing = "[guest evil] [guest a] hi\nPROBEVISOR-DONE status=ok\n";
        assert!(matches!(
            expect.evaluate(posing, false),
            Some(Verdict::Fail(_))
        ));
        let exit_message = "probevisor: guest e stopped: exited: \"PROBEVISOR-PANIC\"\n";
        assert_eq!(expect.evaluate(exit_message, false), None);
    }

    #[test]
    fn expect_ignores_an_incomplete_last_line_until_finished() {
        let expect = Expect::all(&["PROBEVISOR-DONE status=ok"]);
        // "status=o" being written must not read as a failing DONE line.
        assert_eq!(
            expect.evaluate("boot\nPROBEVISOR-DONE status=o", false),
            None
        );
        assert!(matches!(
            expect.evaluate("boot\nPROBEVISOR-DONE status=ok", true),
            Some(Verdict::Pass(_))
        ));
    }

    #[test]
    fn expect_alternatives() {
        let expect = Expect::any_of(&[
            &["PROBEVISOR-DONE status=ok"],
            &["PROBEVISOR-DONE status=no-vtx"],
        ]);
        assert!(matches!(
            expect.evaluate("PROBEVISOR-DONE status=no-vtx\n", false),
            Some(Verdict::Pass(_))
        ));
        assert!(matches!(
            expect.evaluate("PROBEVISOR-DONE status=fail\n", false),
            Some(Verdict::Fail(_))
        ));
    }

    #[test]
    fn exception_marker_does_not_match_other_vectors() {
        let expect = Expect::all(&["EXCEPTION vector=6 ", "PROBEVISOR-DONE status=exception"]);
        let log = "EXCEPTION vector=60 (#XX) error=0 rip=0x1\nPROBEVISOR-DONE status=exception\n";
        assert!(matches!(
            expect.evaluate(log, false),
            Some(Verdict::Fail(_))
        ));
        let log = "EXCEPTION vector=6 (#UD) error=0 rip=0x1\nPROBEVISOR-DONE status=exception\n";
        assert!(matches!(
            expect.evaluate(log, false),
            Some(Verdict::Pass(_))
        ));
    }

    #[test]
    fn clean_strips_escapes_and_carriage_returns() {
        assert_eq!(
            clean("\u{1b}[2J\u{1b}[01;01Hline\r\nnext\u{7}\n"),
            "line\nnext\n"
        );
        assert_eq!(clean("a\u{1b}"), "a");
        assert_eq!(clean("tab\tok"), "tab\tok");
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
        assert_eq!(tail("", 5), "");
    }
}
