//! Here-documents for [`super::read_command`]: the lines after `<<WORD` up to the line `WORD` are
//! the command's input, not commands (a quote in them opens nothing). With an unquoted `WORD` the
//! shell expands them as in double quotes, so the commands of their `$(...)` and backquotes run.

use super::lex_impl::substitutions;
use super::{push_plain_words, CommandLine, Token};
use alloc::string::ToString;
use alloc::vec::Vec;

/// Reads the bodies of `heredocs` (the token index of each delimiter word, and whether it was
/// `<<-`, which strips leading tabs) from `chars[*pos..]`, the start of the line after the
/// command, and moves `pos` past them.
pub(super) fn here_documents(
    chars: &[char],
    pos: &mut usize,
    tokens: &[Token],
    heredocs: &mut Vec<(usize, bool)>,
    depth: usize,
    line: &mut CommandLine,
) {
    for (index, strip) in core::mem::take(heredocs) {
        let Some(Token::Word(delimiter)) = tokens.get(index) else {
            continue;
        };
        if delimiter.unknown && delimiter.raw.contains(['$', '`']) {
            // The shell ends the body at the delimiter as written, which this reader does not
            // keep: where the body ends, and so which lines are commands, is not known.
            line.unknown_programs
                .push("a here-document delimiter with an expansion".to_string());
            return;
        }
        let mut body = Vec::new();
        // With an unquoted delimiter the shell joins a line ending in `\` to the next before it
        // looks for the delimiter (`EO\` + `F` ends the body): the body ends at the first line
        // that is the delimiter read either way, never later than the shell's.
        let mut joined: Option<Vec<char>> = None;
        let is_delimiter = |text: &mut dyn Iterator<Item = char>| text.eq(delimiter.text.chars());
        while *pos < chars.len() {
            let end = chars[*pos..]
                .iter()
                .position(|&c| c == '\n')
                .map_or(chars.len(), |n| *pos + n);
            let raw = &chars[*pos..end];
            let mut start = *pos;
            while strip && chars.get(start) == Some(&'\t') && start < end {
                start += 1;
            }
            *pos = end.saturating_add(1).min(chars.len());
            let text = &chars[start..end];
            let ends = is_delimiter(&mut text.iter().copied())
                || joined.as_ref().is_some_and(|j| {
                    is_delimiter(&mut j.iter().chain(raw).copied())
                        || is_delimiter(&mut j.iter().chain(text).copied())
                });
            if ends {
                break;
            }
            body.extend_from_slice(text);
            body.push('\n');
            let continued = text.iter().rev().take_while(|&&c| c == '\\').count() % 2 == 1;
            if continued && !delimiter.quoted {
                let mut j = joined.take().unwrap_or_default();
                j.extend_from_slice(&text[..text.len() - 1]);
                joined = Some(j);
            } else {
                joined = None;
            }
        }
        let text: alloc::string::String = body.iter().collect();
        push_plain_words(&mut line.words, &text);
        if !delimiter.quoted {
            substitutions(&body, depth, line);
        }
    }
}
