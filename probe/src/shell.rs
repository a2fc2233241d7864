//! What a POSIX/bash command line would run, read without running a shell: the words the rules
//! layer compares with its command lists.
//!
//! [`read_command`] splits a line into words after the shell's quote removal (with `$'...'`
//! escapes decoded) and finds the words in *program position*: the first word of each simple
//! command (after `;`, `&`, `|`, `(`, `)`, newlines, reserved words, `NAME=value` assignments and
//! redirections), the commands inside `$(...)` and backquotes, the program a wrapper starts
//! (`sudo`, `env`, `xargs`, `nice`, `timeout`, ...: its first plain word, options read as
//! `getopt_long` reads them), the word after `find -exec`, the program an option names
//! (`su -s`, `hash -p`, `fc -e`), the code of `sh -c CODE`, `eval ARGS`, `trap CODE`,
//! `alias NAME=CODE`, `mapfile -C CODE` and `watch ARGS`, read again as a command line. Every
//! quoted string is read again too, as bash may read it (`trap 'r""m'`, arithmetic on a variable
//! holding `'a[$(rm x)]'`, `${x@P}`, `PS4`): its words count, and the commands inside its
//! substitutions are programs. A program word whose value only the shell knows (a parameter
//! expansion, a command substitution, a glob or brace expansion) is *unknown*; so is a shell
//! that reads its commands from its input (`... | sh`, `bash /dev/stdin`, `sudo -s`, `su`), a
//! script or `BASH_ENV` only the shell can name, `${x@P}`, and `fc` without `-e`. Nesting deeper
//! than [`MAX_DEPTH`] is unknown too.
//!
//! The result is a superset of what the shell would run as far as the shell's own grammar goes,
//! with one gap: a value built at run time from pieces (`d=\$; x="a[${d}(...)]"`) or read from a
//! file or a command's output, which bash then expands again (arithmetic, subscripts,
//! `${!x}`, namerefs). Code handed to another interpreter (`python -c`, `perl -e`, `awk`), to a
//! remote host (`ssh`) or kept in a file is not read, nor what a program not listed here starts
//! through its own options (`tar --to-command`, `git -c`, `script -c`).

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
    push_plain_words(&mut line.words, cmd);
    let chars: Vec<char> = cmd.chars().collect();
    read_list(&chars, &mut 0, None, 0, &mut line);
    line
}

const SHELL_PUNCTUATION: &str = ";|&()`$<>'\"\\{}";

/// Adds the words of `text` split on whitespace and shell punctuation, quotes and all.
fn push_plain_words(words: &mut Vec<String>, text: &str) {
    for w in text.split(|c: char| c.is_whitespace() || SHELL_PUNCTUATION.contains(c)) {
        push_word(words, w);
    }
}

/// What `unknown_programs` gets when nesting passes [`MAX_DEPTH`].
const NESTED_TOO_DEEP: &str = "commands nested too deep";

/// The characters of `text`, to be read one level below `depth`; past [`MAX_DEPTH`], none, and
/// the line has an unknown program.
fn one_level_down(text: &str, depth: usize, line: &mut CommandLine) -> Option<Vec<char>> {
    if depth >= MAX_DEPTH {
        line.unknown_programs.push(NESTED_TOO_DEEP.to_string());
        return None;
    }
    Some(text.chars().collect())
}

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
    read_words(&tokens, depth, line);
    find_programs(&tokens, depth, line);
}

/// Records the words of `tokens`; a quoted one is read again as a string bash may read as code.
fn read_words(tokens: &[Token], depth: usize, line: &mut CommandLine) {
    for t in tokens {
        if let Token::Word(w) = t {
            push_word(&mut line.words, &w.text);
            if w.quoted {
                read_string(&w.text, depth, line);
            }
        }
    }
}

/// A string after quote removal, which bash may read again: as code (`trap`, `alias`, `sh -c`,
/// a function's `eval "$1"`: quote removal joins `'r''m -rf /'` and `'r""m'`) or as a value it
/// expands once more (arithmetic on a variable holding `a[$(rm x)]`, an array subscript given
/// to `read`, `printf -v`, `unset` or `[[ -v ]]`, `${x@P}`, `PS4`, `BASH_ENV`). Its words count
/// for deny rules, and the commands inside its substitutions are programs.
fn read_string(text: &str, depth: usize, line: &mut CommandLine) {
    let Some(chars) = one_level_down(text, depth, line) else {
        return;
    };
    let tokens = lex(&chars, &mut 0, None, depth + 1, line);
    read_words(&tokens, depth + 1, line);
}

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
/// Words that start a compound command: `coproc NAME` before one of them names the coprocess.
const COMPOUND: &[&str] = &["{", "while", "until", "if", "for", "select", "case", "[["];

/// A file whose text is what the command reads from its input or a pipe: a shell or `source`
/// given one reads code nobody has read (`bash /dev/stdin <<< CODE`).
/// Only absolute paths under /dev and /proc (after `..`, `.` and `//` are resolved): a component
/// named `dev` elsewhere (`/home/dev/build.sh`) is an ordinary file.
fn reads_input(path: &str) -> bool {
    let path = crate::rules::normalize_path(path);
    path == "/dev" || path == "/proc" || path.starts_with("/dev/") || path.starts_with("/proc/")
}

enum After {
    /// Arguments only.
    Args,
    /// A program or builtin that starts another or runs code ([`Wrapper`]).
    Wrapper(WrapperState),
    /// A shell: `-c` makes the first plain word code; without code it runs a script file, or
    /// reads its input (no file, `-s`, or a file such as `/dev/stdin`).
    Shell {
        value_next: usize,
        code_next: bool,
        options_done: bool,
        code: bool,
        script: bool,
        stdin: bool,
    },
    /// `eval`: the words are code.
    Eval(Vec<String>),
    /// `find`: the word after `-exec` is a program.
    Find { program_next: bool },
    /// `source` / `.`: the first word is a script this shell runs; one only the shell can name
    /// (`. <(curl ...)`, `source $f`) or one that is its input (`/dev/stdin`) is code nobody has
    /// read.
    Source,
    /// `alias NAME=VALUE`: the values are code.
    Alias,
    /// `for`/`case` heads: nothing here is a program.
    Skip,
    /// `function`: the next word is the function's name; its body's first word is a program.
    FunctionName,
}

fn find_programs(tokens: &[Token], depth: usize, line: &mut CommandLine) {
    let mut expect_program = true;
    let mut redirect_target = false;
    let mut coproc = false;
    let mut after = After::Args;
    for (i, t) in tokens.iter().map(Some).chain([None]).enumerate() {
        let w = match t {
            Some(Token::Word(w)) => w,
            Some(Token::Redirect) => {
                redirect_target = true;
                continue;
            }
            Some(Token::Separator) | None => {
                end_simple_command(&mut after, depth, line);
                expect_program = true;
                coproc = false;
                redirect_target = false;
                continue;
            }
        };
        if let Some(v) = ["BASH_ENV=", "ENV="]
            .iter()
            .find_map(|p| w.text.strip_prefix(p))
        {
            // A script every bash this command starts sources first.
            if w.unknown || reads_input(v) {
                line.unknown_programs.push(w.raw.clone());
            }
        }
        if core::mem::take(&mut redirect_target) {
            continue;
        }
        if expect_program {
            if w.assignment {
                continue;
            }
            if !w.quoted && RESERVED.contains(&w.text.as_str()) {
                coproc = w.text == "coproc";
                continue;
            }
            let next_is_compound = matches!(tokens.get(i + 1),
                Some(Token::Word(n)) if !n.quoted && COMPOUND.contains(&n.text.as_str()));
            if core::mem::take(&mut coproc) && next_is_compound {
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
            After::Wrapper(state) => {
                if let Some(next) = wrapper_word(state, w, depth, line) {
                    after = next;
                }
            }
            After::Shell {
                value_next,
                code_next,
                options_done,
                code: has_code,
                script,
                stdin,
            } => {
                let option = !*options_done
                    && w.text.len() > 1
                    && (w.text.starts_with('-') || w.text.starts_with('+'));
                if !*options_done && *value_next == 0 && option_spelled_by_shell(w) {
                    // `bash -$x CODE`: `-c` or `-s` for all this reader knows.
                    line.unknown_programs.push(w.raw.clone());
                }
                if *value_next > 0 {
                    // `-o OPTION`, `-O OPTION`, `--rcfile FILE`: a file read at start-up.
                    *value_next -= 1;
                    *stdin |= reads_input(&w.text);
                } else if *options_done && (*has_code || *script) {
                } else if matches!(w.text.as_str(), "--" | "-") && !*options_done {
                    *options_done = true;
                } else if option && w.text.starts_with("--") {
                    *value_next +=
                        usize::from(matches!(w.text.as_str(), "--rcfile" | "--init-file"));
                } else if option {
                    // `bash -euo pipefail`, `sh +c CODE`: one value for each `o` or `O`.
                    *code_next |= w.text.contains('c');
                    *stdin |= w.text.contains('s');
                    *value_next += w.text.chars().filter(|&c| c == 'o' || c == 'O').count();
                } else if core::mem::take(code_next) {
                    *has_code = true;
                    *options_done = true;
                    code(w, depth, line);
                } else {
                    *script = true;
                    *options_done = true;
                    if w.unknown {
                        line.unknown_programs.push(w.raw.clone());
                    }
                    *stdin |= reads_input(&w.text);
                }
            }
            After::Eval(args) => {
                if w.unknown {
                    line.unknown_programs.push(w.raw.clone());
                }
                if !(args.is_empty() && w.text == "--") {
                    args.push(w.text.clone());
                }
            }
            After::Source => {
                if w.unknown || reads_input(&w.text) {
                    line.unknown_programs.push(w.raw.clone());
                }
                after = After::Args;
            }
            After::Alias => {
                if let Some((_, value)) = w.text.split_once('=') {
                    if w.unknown {
                        line.unknown_programs.push(w.raw.clone());
                    }
                    code_text(value, depth, line);
                }
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

/// An option word (`-...`, `+...`) holding an expansion or a glob (`sudo -$x`, `bash -[c]`): which
/// options it gives, and so which later word is the program or code, only the shell knows.
/// `xargs -I{}` is no brace expansion.
fn option_spelled_by_shell(w: &Word) -> bool {
    (w.text.starts_with('-') || w.text.starts_with('+'))
        && w.unknown
        && w.raw
            .replace("{}", "")
            .contains(['$', '`', '*', '?', '[', '{', '<', '>'])
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
        After::Wrapper(WrapperState {
            spec,
            next: Opt::Plain,
            options_done: false,
            words_left: match spec.runs {
                Runs::Program { skip } => skip,
                _ => 0,
            },
            letters: String::new(),
            ran: false,
            program_option: false,
            code: Vec::new(),
        })
    } else if SHELLS.contains(&base) {
        After::Shell {
            value_next: 0,
            code_next: false,
            options_done: false,
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
    } else if base == "alias" {
        After::Alias
    } else {
        After::Args
    }
}

fn end_simple_command(after: &mut After, depth: usize, line: &mut CommandLine) {
    const STDIN_SHELL: &str = "a shell reading commands from its input";
    match core::mem::replace(after, After::Args) {
        After::Shell {
            code: false,
            script,
            stdin,
            ..
        } if stdin || !script => line.unknown_programs.push(STDIN_SHELL.to_string()),
        After::Eval(args) if !args.is_empty() => code_text(&args.join(" "), depth, line),
        After::Wrapper(s) => {
            if !s.code.is_empty() {
                code_text(&s.code.join(" "), depth, line);
            }
            let shell = s.spec.stdin_shell.is_some_and(|letters| {
                letters.is_empty() || s.letters.chars().any(|c| letters.contains(c))
            });
            if !s.ran && shell {
                line.unknown_programs.push(STDIN_SHELL.to_string());
            }
            // `fc` without `-e` runs the editor `$FCEDIT` names (`-l` lists, `-s` reruns).
            let lists = s.letters.contains('l') || s.letters.contains('s');
            if s.spec.name == "fc" && !lists && !s.program_option {
                line.unknown_programs
                    .push("fc running the editor $FCEDIT names".to_string());
            }
        }
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
    let Some(chars) = one_level_down(text, depth, line) else {
        return;
    };
    read_list(&chars, &mut 0, None, depth + 1, line);
}

#[path = "shell_lex.rs"]
mod lex_impl;
use lex_impl::lex;

#[path = "shell_heredoc.rs"]
mod heredoc;

#[path = "shell_wrappers.rs"]
mod wrappers;
use wrappers::{wrapper_word, Opt, Runs, WrapperState, WRAPPERS};

#[cfg(test)]
#[path = "shell_tests.rs"]
mod tests;
