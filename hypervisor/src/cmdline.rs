//! The kernel command line: whitespace-separated `key=value` words.
//!
//! Known keys: `test=ud|pf` (raise #UD / #PF after boot, to test the IDT) and `log=<level>`
//! (`off|error|warn|info|debug|trace`). Other words are ignored so the loader may add its own.

use core::fmt;
use log::LevelFilter;

/// A deliberate fault raised after boot to check the exception path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootTest {
    /// `test=ud`: execute `ud2` (vector 6).
    InvalidOpcode,
    /// `test=pf`: read an unmapped address (vector 14).
    PageFault,
}

/// Options read from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootOptions {
    pub test: Option<BootTest>,
    pub log_level: LevelFilter,
}

impl Default for BootOptions {
    fn default() -> Self {
        Self {
            test: None,
            log_level: LevelFilter::Info,
        }
    }
}

/// A command line word with a known key but a value it cannot take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmdlineError<'a> {
    UnknownTest(&'a str),
    UnknownLogLevel(&'a str),
}

impl fmt::Display for CmdlineError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownTest(v) => write!(f, "unknown test={v:?} (expected test=ud or test=pf)"),
            Self::UnknownLogLevel(v) => {
                write!(
                    f,
                    "unknown log={v:?} (expected off, error, warn, info, debug or trace)"
                )
            }
        }
    }
}

/// Parses the command line; the last occurrence of a key wins.
pub fn parse(cmdline: &str) -> Result<BootOptions, CmdlineError<'_>> {
    let mut options = BootOptions::default();
    for word in cmdline.split_ascii_whitespace() {
        let Some((key, value)) = word.split_once('=') else {
            continue;
        };
        match key {
            "test" => {
                options.test = Some(match value {
                    "ud" => BootTest::InvalidOpcode,
                    "pf" => BootTest::PageFault,
                    other => return Err(CmdlineError::UnknownTest(other)),
                });
            }
            "log" => {
                options.log_level = value
                    .parse()
                    .map_err(|_| CmdlineError::UnknownLogLevel(value))?;
            }
            _ => {}
        }
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_command_line_gives_defaults() {
        assert_eq!(parse("").unwrap(), BootOptions::default());
        assert_eq!(
            parse("  /boot/hypervisor  ").unwrap(),
            BootOptions::default()
        );
    }

    #[test]
    fn reads_test_and_log_words() {
        let options = parse("quiet test=ud log=debug").unwrap();
        assert_eq!(options.test, Some(BootTest::InvalidOpcode));
        assert_eq!(options.log_level, LevelFilter::Debug);
        assert_eq!(
            parse("test=ud test=pf").unwrap().test,
            Some(BootTest::PageFault)
        );
        assert_eq!(parse("other=1").unwrap().test, None);
    }

    #[test]
    fn rejects_unknown_values() {
        assert_eq!(parse("test=gp"), Err(CmdlineError::UnknownTest("gp")));
        assert_eq!(
            parse("log=loud"),
            Err(CmdlineError::UnknownLogLevel("loud"))
        );
        assert!(format!("{}", CmdlineError::UnknownTest("gp")).contains("test=ud"));
    }
}
