//! The audit log: one JSON object per line, each record hash-chained with blake3:
//! `hash = blake3(prev_hash || canonical bytes)`, where the canonical bytes are the line as written
//! (never re-serialised) up to its last `,"hash":"`. [`verify`] names the first bad record (edited,
//! removed, reordered, inserted) and, given the expected final hash, a truncated log.

use crate::action::Action;
use crate::json::{self, write_number, write_string, Value};
use crate::pipeline::Decision;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// What decided: the blake3 digests of the model's file and of the policy's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Provenance {
    pub model: [u8; 32],
    pub policy: [u8; 32],
}

/// Arguments whose JSON is longer than this are logged as their blake3 digest and size.
pub const DEFAULT_ARGS_DIGEST_ABOVE: usize = 4096;
const HASH_TAG: &str = ",\"hash\":\"";

/// Appends records; keeps the sequence number and the last hash.
#[derive(Debug, Clone)]
pub struct AuditChain {
    next_seq: u64,
    head: [u8; 32],
    args_digest_above: usize,
}

impl Default for AuditChain {
    fn default() -> Self {
        Self::new()
    }
}

impl AuditChain {
    pub fn new() -> Self {
        AuditChain {
            next_seq: 0,
            head: [0; 32],
            args_digest_above: DEFAULT_ARGS_DIGEST_ABOVE,
        }
    }
    /// Continue an existing log of `records` records whose last hash is `head` (see [`verify`]).
    pub fn resume(records: u64, head: [u8; 32]) -> Self {
        AuditChain {
            next_seq: records,
            head,
            args_digest_above: DEFAULT_ARGS_DIGEST_ABOVE,
        }
    }
    pub fn with_args_digest_above(mut self, bytes: usize) -> Self {
        self.args_digest_above = bytes;
        self
    }
    /// The hash of the last record (all zeros before the first); keep it apart from the log to
    /// detect truncation.
    pub fn head(&self) -> [u8; 32] {
        self.head
    }
    pub fn len(&self) -> u64 {
        self.next_seq
    }
    pub fn is_empty(&self) -> bool {
        self.next_seq == 0
    }

    /// Build the record of one decision and return its line (ending in `\n`). `provenance` names
    /// the model and the policy that decided.
    pub fn record(
        &mut self,
        time_ms: u64,
        agent: &str,
        action: &Action,
        decision: &Decision,
        provenance: &Provenance,
    ) -> String {
        let mut s = String::with_capacity(512);
        s.push_str("{\"seq\":");
        write_number(&mut s, self.next_seq as f64);
        s.push_str(",\"time\":");
        s.push_str(&format!("{time_ms}"));
        s.push_str(",\"agent\":");
        write_string(&mut s, agent);
        s.push_str(",\"tool\":");
        write_string(&mut s, &action.tool);
        let args = action.args.to_json();
        if args.len() > self.args_digest_above {
            s.push_str(",\"args_digest\":\"");
            s.push_str(&hex(blake3::hash(args.as_bytes()).as_bytes()));
            s.push_str(&format!("\",\"args_bytes\":{}", args.len()));
        } else {
            s.push_str(",\"args\":");
            s.push_str(&args);
        }
        s.push_str(",\"layers\":[");
        for (i, l) in decision.layers.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str("{\"layer\":\"");
            s.push_str(l.layer.name());
            s.push_str("\",\"status\":\"");
            s.push_str(l.status.name());
            s.push_str("\",\"reason\":");
            write_string(&mut s, &l.reason);
            s.push('}');
        }
        s.push_str("],\"probs\":");
        match &decision.score {
            Some(sc) => {
                s.push_str("{\"raw\":[");
                push_probability(&mut s, Some(sc.raw[0]));
                s.push(',');
                push_probability(&mut s, Some(sc.raw[1]));
                s.push_str("],\"calibrated\":[");
                push_probability(&mut s, Some(sc.calibrated[0]));
                s.push(',');
                push_probability(&mut s, Some(sc.calibrated[1]));
                s.push_str("],\"alpha\":");
                push_probability(&mut s, Some(sc.alpha));
                s.push('}');
            }
            None => s.push_str("null"),
        }
        s.push_str(",\"p_dangerous\":");
        push_probability(&mut s, decision.p_dangerous);
        if let Some(p) = decision.p_injection {
            s.push_str(",\"p_injection\":");
            push_probability(&mut s, Some(p));
        }
        s.push_str(",\"verdict\":\"");
        s.push_str(decision.verdict.name());
        s.push_str("\",\"layer\":\"");
        s.push_str(decision.layer.name());
        s.push_str("\",\"reason\":");
        write_string(&mut s, &decision.reason);
        s.push_str(",\"model\":\"");
        s.push_str(&hex(&provenance.model));
        s.push_str("\",\"policy\":\"");
        s.push_str(&hex(&provenance.policy));
        s.push_str("\",\"prev\":\"");
        s.push_str(&hex(&self.head));
        s.push('"');
        let hash = chain_hash(&self.head, s.as_bytes());
        s.push_str(HASH_TAG);
        s.push_str(&hex(&hash));
        s.push_str("\"}\n");
        self.head = hash;
        self.next_seq += 1;
        s
    }
}

/// A probability as JSON: `f32`'s own shortest text (what records have always had), `null` for
/// none and for NaN or an infinity, which JSON cannot write (`NaN` would make the record unverifiable).
fn push_probability(s: &mut String, p: Option<f32>) {
    match p {
        Some(p) if p.is_finite() => s.push_str(&format!("{p}")),
        _ => s.push_str("null"),
    }
}

fn chain_hash(prev: &[u8; 32], body: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(prev);
    h.update(body);
    *h.finalize().as_bytes()
}

/// blake3 of some bytes (the model file's digest in the records).
pub fn digest(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

pub fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    let b = text.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        *o = (digit(b[2 * i])? * 16 + digit(b[2 * i + 1])?) as u8;
    }
    Some(out)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub records: u64,
    pub final_hash: [u8; 32],
}

/// The first problem found; `line` is 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditError {
    Malformed {
        line: usize,
        reason: String,
    },
    /// The record's bytes do not hash to its stated hash: a field was edited.
    Edited {
        line: usize,
        seq: u64,
    },
    /// Sequence numbers jump: records `expected..found` are missing.
    Removed {
        line: usize,
        expected_seq: u64,
        found_seq: u64,
    },
    /// A later record appears before an earlier one.
    Reordered {
        line: usize,
        expected_seq: u64,
        found_seq: u64,
    },
    /// A record that is not part of the chain (its successor repeats its number, or its link is wrong).
    Inserted {
        line: usize,
        seq: u64,
    },
    /// No record of the log has the expected final hash: records were cut off after `last_seq`, or
    /// (blake3 being unkeyed) the whole chain was rewritten.
    Truncated {
        records: u64,
        last_seq: Option<u64>,
    },
    /// The expected final hash is that of an earlier record (`None`: of the empty log): records
    /// were appended after it.
    Appended {
        after_seq: Option<u64>,
    },
}

impl fmt::Display for AuditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditError::Malformed { line, reason } => {
                write!(f, "line {line}: malformed record: {reason}")
            }
            AuditError::Edited { line, seq } => {
                write!(f, "line {line}: record {seq} was edited (hash mismatch)")
            }
            AuditError::Removed {
                line,
                expected_seq,
                found_seq,
            } => {
                write!(
                    f,
                    "line {line}: records {expected_seq}..{} were removed (found {found_seq})",
                    found_seq - 1
                )
            }
            AuditError::Reordered {
                line,
                expected_seq,
                found_seq,
            } => {
                write!(
                    f,
                    "line {line}: records reordered (expected {expected_seq}, found {found_seq})"
                )
            }
            AuditError::Inserted { line, seq } => write!(
                f,
                "line {line}: record {seq} was inserted (not in the chain)"
            ),
            AuditError::Truncated { records, last_seq } => {
                write!(f, "the log does not end at the expected final hash: ")?;
                match last_seq {
                    Some(s) => write!(f, "truncated after record {s} ({records} records)")?,
                    None => write!(f, "truncated to {records} records")?,
                }
                write!(f, ", or the whole chain was rewritten")
            }
            AuditError::Appended { after_seq: Some(s) } => {
                write!(f, "records were appended after record {s}")
            }
            AuditError::Appended { after_seq: None } => {
                write!(f, "records were appended to an empty log")
            }
        }
    }
}

struct Parsed<'a> {
    seq: u64,
    prev: [u8; 32],
    hash: [u8; 32],
    body: &'a str,
}

fn parse_line(line: &str, n: usize) -> Result<Parsed<'_>, AuditError> {
    let bad = |reason: &str| AuditError::Malformed {
        line: n,
        reason: reason.to_string(),
    };
    if line.trim().is_empty() {
        return Err(bad("blank line (every line of the log must be a record)"));
    }
    if line.starts_with('\u{feff}') {
        return Err(bad("starts with a byte-order mark (U+FEFF)"));
    }
    let at = line.rfind(HASH_TAG).ok_or_else(|| bad("no hash field"))?;
    let (body, tail) = line.split_at(at);
    let hash_hex = tail[HASH_TAG.len()..]
        .strip_suffix("\"}")
        .ok_or_else(|| bad("hash must be the last field"))?;
    // Exactly as written (lowercase): the hash field is the one part of a line no hash covers.
    let hash = parse_hex32(hash_hex)
        .filter(|_| !hash_hex.bytes().any(|c| c.is_ascii_uppercase()))
        .ok_or_else(|| bad("hash is not 64 lowercase hex digits"))?;
    let v = json::parse(&format!("{body}}}")).map_err(|e| bad(&e))?;
    let seq = v
        .get("seq")
        .and_then(Value::as_f64)
        .filter(|s| *s >= 0.0 && *s < 9.0e15 && *s == (*s as u64) as f64)
        .ok_or_else(|| bad("no seq"))?;
    let prev = v
        .get("prev")
        .and_then(Value::as_str)
        .and_then(parse_hex32)
        .ok_or_else(|| bad("no prev hash"))?;
    Ok(Parsed {
        seq: seq as u64,
        prev,
        hash,
        body,
    })
}

/// The log's lines: split at `\n`, a `\r` before it dropped (serial consoles write CRLF), the
/// last line's `\n` optional. An empty file, or one line end alone (what the emulator harness
/// writes when there are no records), is the empty log; any other blank line is one to refuse.
fn log_lines(text: &str) -> Vec<&str> {
    let text = text.strip_suffix('\n').unwrap_or(text);
    if text.is_empty() || text == "\r" {
        return Vec::new();
    }
    text.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect()
}

/// Check a whole log: every line must be a record (blank lines and other text are refused, never
/// skipped). With `expected_final_hash` (kept apart from the log), truncation is found too;
/// without it a log cut after any record verifies, and only its `final_hash` can tell.
pub fn verify(
    log: &[u8],
    expected_final_hash: Option<[u8; 32]>,
) -> Result<VerifyReport, AuditError> {
    let text = core::str::from_utf8(log).map_err(|e| {
        let (before, _) = log.split_at(e.valid_up_to());
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        AuditError::Malformed {
            line: before.iter().filter(|&&b| b == b'\n').count() + 1,
            reason: format!(
                "not UTF-8 (byte {} of the line)",
                before.len() - line_start + 1
            ),
        }
    })?;
    let lines = log_lines(text);
    let mut head = [0u8; 32];
    let mut seen = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        let p = parse_line(line, n)?;
        if chain_hash(&p.prev, p.body.as_bytes()) != p.hash {
            return Err(AuditError::Edited {
                line: n,
                seq: p.seq,
            });
        }
        let expected = i as u64;
        if p.seq > expected {
            let later = lines[i + 1..]
                .iter()
                .enumerate()
                .any(|(j, l)| parse_line(l, n + 1 + j).is_ok_and(|q| q.seq == expected));
            return Err(if later {
                AuditError::Reordered {
                    line: n,
                    expected_seq: expected,
                    found_seq: p.seq,
                }
            } else {
                AuditError::Removed {
                    line: n,
                    expected_seq: expected,
                    found_seq: p.seq,
                }
            });
        }
        if p.seq < expected {
            // This record repeats a number: the record before it took its place.
            return Err(AuditError::Inserted {
                line: n - 1,
                seq: expected - 1,
            });
        }
        if p.prev != head {
            return Err(AuditError::Inserted {
                line: n,
                seq: p.seq,
            });
        }
        head = p.hash;
        seen.push(p.hash);
    }
    let records = lines.len() as u64;
    if let Some(want) = expected_final_hash {
        if want != head {
            if let Some(k) = seen.iter().position(|h| *h == want) {
                return Err(AuditError::Appended {
                    after_seq: Some(k as u64),
                });
            }
            if want == [0; 32] {
                return Err(AuditError::Appended { after_seq: None });
            }
            return Err(AuditError::Truncated {
                records,
                last_seq: records.checked_sub(1),
            });
        }
    }
    Ok(VerifyReport {
        records,
        final_hash: head,
    })
}

#[cfg(test)]
#[path = "audit_tests.rs"]
mod tests;
