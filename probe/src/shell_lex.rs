//! The lexer of [`super::read_command`]: words after quote removal, separators and redirections,
//! with the commands inside `$(...)`, `<(...)` and backquotes read as they are met.

use super::heredoc::here_documents;
use super::{read_list, CommandLine, Token, Word, MAX_DEPTH, NESTED_TOO_DEEP};
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// A word being read.
struct Building {
    word: Word,
    start: usize,
    active: bool,
    /// Every character so far is an unquoted name character (a `NAME=` may follow).
    name_so_far: bool,
    glob: bool,
}

impl Building {
    fn new() -> Building {
        Building {
            word: Word::default(),
            start: 0,
            active: false,
            name_so_far: true,
            glob: false,
        }
    }

    fn begin(&mut self, pos: usize) {
        if !self.active {
            self.active = true;
            self.start = pos;
        }
    }

    fn push(&mut self, c: char, pos: usize) {
        self.begin(pos);
        self.word.text.push(c);
    }

    fn quoted(&mut self, pos: usize) {
        self.begin(pos);
        self.word.quoted = true;
        self.name_so_far = false;
    }

    fn expansion(&mut self, pos: usize) {
        self.begin(pos);
        self.word.unknown = true;
        self.name_so_far = false;
    }

    fn finish(&mut self, chars: &[char], end: usize, tokens: &mut Vec<Token>) {
        if !self.active {
            return;
        }
        let mut b = core::mem::replace(self, Building::new());
        let lone = matches!(b.word.text.as_str(), "[" | "[[" | "{" | "}");
        b.word.unknown |= b.glob && !lone;
        b.word.raw = chars[b.start..end.min(chars.len())].iter().collect();
        tokens.push(Token::Word(b.word));
    }
}

/// Tokens of `chars[*pos..]` up to `end` (consumed) or the end of the text.
pub(super) fn lex(
    chars: &[char],
    pos: &mut usize,
    end: Option<char>,
    depth: usize,
    line: &mut CommandLine,
) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut b = Building::new();
    // Here-documents whose bodies start after the next newline: (delimiter token, `<<-`).
    let mut heredocs: Vec<(usize, bool)> = Vec::new();
    while let Some(&c) = chars.get(*pos) {
        let at = *pos;
        if Some(c) == end {
            *pos += 1;
            break;
        }
        match c {
            '#' if !b.active => {
                while chars.get(*pos).is_some_and(|&c| c != '\n') {
                    *pos += 1;
                }
                continue;
            }
            c if c.is_whitespace() => {
                b.finish(chars, at, &mut tokens);
                if c == '\n' {
                    tokens.push(Token::Separator);
                    if !heredocs.is_empty() {
                        *pos += 1;
                        here_documents(chars, pos, &tokens, &mut heredocs, depth, line);
                        continue;
                    }
                }
            }
            '<' | '>' if chars.get(at + 1) == Some(&'(') => {
                // Process substitution: a command whose output is a file name.
                b.expansion(at);
                *pos += 2;
                nested(chars, pos, Some(')'), depth, line);
                continue;
            }
            '<' | '>' => {
                let fd = b.active
                    && !b.word.quoted
                    && !b.word.unknown
                    && b.word.text.bytes().all(|c| c.is_ascii_digit());
                if fd {
                    b = Building::new();
                } else {
                    b.finish(chars, at, &mut tokens);
                }
                let heredoc =
                    c == '<' && chars.get(at + 1) == Some(&'<') && chars.get(at + 2) != Some(&'<');
                if heredoc {
                    // `<<WORD` or `<<-WORD`: the next word is the delimiter, not a file.
                    let strip = chars.get(at + 2) == Some(&'-');
                    *pos = at + 2 + usize::from(strip);
                    tokens.push(Token::Redirect);
                    heredocs.push((tokens.len(), strip));
                    continue;
                }
                while chars.get(*pos).is_some_and(|c| "<>&|-".contains(*c)) {
                    *pos += 1;
                }
                tokens.push(Token::Redirect);
                continue;
            }
            '&' if chars.get(at + 1) == Some(&'>') => {
                b.finish(chars, at, &mut tokens);
                *pos += 1;
                continue;
            }
            ';' | '&' | '|' | '(' | ')' => {
                b.finish(chars, at, &mut tokens);
                tokens.push(Token::Separator);
            }
            '\\' => {
                b.quoted(at);
                match chars.get(at + 1) {
                    Some('\n') => {}
                    Some(&next) => b.word.text.push(next),
                    None => b.word.text.push('\\'),
                }
                *pos += 2;
                continue;
            }
            '\'' => {
                b.quoted(at);
                *pos += 1;
                while let Some(&c) = chars.get(*pos) {
                    *pos += 1;
                    if c == '\'' {
                        break;
                    }
                    b.word.text.push(c);
                }
                continue;
            }
            '"' => {
                b.quoted(at);
                *pos += 1;
                double_quoted(chars, pos, &mut b, depth, line);
                continue;
            }
            '$' => {
                dollar(chars, pos, &mut b, false, depth, line);
                continue;
            }
            '`' => {
                b.expansion(at);
                *pos += 1;
                backquoted(chars, pos, depth, line);
                continue;
            }
            '*' | '?' | '[' | '{' => {
                b.push(c, at);
                b.glob = true;
                b.name_so_far = false;
            }
            '+' if b.active
                && b.name_so_far
                && !b.word.assignment
                && chars.get(at + 1) == Some(&'=') =>
            {
                // `NAME+=value`.
                b.push(c, at);
            }
            '=' if b.active && b.name_so_far && !b.word.assignment => {
                b.word.assignment = true;
                b.push(c, at);
            }
            c => {
                let name_char = c == '_' || c.is_ascii_alphanumeric();
                if !name_char || (!b.active && c.is_ascii_digit()) {
                    b.name_so_far = false;
                }
                b.push(c, at);
            }
        }
        *pos += 1;
    }
    b.finish(chars, *pos, &mut tokens);
    tokens
}

/// The command substitutions in `chars` read one level down, as in the body of a here-document
/// with an unquoted delimiter (quotes are plain characters there).
pub(super) fn substitutions(chars: &[char], depth: usize, line: &mut CommandLine) {
    let mut scratch = Building::new();
    let mut pos = 0;
    while let Some(&c) = chars.get(pos) {
        match c {
            '\\' => pos += 2,
            '$' => dollar(chars, &mut pos, &mut scratch, true, depth, line),
            '`' => {
                pos += 1;
                backquoted(chars, &mut pos, depth, line);
            }
            _ => pos += 1,
        }
    }
}

/// The rest of a `"..."` string, from after its opening quote.
fn double_quoted(
    chars: &[char],
    pos: &mut usize,
    b: &mut Building,
    depth: usize,
    line: &mut CommandLine,
) {
    while let Some(&c) = chars.get(*pos) {
        match c {
            '"' => {
                *pos += 1;
                return;
            }
            '\\' => {
                match chars.get(*pos + 1) {
                    Some('\n') => {}
                    Some(&n @ ('$' | '`' | '"' | '\\')) => b.word.text.push(n),
                    Some(&n) => {
                        b.word.text.push('\\');
                        b.word.text.push(n);
                    }
                    None => b.word.text.push('\\'),
                }
                *pos += 2;
            }
            '$' => dollar(chars, pos, b, true, depth, line),
            '`' => {
                b.expansion(*pos);
                *pos += 1;
                backquoted(chars, pos, depth, line);
            }
            c => {
                b.word.text.push(c);
                *pos += 1;
            }
        }
    }
}

/// A `$` at `*pos`: an expansion (the word becomes unknown, commands inside are read), an
/// ANSI-C string `$'...'` (decoded), or a plain `$`.
fn dollar(
    chars: &[char],
    pos: &mut usize,
    b: &mut Building,
    in_double_quotes: bool,
    depth: usize,
    line: &mut CommandLine,
) {
    let at = *pos;
    *pos += 1;
    match chars.get(at + 1) {
        Some('(') => {
            b.expansion(at);
            *pos += 1;
            // `$((...))` is arithmetic, but may hold command substitutions: read it the same way.
            let arithmetic = chars.get(at + 2) == Some(&'(');
            if arithmetic {
                *pos += 1;
            }
            nested(chars, pos, Some(')'), depth, line);
            if arithmetic && chars.get(*pos) == Some(&')') {
                *pos += 1;
            }
        }
        Some('{') => {
            b.expansion(at);
            *pos += 1;
            if depth < MAX_DEPTH {
                parameter(chars, pos, depth + 1, line);
            } else {
                line.unknown_programs
                    .push("expansions nested too deep".to_string());
                skip_to_close(chars, pos, '{', '}');
            }
        }
        Some(&c) if c == '_' || c.is_ascii_alphabetic() => {
            b.expansion(at);
            while chars
                .get(*pos)
                .is_some_and(|&c| c == '_' || c.is_ascii_alphanumeric())
            {
                *pos += 1;
            }
        }
        Some(&c) if c.is_ascii_digit() || "@*#?$!-".contains(c) => {
            b.expansion(at);
            *pos += 1;
        }
        Some('\'') if !in_double_quotes => {
            b.quoted(at);
            *pos += 1;
            ansi_c(chars, pos, &mut b.word.text);
        }
        Some('"') if !in_double_quotes => {
            b.quoted(at);
            *pos += 1;
            double_quoted(chars, pos, b, depth, line);
        }
        _ => b.push('$', at),
    }
}

/// The rest of `${...}`: only the commands it may run matter (`${x:-$(rm ...)}`).
fn parameter(chars: &[char], pos: &mut usize, depth: usize, line: &mut CommandLine) {
    let mut scratch = Building::new();
    let mut open = 1usize;
    while let Some(&c) = chars.get(*pos) {
        match c {
            '}' => {
                *pos += 1;
                open -= 1;
                if open == 0 {
                    // `${x@P}` expands the value as a prompt: its `$(...)` run, like `eval`.
                    if chars[..*pos - 1].ends_with(&['@', 'P']) {
                        line.unknown_programs.push("a prompt expansion".to_string());
                    }
                    return;
                }
            }
            '{' => {
                open += 1;
                *pos += 1;
            }
            '$' => dollar(chars, pos, &mut scratch, true, depth, line),
            '`' => {
                *pos += 1;
                backquoted(chars, pos, depth, line);
            }
            '"' => {
                *pos += 1;
                double_quoted(chars, pos, &mut scratch, depth, line);
            }
            '\\' => *pos += 2,
            _ => *pos += 1,
        }
    }
}

/// Commands up to the `close` that ends them, one level down; past [`MAX_DEPTH`] they are
/// skipped and the line has an unknown program.
fn nested(
    chars: &[char],
    pos: &mut usize,
    close: Option<char>,
    depth: usize,
    line: &mut CommandLine,
) {
    if depth < MAX_DEPTH {
        read_list(chars, pos, close, depth + 1, line);
        return;
    }
    line.unknown_programs.push(NESTED_TOO_DEEP.to_string());
    if let Some(close) = close {
        skip_to_close(chars, pos, '(', close);
    }
}

/// Past the `close` that matches an `open` already read (nesting counted, quotes not).
fn skip_to_close(chars: &[char], pos: &mut usize, open: char, close: char) {
    let mut level = 1usize;
    while let Some(&c) = chars.get(*pos) {
        *pos += 1;
        if c == open {
            level += 1;
        } else if c == close {
            level -= 1;
            if level == 0 {
                return;
            }
        }
    }
}

/// The rest of a backquoted command, from after its opening backquote: its text (with `` \` ``
/// and `\\` unescaped) read as a command line one level down.
fn backquoted(chars: &[char], pos: &mut usize, depth: usize, line: &mut CommandLine) {
    let mut inner = Vec::new();
    while let Some(&c) = chars.get(*pos) {
        *pos += 1;
        match c {
            '`' => break,
            '\\' if matches!(chars.get(*pos), Some('`' | '\\' | '$')) => {
                inner.push(chars[*pos]);
                *pos += 1;
            }
            c => inner.push(c),
        }
    }
    nested(&inner, &mut 0, None, depth, line);
}

/// The rest of a `$'...'` string, from after its opening quote, with bash's escapes decoded
/// (`$'\x72m'` is `rm`).
fn ansi_c(chars: &[char], pos: &mut usize, out: &mut String) {
    while let Some(&c) = chars.get(*pos) {
        *pos += 1;
        match c {
            '\'' => return,
            '\\' => {
                let Some(&e) = chars.get(*pos) else {
                    out.push('\\');
                    return;
                };
                *pos += 1;
                let simple = match e {
                    'a' => Some('\u{7}'),
                    'b' => Some('\u{8}'),
                    'e' | 'E' => Some('\u{1b}'),
                    'f' => Some('\u{c}'),
                    'n' => Some('\n'),
                    'r' => Some('\r'),
                    't' => Some('\t'),
                    'v' => Some('\u{b}'),
                    '\\' | '\'' | '"' | '?' => Some(e),
                    _ => None,
                };
                if let Some(s) = simple {
                    out.push(s);
                    continue;
                }
                let (radix, max) = match e {
                    '0'..='7' => {
                        *pos -= 1;
                        (8, 3)
                    }
                    'x' => (16, 2),
                    'u' => (16, 4),
                    'U' => (16, 8),
                    'c' => {
                        // Control character: the low five bits of the next one.
                        if let Some(&n) = chars.get(*pos) {
                            *pos += 1;
                            out.push(char::from((n as u32 & 0x1f) as u8));
                        }
                        continue;
                    }
                    _ => {
                        out.push('\\');
                        out.push(e);
                        continue;
                    }
                };
                let mut value = 0u32;
                let mut digits = 0;
                while digits < max {
                    let Some(d) = chars.get(*pos).and_then(|c| c.to_digit(radix)) else {
                        break;
                    };
                    value = value * radix + d;
                    digits += 1;
                    *pos += 1;
                }
                if digits == 0 {
                    out.push('\\');
                    out.push(e);
                } else if radix == 8 || e == 'x' {
                    // A byte: bash writes it as is; as text, its Latin-1 character.
                    out.push(char::from((value & 0xff) as u8));
                } else {
                    out.push(char::from_u32(value).unwrap_or('\u{fffd}'));
                }
            }
            c => out.push(c),
        }
    }
}
