//! The programs and builtins of [`super::read_command`] that start other programs or run code:
//! which of their options take a value, which values are code or a program, and what their
//! plain words are.

use super::{code, option_spelled_by_shell, program, After, CommandLine, Word};
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// What the plain words (neither options nor option values) of a [`Wrapper`] are.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Runs {
    /// The first one after `skip` plain words is the program it starts.
    Program { skip: usize },
    /// The first one is code (`trap CODE SIGNAL`).
    Code,
    /// All of them together are code (`watch ls -l`, run with `sh -c`).
    AllCode,
    /// Arguments: only option values run something (`mapfile -C CODE`, `hash -p PROGRAM`).
    Args,
}

/// A program or builtin that starts another. Options are read as `getopt_long` reads them:
/// clusters (`-Ep PROMPT`), attached values (`-sKILL`, `--prompt=X`) and long names cut short
/// (`--pro X`).
pub(super) struct Wrapper {
    pub name: &'static str,
    /// Short options that take a value (one letter each).
    short_values: &'static str,
    long_values: &'static [&'static str],
    /// Options whose value is code for a shell.
    short_code: &'static str,
    long_code: &'static [&'static str],
    /// Options whose value is a program it runs (`su -s SHELL`, `hash -p PATH`, `fc -e EDITOR`).
    short_program: &'static str,
    long_program: &'static [&'static str],
    /// Long options without a value that are one of the short letters (`sudo --shell` is `-s`).
    long_letters: &'static [(&'static str, char)],
    pub runs: Runs,
    /// Without a program it runs a shell that reads its commands from its input: always
    /// (`su`, `chroot`), or with one of these short options (`sudo -s`).
    pub stdin_shell: Option<&'static str>,
}

const fn w(name: &'static str, short_values: &'static str, runs: Runs) -> Wrapper {
    Wrapper {
        name,
        short_values,
        long_values: &[],
        short_code: "",
        long_code: &[],
        short_program: "",
        long_program: &[],
        long_letters: &[],
        runs,
        stdin_shell: None,
    }
}

impl Wrapper {
    const fn long(mut self, long_values: &'static [&'static str]) -> Wrapper {
        self.long_values = long_values;
        self
    }
    const fn code(mut self, short: &'static str, long: &'static [&'static str]) -> Wrapper {
        self.short_code = short;
        self.long_code = long;
        self
    }
    const fn program(mut self, short: &'static str, long: &'static [&'static str]) -> Wrapper {
        self.short_program = short;
        self.long_program = long;
        self
    }
    const fn shell(mut self, letters: &'static str) -> Wrapper {
        self.stdin_shell = Some(letters);
        self
    }
    const fn long_letters(mut self, long: &'static [(&'static str, char)]) -> Wrapper {
        self.long_letters = long;
        self
    }
}

const P0: Runs = Runs::Program { skip: 0 };
const P1: Runs = Runs::Program { skip: 1 };

pub(super) const WRAPPERS: &[Wrapper] = &[
    w("sudo", "aCcDgpRrtTUu", P0)
        .long(&[
            "auth-type",
            "close-from",
            "login-class",
            "chdir",
            "group",
            "host",
            "prompt",
            "chroot",
            "role",
            "type",
            "command-timeout",
            "other-user",
            "user",
        ])
        .long_letters(&[("shell", 's'), ("login", 'i')])
        .shell("si"),
    w("doas", "aCu", P0).shell("s"),
    w("env", "uCa", P0)
        .long(&["unset", "chdir", "argv0"])
        .code("S", &["split-string"]),
    w("exec", "a", P0),
    w("command", "", P0),
    w("builtin", "", P0),
    w("nice", "n", P0).long(&["adjustment"]),
    w("nohup", "", P0),
    w("time", "fo", P0).long(&["format", "output"]),
    w("timeout", "ks", P1).long(&["kill-after", "signal"]),
    w("xargs", "adEILnPs", P0).long(&[
        "arg-file",
        "delimiter",
        "max-args",
        "max-procs",
        "process-slot-var",
        "max-chars",
    ]),
    w("stdbuf", "ioe", P0).long(&["input", "output", "error"]),
    w("setsid", "", P0),
    w("ionice", "cnpPu", P0).long(&["class", "classdata", "pid", "pgid", "uid"]),
    w("taskset", "", P1),
    w("chrt", "TPD", P1).long(&["sched-runtime", "sched-period", "sched-deadline"]),
    w("flock", "wE", P1)
        .long(&["timeout", "conflict-exit-code"])
        .code("c", &["command"]),
    w("chroot", "", P1).long(&["userspec", "groups"]).shell(""),
    w("strace", "abeEIoOpPsSuUX", P0),
    w("ltrace", "aAeDFlnopsSu", P0),
    w("watch", "nqd", Runs::AllCode).long(&["interval", "equexit"]),
    w("su", "gGw", P1)
        .long(&["group", "supp-group", "whitelist-environment"])
        .code("c", &["command", "session-command"])
        .program("s", &["shell"])
        .shell(""),
    w("runuser", "ugGw", P0)
        .long(&["user", "group", "supp-group", "whitelist-environment"])
        .code("c", &["command", "session-command"])
        .program("s", &["shell"])
        .shell(""),
    w("busybox", "", P0),
    w("unbuffer", "", P0),
    // Builtins.
    w("trap", "", Runs::Code),
    w("mapfile", "dnOsuc", Runs::Args).code("C", &[]),
    w("readarray", "dnOsuc", Runs::Args).code("C", &[]),
    w("hash", "d", Runs::Args).program("p", &[]),
    w("fc", "", Runs::Args).program("e", &[]),
];

/// What an option word means, and what the next word is.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Opt<'a> {
    /// Nothing more (or a value this reader has no use for).
    Plain,
    /// The next word is the option's value.
    Value,
    Code,
    Program,
    /// The value is attached: `-ccode`, `--command=code`.
    AttachedCode(&'a str),
    AttachedProgram(&'a str),
}

impl Wrapper {
    /// Reads `word`, an option (it starts with `-` and is not `-` or `--`). `letters` gets the
    /// short options seen before any value.
    pub fn option<'a>(&self, word: &'a str, letters: &mut String) -> Opt<'a> {
        if let Some(long) = word.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            // getopt_long takes a name given whole (`--login`, not `--login-class`), else an
            // unambiguous prefix of one: a prefix of any name taking a value is read as that
            // option (an ambiguous one is refused by the program).
            let flags: Vec<&str> = self.long_letters.iter().map(|f| f.0).collect();
            let exact = [self.long_code, self.long_program, self.long_values, &flags]
                .iter()
                .any(|names| names.contains(&name));
            let is = |names: &[&str]| {
                names.iter().any(|&n| {
                    if exact {
                        n == name
                    } else {
                        n.starts_with(name) && !name.is_empty()
                    }
                })
            };
            return match value {
                Some(v) if is(self.long_code) => Opt::AttachedCode(v),
                Some(v) if is(self.long_program) => Opt::AttachedProgram(v),
                Some(_) => Opt::Plain,
                None if is(self.long_code) => Opt::Code,
                None if is(self.long_program) => Opt::Program,
                None if is(self.long_values) => Opt::Value,
                None => {
                    // An ambiguous prefix (`--s`) is refused by the program: taking it for the
                    // letter only refuses more here.
                    for &(n, c) in self.long_letters {
                        if is(&[n]) {
                            letters.push(c);
                        }
                    }
                    Opt::Plain
                }
            };
        }
        for (i, c) in word.char_indices().skip(1) {
            let rest = &word[i + c.len_utf8()..];
            let (attached, next) = if self.short_code.contains(c) {
                (Opt::AttachedCode(rest), Opt::Code)
            } else if self.short_program.contains(c) {
                (Opt::AttachedProgram(rest), Opt::Program)
            } else if self.short_values.contains(c) {
                (Opt::Plain, Opt::Value)
            } else {
                letters.push(c);
                continue;
            };
            return if rest.is_empty() { next } else { attached };
        }
        Opt::Plain
    }
}

pub(super) struct WrapperState {
    pub spec: &'static Wrapper,
    pub next: Opt<'static>,
    pub options_done: bool,
    pub words_left: usize,
    /// The short options seen (`sudo -s` runs a shell).
    pub letters: String,
    /// A program or code was found.
    pub ran: bool,
    /// An option named a program (`su -s SHELL`, `fc -e EDITOR`).
    pub program_option: bool,
    /// [`Runs::AllCode`]: the words so far.
    pub code: Vec<String>,
}

/// A word after a wrapper; returns what comes next when it is the program the wrapper starts.
pub(super) fn wrapper_word(
    s: &mut WrapperState,
    w: &Word,
    depth: usize,
    line: &mut CommandLine,
) -> Option<After> {
    let attached = |v: &str| Word {
        text: v.to_string(),
        raw: w.raw.clone(),
        unknown: w.unknown,
        ..Word::default()
    };
    match core::mem::replace(&mut s.next, Opt::Plain) {
        Opt::Value => return None,
        Opt::Code => {
            s.ran = true;
            code(w, depth, line);
            return None;
        }
        Opt::Program => {
            s.program_option = true;
            program(w, line);
            return None;
        }
        _ => {}
    }
    let option = !s.options_done && w.text.starts_with('-');
    if option && option_spelled_by_shell(w) {
        // `sudo -$x ls rm` is `sudo -u ls rm` when x is `u`: the program is not known.
        line.unknown_programs.push(w.raw.clone());
    }
    if option && w.text == "--" {
        s.options_done = true;
    } else if option && w.text.len() > 1 {
        match s.spec.option(&w.text, &mut s.letters) {
            Opt::AttachedCode(v) => {
                s.ran = true;
                code(&attached(v), depth, line);
            }
            Opt::AttachedProgram(v) => {
                s.program_option = true;
                program(&attached(v), line);
            }
            Opt::Plain => {}
            next => {
                // Value, Code or Program: the next word.
                s.next = match next {
                    Opt::Code => Opt::Code,
                    Opt::Program => Opt::Program,
                    _ => Opt::Value,
                };
            }
        }
    } else if option || (w.assignment && s.spec.name == "env") {
        // `su -`, `env -`, `trap - INT` (no code); `env X=1`.
        s.ran |= option && s.spec.runs == Runs::Code;
    } else {
        match s.spec.runs {
            Runs::Program { .. } if s.words_left > 0 => s.words_left -= 1,
            Runs::Program { .. } => return Some(program(w, line)),
            Runs::Code if !s.ran => {
                s.ran = true;
                code(w, depth, line);
            }
            Runs::AllCode => {
                s.ran = true;
                if w.unknown {
                    line.unknown_programs.push(w.raw.clone());
                }
                s.code.push(w.text.clone());
            }
            Runs::Code | Runs::Args => {}
        }
    }
    None
}
