//! What a POSIX/bash command line would run, read without running a shell: the words the rules
//! layer compares with its command lists.
//!
//! [`read_command`] splits a line into words after the shell's quote removal (with `$'...'`
//! escapes decoded) and finds the words in *program position*: the first word of each simple
//! command (after `;`, `&`, `|`, `(`, `)`, newlines, reserved words, `NAME=value` assignments and
//! redirections), the commands inside `$(...)` and backquotes, the program a wrapper starts
//! (`sudo`, `env`, `xargs`, `nice`, `timeout`, ...: every later word that is not an option), the
//! word after `find -exec`, the code of `sh -c CODE` and of `eval ARGS`, read again as a command
//! line. A program word whose value only the shell knows (a parameter expansion, a command
//! substitution, a glob or brace expansion) is *unknown*; so is a shell that reads its commands
//! from its input (`... | sh`). Nesting deeper than [`MAX_DEPTH`] is unknown too.
//!
//! The result is a superset of what the shell would run as far as the shell's own grammar goes;
//! code handed to another interpreter (`python -c`, `perl -e`, `awk`), to a remote host (`ssh`) or
//! kept in a file is not read.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// Nested command substitutions, `sh -c` and `eval` levels read before the rest is unknown.
pub const MAX_DEPTH: usize = 8;

/// What one command line runs, as far as [`read_command`] can tell.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CommandLine {
    /// Every word, as split on whitespace and shell punctuation and after quote removal, with the
    /// basename of each word that has a `/`: deny rules match any of them.
    pub words: Vec<String>,
    /// The words in program position, after quote removal (as written: `/usr/bin/rm`).
    pub programs: Vec<String>,
    /// Program-position words only the shell can resolve, as written (`$x`, `$(...)`, `/bin/r?`),
    /// or what makes the program unknown (`sh reading commands from its input`).
    pub unknown_programs: Vec<String>,
}

/// Reads `cmd` (see the module documentation).
pub fn read_command(cmd: &str) -> CommandLine {
    let mut line = CommandLine::default();
    // The plain split sees words that quote removal joins (`'r''m -rf /'` gives `r`, `m`).
    for w in cmd.split(|c: char| c.is_whitespace() || SHELL_PUNCTUATION.contains(c)) {
        push_word(&mut line.words, w);
    }
    let chars: Vec<char> = cmd.chars().collect();
    read_list(&chars, &mut 0, None, 0, &mut line);
    line
}

const SHELL_PUNCTUATION: &str = ";|&()`$<>'\"\\{}";

/// Adds `w` and, when it has a `/`, its basename.
fn push_word(words: &mut Vec<String>, w: &str) {
    if w.is_empty() {
        return;
    }
    if let Some((_, base)) = w.rsplit_once('/') {
        if !base.is_empty() {
            words.push(base.to_string());
        }
    }
    words.push(w.to_string());
}

/// The part of a path after its last `/`.
pub fn basename(w: &str) -> &str {
    w.rsplit_once('/').map_or(w, |(_, b)| b)
}

#[derive(Debug)]
enum Token {
    Word(Word),
    /// `;`, `&`, `|`, `(`, `)`, newline: a new simple command starts.
    Separator,
    /// `<`, `>` and their forms: the next word is a file name or descriptor.
    Redirect,
}

#[derive(Debug, Default)]
struct Word {
    /// After quote removal; expansions stay as written.
    text: String,
    /// As written.
    raw: String,
    /// Holds an expansion or (unquoted) a glob or brace character.
    unknown: bool,
    /// Had quotes or backslashes (a quoted `if` is no reserved word).
    quoted: bool,
    /// `NAME=...` with an unquoted valid name.
    assignment: bool,
}

/// Reads simple commands from `chars[*pos..]` until `end` (a `)` or a backquote closing a
/// substitution) or the end, and records their words and programs in `line`.
fn read_list(
    chars: &[char],
    pos: &mut usize,
    end: Option<char>,
    depth: usize,
    line: &mut CommandLine,
) {
    let tokens = lex(chars, pos, end, depth, line);
    for t in &tokens {
        if let Token::Word(w) = t {
            push_word(&mut line.words, &w.text);
            // Quote removal can join code into one word (`'r''m -rf /'`): its words count too.
            if depth < MAX_DEPTH && w.quoted && w.text.contains(char::is_whitespace) {
                let mut inner = CommandLine::default();
                let inner_chars: Vec<char> = w.text.chars().collect();
                read_list(&inner_chars, &mut 0, None, depth + 1, &mut inner);
                line.words.extend(inner.words);
            }
        }
    }
    find_programs(&tokens, depth, line);
}

/// A program that starts another: its options (those that take a value, and those whose value is
/// code for a shell) and how many plain words come before the program it starts.
struct Wrapper {
    name: &'static str,
    options_with_value: &'static [&'static str],
    code_options: &'static [&'static str],
    words_before_program: usize,
}

const fn wrapper(
    name: &'static str,
    options_with_value: &'static [&'static str],
    code_options: &'static [&'static str],
    words_before_program: usize,
) -> Wrapper {
    Wrapper {
        name,
        options_with_value,
        code_options,
        words_before_program,
    }
}

const WRAPPERS: &[Wrapper] = &[
    wrapper(
        "sudo",
        &[
            "-u", "-g", "-C", "-h", "-p", "-r", "-t", "-U", "-D", "-R", "-T",
        ],
        &[],
        0,
    ),
    wrapper("doas", &["-u", "-C"], &[], 0),
    wrapper(
        "env",
        &["-u", "-C", "--unset", "--chdir"],
        &["-S", "--split-string"],
        0,
    ),
    wrapper("exec", &["-a"], &[], 0),
    wrapper("command", &[], &[], 0),
    wrapper("builtin", &[], &[], 0),
    wrapper("nice", &["-n", "--adjustment"], &[], 0),
    wrapper("nohup", &[], &[], 0),
    wrapper("time", &["-f", "-o", "--format", "--output"], &[], 0),
    wrapper("timeout", &["-s", "-k", "--signal", "--kill-after"], &[], 1),
    wrapper(
        "xargs",
        &[
            "-I",
            "-n",
            "-P",
            "-L",
            "-d",
            "-s",
            "-a",
            "-E",
            "--max-args",
            "--max-procs",
            "--delimiter",
            "--arg-file",
        ],
        &[],
        0,
    ),
    wrapper("stdbuf", &["-i", "-o", "-e"], &[], 0),
    wrapper("setsid", &[], &[], 0),
    wrapper("ionice", &["-c", "-n", "-p", "-P", "-u"], &[], 0),
    wrapper("taskset", &[], &[], 1),
    wrapper("chrt", &["-T", "-P", "-D"], &[], 1),
    wrapper(
        "flock",
        &["-w", "-E", "--timeout", "--conflict-exit-code"],
        &["-c", "--command"],
        1,
    ),
    wrapper("chroot", &["--userspec", "--groups"], &[], 1),
    wrapper(
        "strace",
        &[
            "-o", "-e", "-p", "-s", "-u", "-E", "-a", "-b", "-I", "-O", "-P", "-S", "-X",
        ],
        &[],
        0,
    ),
    wrapper(
        "ltrace",
        &["-o", "-e", "-p", "-s", "-u", "-a", "-n"],
        &[],
        0,
    ),
    wrapper("watch", &["-n", "-d", "--interval"], &[], 0),
    wrapper(
        "su",
        &["-s", "-g", "-G", "-w", "--shell", "--group"],
        &["-c", "--command"],
        1,
    ),
    wrapper(
        "runuser",
        &["-u", "-s", "-g", "-G", "-w", "--user", "--shell", "--group"],
        &["-c", "--command"],
        0,
    ),
    wrapper("busybox", &[], &[], 0),
    wrapper("unbuffer", &[], &[], 0),
];

const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "yash", "posh", "fish",
];
/// Reserved words after which a program word may still come.
const RESERVED: &[&str] = &[
    "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "{", "}", "!", "esac",
    "coproc",
];
/// Reserved words whose own words (up to the next separator) are names and values, not programs.
const RESERVED_HEADS: &[&str] = &["for", "select", "case", "in"];

enum After {
    /// Arguments only.
    Args,
    /// A wrapper: its first word that is neither an option, an option's value nor one of the
    /// plain words it takes first is a program; a code option's value is code.
    Wrapper {
        spec: &'static Wrapper,
        value_next: bool,
        code_next: bool,
        words_left: usize,
    },
    /// A shell: `-c` makes the next word code; without code it runs a script file, or reads
    /// its input (no file, or `-s`).
    Shell {
        code_next: bool,
        code: bool,
        script: bool,
        stdin: bool,
    },
    /// `eval`: the words are code.
    Eval(Vec<String>),
    /// `find`: the word after `-exec` is a program.
    Find { program_next: bool },
    /// `source` / `.`: the first word is a script this shell runs; one only the shell can name
    /// (`. <(curl ...)`, `source $f`) is code nobody has read.
    Source,
    /// `for`/`case` heads: nothing here is a program.
    Skip,
    /// `function`: the next word is the function's name; its body's first word is a program.
    FunctionName,
}

fn find_programs(tokens: &[Token], depth: usize, line: &mut CommandLine) {
    let mut expect_program = true;
    let mut redirect_target = false;
    let mut after = After::Args;
    for t in tokens.iter().map(Some).chain([None]) {
        let w = match t {
            Some(Token::Word(w)) => w,
            Some(Token::Redirect) => {
                redirect_target = true;
                continue;
            }
            Some(Token::Separator) | None => {
                end_simple_command(&mut after, depth, line);
                expect_program = true;
                redirect_target = false;
                continue;
            }
        };
        if core::mem::take(&mut redirect_target) {
            continue;
        }
        if expect_program {
            if w.assignment {
                continue;
            }
            if !w.quoted && RESERVED.contains(&w.text.as_str()) {
                continue;
            }
            expect_program = false;
            if !w.quoted && RESERVED_HEADS.contains(&w.text.as_str()) {
                after = After::Skip;
                continue;
            }
            if !w.quoted && w.text == "function" {
                after = After::FunctionName;
                continue;
            }
            after = program(w, line);
            continue;
        }
        match &mut after {
            After::Args | After::Skip => {}
            After::FunctionName => {
                after = After::Args;
                expect_program = true;
            }
            After::Wrapper {
                spec,
                value_next,
                code_next,
                words_left,
            } => {
                if core::mem::take(value_next) {
                } else if core::mem::take(code_next) {
                    code(w, depth, line);
                } else if w.text.len() > 1 && w.text.starts_with('-') {
                    let option = w.text.as_str();
                    *value_next = spec.options_with_value.contains(&option);
                    *code_next = spec.code_options.contains(&option);
                } else if w.assignment && spec.name == "env" {
                } else if *words_left > 0 {
                    *words_left -= 1;
                } else {
                    after = program(w, line);
                }
            }
            After::Shell {
                code_next,
                code: has_code,
                script,
                stdin,
            } => {
                let short_options =
                    w.text.len() > 1 && w.text.starts_with('-') && !w.text.starts_with("--");
                if core::mem::take(code_next) {
                    *has_code = true;
                    code(w, depth, line);
                } else if short_options {
                    *code_next = w.text.contains('c');
                    *stdin |= w.text.contains('s');
                } else if !w.text.starts_with('-') {
                    *script = true;
                }
            }
            After::Eval(args) => {
                if w.unknown {
                    line.unknown_programs.push(w.raw.clone());
                }
                args.push(w.text.clone());
            }
            After::Source => {
                if w.unknown {
                    line.unknown_programs.push(w.raw.clone());
                }
                after = After::Args;
            }
            After::Find { program_next } => {
                if core::mem::take(program_next) {
                    after = program(w, line);
                } else if matches!(w.text.as_str(), "-exec" | "-execdir" | "-ok" | "-okdir") {
                    *program_next = true;
                }
            }
        }
    }
}

/// Records `w` as a program and says what its later words are.
fn program(w: &Word, line: &mut CommandLine) -> After {
    if w.unknown {
        line.unknown_programs.push(w.raw.clone());
        return After::Args;
    }
    line.programs.push(w.text.clone());
    let base = basename(&w.text);
    if let Some(spec) = WRAPPERS.iter().find(|s| s.name == base) {
        After::Wrapper {
            spec,
            value_next: false,
            code_next: false,
            words_left: spec.words_before_program,
        }
    } else if SHELLS.contains(&base) {
        After::Shell {
            code_next: false,
            code: false,
            script: false,
            stdin: false,
        }
    } else if base == "eval" {
        After::Eval(Vec::new())
    } else if base == "find" {
        After::Find {
            program_next: false,
        }
    } else if base == "source" || base == "." {
        After::Source
    } else {
        After::Args
    }
}

fn end_simple_command(after: &mut After, depth: usize, line: &mut CommandLine) {
    match core::mem::replace(after, After::Args) {
        After::Shell {
            code: false,
            script,
            stdin,
            ..
        } if stdin || !script => line
            .unknown_programs
            .push("a shell reading commands from its input".to_string()),
        After::Eval(args) if !args.is_empty() => code_text(&args.join(" "), depth, line),
        _ => {}
    }
}

/// `sh -c CODE`: CODE read as a command line one level down.
fn code(w: &Word, depth: usize, line: &mut CommandLine) {
    if w.unknown {
        line.unknown_programs.push(w.raw.clone());
    } else {
        code_text(&w.text, depth, line);
    }
}

fn code_text(text: &str, depth: usize, line: &mut CommandLine) {
    if depth >= MAX_DEPTH {
        line.unknown_programs
            .push("commands nested too deep".to_string());
        return;
    }
    let chars: Vec<char> = text.chars().collect();
    read_list(&chars, &mut 0, None, depth + 1, line);
}

#[path = "shell_lex.rs"]
mod lex_impl;
use lex_impl::lex;

#[cfg(test)]
#[path = "shell_tests.rs"]
mod tests;
