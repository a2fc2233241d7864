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
    pub command_words: Vec<String>,
}

impl ArgFacts {
    pub fn add(&mut self, kind: ArgKind, value: &str) {
        match kind {
            ArgKind::Path => self.paths.push(normalize_path(value)),
            ArgKind::Url => self.hosts.push(host_of(value)),
            ArgKind::Command => self.command_words.extend(command_words(value)),
            ArgKind::Text => {}
        }
    }
}

impl Rule {
    pub fn matches(&self, tool: &str, facts: &ArgFacts) -> bool {
        let any =
            |pats: &[String], vals: &[String]| pats.iter().any(|p| vals.iter().any(|v| glob(p, v)));
        (self.tools.is_empty() || self.tools.iter().any(|t| glob(t, tool)))
            && (self.paths.is_empty() || any(&self.paths, &facts.paths))
            && (self.hosts.is_empty() || any(&self.hosts, &facts.hosts))
            && (self.commands.is_empty()
                || self
                    .commands
                    .iter()
                    .any(|c| facts.command_words.iter().any(|w| w == c)))
    }
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
/// everything else literal. No allocation.
pub fn glob(pattern: &str, text: &str) -> bool {
    glob_at(pattern.as_bytes(), text.as_bytes())
}

fn glob_at(p: &[u8], t: &[u8]) -> bool {
    match p.first() {
        None => t.is_empty(),
        Some(b'*') if p.get(1) == Some(&b'*') => (0..=t.len()).any(|i| glob_at(&p[2..], &t[i..])),
        Some(b'*') => {
            for i in 0..=t.len() {
                if glob_at(&p[1..], &t[i..]) {
                    return true;
                }
                if i < t.len() && t[i] == b'/' {
                    return false;
                }
            }
            false
        }
        Some(b'?') => !t.is_empty() && t[0] != b'/' && glob_at(&p[1..], &t[1..]),
        Some(&c) => t.first() == Some(&c) && glob_at(&p[1..], &t[1..]),
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

/// The lowercase host of a URL (or of a bare `host[:port]`).
pub fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(authority);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Program and argument words of a shell command, split on whitespace and shell punctuation;
/// words with a `/` also give their basename (`/bin/rm` gives `rm`).
pub fn command_words(cmd: &str) -> Vec<String> {
    let mut out = Vec::new();
    for w in cmd.split(|c: char| c.is_whitespace() || ";|&()`$<>'\"\\{}".contains(c)) {
        if w.is_empty() {
            continue;
        }
        if let Some((_, base)) = w.rsplit_once('/') {
            if !base.is_empty() {
                out.push(base.to_string());
            }
        }
        out.push(w.to_string());
    }
    out
}

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
            host_of("https://user:pw@API.Example.com:8443/x?y"),
            "api.example.com"
        );
        assert_eq!(host_of("example.org"), "example.org");
        assert_eq!(host_of("http://[::1]:80/"), "::1");
        let w = command_words("cd /tmp && /bin/rm -rf x;curl$(whoami)");
        for word in ["cd", "rm", "-rf", "curl", "whoami"] {
            assert!(w.iter().any(|x| x == word), "{word} in {w:?}");
        }
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
}
