//! Benign agent: lists the project directory, reads README.md and writes a short summary file.
#![no_std]
#![no_main]

use core::fmt::Write as _;
use guest_agent_sdk::{agent_main, FixedText, GuestAgent};

const PROJECT: &str = "/project";

agent_main!(main);

fn main(agent: &mut GuestAgent) -> u32 {
    let _ = writeln!(agent.console(), "benign: summarising {PROJECT}");
    let entries = match agent.list_dir(PROJECT) {
        Ok(listing) => listing.text().lines().count(),
        Err(e) => {
            let e = e.detach();
            let _ = writeln!(agent.console(), "benign: list_dir failed: {e}");
            return 1;
        }
    };
    let mut summary = FixedText::<1024>::default();
    match agent.read_file("/project/README.md") {
        Ok(readme) => {
            let text = readme.text();
            let title = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("(empty)");
            let _ = write!(
                summary,
                "# Summary\n\n- title: {}\n- README: {} lines, {} bytes\n- {} entries in {PROJECT}\n",
                title.trim_start_matches('#').trim(),
                text.lines().count(),
                readme.output.len(),
                entries,
            );
        }
        Err(e) => {
            let e = e.detach();
            let _ = writeln!(agent.console(), "benign: read_file failed: {e}");
            return 2;
        }
    }
    match agent.write_file("/project/SUMMARY.md", summary.as_str()) {
        Ok(_) => {
            let _ = writeln!(agent.console(), "benign: wrote /project/SUMMARY.md");
            0
        }
        Err(e) => {
            let e = e.detach();
            let _ = writeln!(agent.console(), "benign: write_file failed: {e}");
            3
        }
    }
}
