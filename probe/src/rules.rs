//! Constitutional rules: declarative allow/deny on tools, path globs, hosts and command words.
//! Deny rules win over allow rules; with `default = "deny"` an action needs a matching allow rule.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// What an argument holds, which decides the rule conditions that look at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    Text,
    Path,
    Url,
    Command,
}

/// One rule: it matches when the tool matches and every condition given matches some argument.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: String,
    pub effect: Effect,
    /// Tool name globs; empty = every tool.
    pub tools: Vec<String>,
    /// Globs over normalised paths (`*` within one segment, `**` across segments).
    pub paths: Vec<String>,
    /// Host globs (`*.example.com`).
    pub hosts: Vec<String>,
    /// Command words (program names, compared after taking the basename).
    pub commands: Vec<String>,
    pub reason: String,
}

/// The argument values of an action, grouped by kind.
#[derive(Debug, Default, Clone)]
pub struct ArgFacts {
    pub paths: Vec<String>,
    pub hosts: Vec<String>,
    /// Every word of the commands ([`CommandLine::words`]).
    pub command_words: Vec<String>,
    /// The words in program position ([`CommandLine::programs`]).
    pub programs: Vec<String>,
    /// Program words only the shell can resolve ([`CommandLine::unknown_programs`]).
    pub unknown_programs: Vec<String>,
}

impl ArgFacts {
    pub fn add(&mut self, kind: ArgKind, value: &str) {
        match kind {
            ArgKind::Path => self.paths.push(normalize_path(value)),
            ArgKind::Url => self.hosts.push(host_of(value)),
            ArgKind::Command => {
                let line = read_command(value);
                self.command_words.extend(line.words);
                self.programs.extend(line.programs);
                self.unknown_programs.extend(line.unknown_programs);
            }
            ArgKind::Text => {}
        }
    }
}

impl Rule {
    /// Whether the rule applies: its tools match and each condition it gives matches. A deny
    /// rule's condition matches when *some* value of its kind matches (a command word, for
    /// `commands`). An allow rule's only when *every* value of its kind does, and there is one:
    /// `paths = ["/tmp/**"]` does not allow a copy from /etc/shadow to /tmp, and `commands`
    /// must name every program the command runs, none of them unknown (`ls; rm x` is not `ls`).
    pub fn matches(&self, tool: &str, facts: &ArgFacts) -> bool {
        let allow = self.effect == Effect::Allow;
        let condition = |pats: &[String], vals: &[String]| {
            let matched = |v: &String| pats.iter().any(|p| glob(p, v));
            pats.is_empty()
                || if allow {
                    !vals.is_empty() && vals.iter().all(matched)
                } else {
                    vals.iter().any(matched)
                }
        };
        let listed = |w: &str| self.commands.iter().any(|c| c == w);
        let commands = self.commands.is_empty()
            || if allow {
                facts.unknown_programs.is_empty()
                    && !facts.programs.is_empty()
                    && facts
                        .programs
                        .iter()
                        .all(|p| listed(p) || (in_system_dir(p) && listed(basename(p))))
            } else {
                facts.command_words.iter().any(|w| listed(w))
            };
        (self.tools.is_empty() || self.tools.iter().any(|t| glob(t, tool)))
            && condition(&self.paths, &facts.paths)
            && condition(&self.hosts, &facts.hosts)
            && commands
    }
}

/// The directories whose programs an allow rule's bare names also cover (`ls` covers `/bin/ls`,
/// not `./ls` or `/tmp/x/ls`, which an agent that can write files could have put there).
const SYSTEM_PROGRAM_DIRS: &[&str] = &[
    "/bin",
    "/sbin",
    "/usr/bin",
    "/usr/sbin",
    "/usr/local/bin",
    "/usr/local/sbin",
];

/// A program given by path in one of [`SYSTEM_PROGRAM_DIRS`] (after `..` and `//` are resolved).
fn in_system_dir(program: &str) -> bool {
    let path = normalize_path(program);
    path.rsplit_once('/')
        .is_some_and(|(dir, _)| SYSTEM_PROGRAM_DIRS.contains(&dir))
}

/// First matching deny rule, else first matching allow rule, else the default.
pub fn evaluate<'r>(
    rules: &'r [Rule],
    default: Effect,
    tool: &str,
    facts: &ArgFacts,
) -> (Effect, Option<&'r Rule>) {
    if let Some(r) = rules
        .iter()
        .find(|r| r.effect == Effect::Deny && r.matches(tool, facts))
    {
        return (Effect::Deny, Some(r));
    }
    if let Some(r) = rules
        .iter()
        .find(|r| r.effect == Effect::Allow && r.matches(tool, facts))
    {
        return (Effect::Allow, Some(r));
    }
    (default, None)
}

/// Glob match over bytes: `**` any run, `*` any run without `/`, `?` one byte other than `/`;
/// everything else literal. Runs the pattern as a set of positions over the text once, so the cost
/// is (text length x pattern length) whatever the stars (trying each split of each star, as a
/// backtracking match does, grows as the text length to the number of `**`: a guest's 16 KiB path
/// against an operator's `/**/x/**/y/**` took seconds).
pub fn glob(pattern: &str, text: &str) -> bool {
    let items = glob_items(pattern.as_bytes());
    let mut active = alloc::vec![false; items.len() + 1];
    let mut next = active.clone();
    active[0] = true;
    close_over_stars(&items, &mut active);
    for &c in text.as_bytes() {
        next.iter_mut().for_each(|s| *s = false);
        for (i, item) in items.iter().enumerate().filter(|(i, _)| active[*i]) {
            match *item {
                GlobItem::Byte(b) if b == c => next[i + 1] = true,
                GlobItem::AnyByte if c != b'/' => next[i + 1] = true,
                GlobItem::Run if c != b'/' => next[i] = true,
                GlobItem::RunAcrossSlashes => next[i] = true,
                _ => {}
            }
        }
        close_over_stars(&items, &mut next);
        core::mem::swap(&mut active, &mut next);
        if !active.contains(&true) {
            return false;
        }
    }
    active[items.len()]
}

#[derive(Clone, Copy)]
enum GlobItem {
    Byte(u8),
    /// `?`
    AnyByte,
    /// `*`
    Run,
    /// `**`
    RunAcrossSlashes,
}

fn glob_items(p: &[u8]) -> Vec<GlobItem> {
    let mut items = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        items.push(match p[i] {
            b'*' if p.get(i + 1) == Some(&b'*') => {
                i += 1;
                GlobItem::RunAcrossSlashes
            }
            b'*' => GlobItem::Run,
            b'?' => GlobItem::AnyByte,
            b => GlobItem::Byte(b),
        });
        i += 1;
    }
    items
}

/// A star may match nothing: the position after it is reached too.
fn close_over_stars(items: &[GlobItem], active: &mut [bool]) {
    for (i, item) in items.iter().enumerate() {
        if active[i] && matches!(item, GlobItem::Run | GlobItem::RunAcrossSlashes) {
            active[i + 1] = true;
        }
    }
}

/// Resolve `.`, `..` and repeated slashes; a relative path stays relative. `..` never climbs above
/// the root, so `/a/../../etc` is `/etc`.
pub fn normalize_path(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    if absolute {
        alloc::format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_string()
    } else {
        joined
    }
}

pub use crate::shell::{basename, read_command, CommandLine};
pub use crate::url_host::host_of;

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn rule(effect: Effect, tools: &[&str], paths: &[&str], hosts: &[&str], cmds: &[&str]) -> Rule {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
        Rule {
            id: "r".into(),
            effect,
            tools: v(tools),
            paths: v(paths),
            hosts: v(hosts),
            commands: v(cmds),
            reason: "why".into(),
        }
    }

    #[test]
    fn globs() {
        assert!(glob("/etc/**", "/etc/ssh/sshd_config"));
        assert!(glob("/home/*/.ssh/**", "/home/bob/.ssh/id_rsa"));
        assert!(!glob("/home/*", "/home/bob/x"));
        assert!(glob("*.example.com", "api.example.com"));
        assert!(!glob("*.example.com", "example.com.evil.org"));
        assert!(glob("file?.txt", "file1.txt") && !glob("file?.txt", "file10.txt"));
        assert!(glob("**", "") && glob("read_*", "read_file"));
        assert!(glob("a**", "a/b/c") && !glob("a*", "a/b") && glob("***", "x/y"));
        assert!(!glob("", "x") && glob("", "") && !glob("?", ""));
    }

    #[test]
    fn path_traversal_is_normalised() {
        assert_eq!(normalize_path("/home/u/../../etc//shadow"), "/etc/shadow");
        assert_eq!(normalize_path("/../../x/./y/"), "/x/y");
        assert_eq!(normalize_path("a/../../b"), "../b");
        assert_eq!(normalize_path(""), ".");
    }

    #[test]
    fn hosts_and_command_words() {
        assert_eq!(
            host_of("https://user:pw@API.Example.com/x"),
            "api.example.com"
        );
        let w = read_command("cd /tmp && /bin/rm -rf x;curl$(whoami)").words;
        for word in ["cd", "rm", "-rf", "curl", "whoami"] {
            assert!(w.iter().any(|x| x == word), "{word} in {w:?}");
        }
    }

    fn backtracking_glob(p: &[u8], t: &[u8]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some(b'*') if p.get(1) == Some(&b'*') => {
                (0..=t.len()).any(|i| backtracking_glob(&p[2..], &t[i..]))
            }
            Some(b'*') => (0..=t.len())
                .take_while(|&i| i == 0 || t[i - 1] != b'/')
                .any(|i| backtracking_glob(&p[1..], &t[i..])),
            Some(b'?') => !t.is_empty() && t[0] != b'/' && backtracking_glob(&p[1..], &t[1..]),
            Some(&c) => t.first() == Some(&c) && backtracking_glob(&p[1..], &t[1..]),
        }
    }

    #[test]
    fn glob_agrees_with_backtracking_and_stays_linear() {
        // Every pattern and text of up to 5 and 6 bytes over a small alphabet.
        let alphabet = [b'a', b'/', b'*', b'?'];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            let mut pick = |max: usize, alpha: &[u8]| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let len = (seed % (max as u64 + 1)) as usize;
                (0..len)
                    .map(|k| alpha[((seed >> (8 + 3 * k)) % alpha.len() as u64) as usize])
                    .collect::<Vec<u8>>()
            };
            let p = pick(5, &alphabet);
            let t = pick(6, &alphabet[..2]);
            let (ps, ts) = (
                core::str::from_utf8(&p).unwrap(),
                core::str::from_utf8(&t).unwrap(),
            );
            assert_eq!(glob(ps, ts), backtracking_glob(&p, &t), "{ps:?} {ts:?}");
        }
        // A guest's 16 KiB path against four `**`: decided in one pass (the backtracking match
        // tried some 10^15 splits).
        let path = alloc::format!("/{}", "a/".repeat(8192));
        assert!(!glob("/**/b/**/c/**/d/**", &path));
        assert!(glob("/**/a/**/a/**/a/**", &path));
    }

    #[test]
    fn deny_overrides_allow_and_default_applies() {
        let rules = vec![
            rule(Effect::Allow, &["read_file"], &["/home/**"], &[], &[]),
            rule(Effect::Deny, &[], &["/home/*/.ssh/**"], &[], &[]),
            rule(Effect::Deny, &["run_command"], &[], &[], &["rm", "mkfs"]),
            rule(Effect::Deny, &["http_fetch"], &[], &["*.evil.org"], &[]),
        ];
        let mut f = ArgFacts::default();
        f.add(ArgKind::Path, "/home/bob/notes.txt");
        assert_eq!(
            evaluate(&rules, Effect::Deny, "read_file", &f).0,
            Effect::Allow
        );
        let mut f = ArgFacts::default();
        f.add(ArgKind::Path, "/home/bob/docs/../.ssh/id_rsa");
        assert_eq!(
            evaluate(&rules, Effect::Allow, "read_file", &f).0,
            Effect::Deny
        );
        let mut f = ArgFacts::default();
        f.add(ArgKind::Command, "ls; /usr/bin/rm -rf /");
        assert_eq!(
            evaluate(&rules, Effect::Allow, "run_command", &f).0,
            Effect::Deny
        );
        let mut f = ArgFacts::default();
        f.add(ArgKind::Url, "https://x.EVIL.org/");
        assert_eq!(
            evaluate(&rules, Effect::Allow, "http_fetch", &f).0,
            Effect::Deny
        );
        let f = ArgFacts::default();
        let (effect, matched) = evaluate(&rules, Effect::Deny, "list_dir", &f);
        assert_eq!((effect, matched), (Effect::Deny, None));
    }

    #[test]
    fn allow_rules_need_every_value_deny_rules_any() {
        let allow_tmp = [rule(Effect::Allow, &[], &["/tmp/**"], &[], &[])];
        let deny_tmp = [rule(Effect::Deny, &[], &["/tmp/**"], &[], &[])];
        let mut copy = ArgFacts::default();
        copy.add(ArgKind::Path, "/etc/shadow");
        copy.add(ArgKind::Path, "/tmp/x");
        assert_eq!(
            evaluate(&allow_tmp, Effect::Deny, "copy", &copy).0,
            Effect::Deny
        );
        assert_eq!(
            evaluate(&deny_tmp, Effect::Allow, "copy", &copy).0,
            Effect::Deny
        );
        let mut both_tmp = ArgFacts::default();
        both_tmp.add(ArgKind::Path, "/tmp/a");
        both_tmp.add(ArgKind::Path, "/tmp/../tmp/b");
        assert_eq!(
            evaluate(&allow_tmp, Effect::Deny, "copy", &both_tmp).0,
            Effect::Allow
        );
        // No value of the kind: an allow rule on paths does not apply.
        assert_eq!(
            evaluate(&allow_tmp, Effect::Deny, "copy", &ArgFacts::default()).0,
            Effect::Deny
        );

        let allow_ls = [rule(
            Effect::Allow,
            &["run_command"],
            &[],
            &[],
            &["ls", "grep"],
        )];
        let run = |cmd: &str| {
            let mut f = ArgFacts::default();
            f.add(ArgKind::Command, cmd);
            evaluate(&allow_ls, Effect::Deny, "run_command", &f).0
        };
        assert_eq!(run("ls -la /tmp | /bin/grep x"), Effect::Allow);
        assert_eq!(run("/usr/local/bin/ls | //usr/bin/grep x"), Effect::Allow);
        for cmd in [
            "ls; rm -rf /",
            "ls $(rm -rf /)",
            "ls | sh",
            "$L -la",
            "ls -la && sudo ls",
            "grep x | xargs rm",
            "./ls -la",
            "/tmp/x/ls",
            "/usr/bin/../../tmp/ls",
            "function ls { rm -rf /; }; ls",
            "ls() { rm -rf /; }; ls",
        ] {
            assert_eq!(run(cmd), Effect::Deny, "{cmd}");
        }
    }
}
