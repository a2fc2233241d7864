//! The schema layer: a tool call's arguments checked against the tool's declared schema.

use crate::json::Value;
use crate::policy::{ArgSpec, ArgType, ToolSpec};
use alloc::format;
use alloc::string::String;

/// Check the arguments against the tool's declared schema.
pub fn validate_args(spec: &ToolSpec, args: &Value, max_bytes: usize) -> Result<(), String> {
    let obj = args.as_object().ok_or("arguments must be an object")?;
    let size = json_len(args);
    if size > max_bytes {
        return Err(format!(
            "arguments are {size} bytes, the limit is {max_bytes}"
        ));
    }
    for a in &spec.args {
        match obj.get(&a.name) {
            None if a.required => return Err(format!("missing required argument {:?}", a.name)),
            None => {}
            Some(v) => check_type(a, v)?,
        }
    }
    if !spec.allow_extra_args {
        if let Some(k) = obj
            .keys()
            .find(|k| !spec.args.iter().any(|a| &a.name == *k))
        {
            return Err(format!("undeclared argument {:?}", shown_key(k)));
        }
    }
    Ok(())
}

/// The longest part of an argument name a reason quotes: reasons go into audit records and onto
/// the console, and a name is the agent's text (up to the whole argument limit).
const SHOWN_KEY_CHARS: usize = 64;

fn shown_key(k: &str) -> String {
    match k.char_indices().nth(SHOWN_KEY_CHARS) {
        Some((cut, _)) => format!("{}... ({} bytes)", &k[..cut], k.len()),
        None => k.into(),
    }
}

/// Length of the canonical JSON text of `v`, without building it.
fn json_len(v: &Value) -> usize {
    match v {
        Value::String(s) => string_len(s),
        Value::Array(a) => 2 + a.iter().map(json_len).sum::<usize>() + a.len().saturating_sub(1),
        Value::Object(o) => {
            2 + o
                .iter()
                .map(|(k, x)| string_len(k) + 1 + json_len(x))
                .sum::<usize>()
                + o.len().saturating_sub(1)
        }
        other => other.to_json().len(),
    }
}

fn string_len(s: &str) -> usize {
    2 + s
        .chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' => 2,
            c if crate::json::escaped(c) => 6,
            c => c.len_utf8(),
        })
        .sum::<usize>()
}

fn check_type(a: &ArgSpec, v: &Value) -> Result<(), String> {
    let wrong = || {
        format!(
            "argument {:?} must be {:?}, found {}",
            a.name,
            a.ty,
            v.type_name()
        )
    };
    let too_long = |n: usize| {
        format!(
            "argument {:?} is {n} bytes, the limit is {}",
            a.name, a.max_len
        )
    };
    match (a.ty, v) {
        (ArgType::String, Value::String(s)) if s.len() > a.max_len => Err(too_long(s.len())),
        (ArgType::String, Value::String(_)) => Ok(()),
        (ArgType::Integer, Value::Number(n)) if n.abs() < 9.0e15 && *n == (*n as i64) as f64 => {
            Ok(())
        }
        (ArgType::Number, Value::Number(_)) | (ArgType::Boolean, Value::Bool(_)) => Ok(()),
        (ArgType::StringArray, Value::Array(items)) => {
            for item in items {
                match item {
                    Value::String(s) if s.len() > a.max_len => return Err(too_long(s.len())),
                    Value::String(_) => {}
                    _ => return Err(format!("argument {:?} must hold only strings", a.name)),
                }
            }
            Ok(())
        }
        _ => Err(wrong()),
    }
}

#[cfg(test)]
#[test]
fn json_len_matches_to_json() {
    let v = crate::json::parse(r#"{"a":["x\"y\n\u0001é",1.5,true,null,{}],"b":{"c":-3}}"#).unwrap();
    assert_eq!(json_len(&v), v.to_json().len());
}

#[cfg(test)]
#[test]
fn an_undeclared_argument_name_is_quoted_cut() {
    let spec = ToolSpec {
        description: String::new(),
        args: alloc::vec::Vec::new(),
        allow_extra_args: false,
        max_args_bytes: 1 << 20,
        alpha: None,
        threshold: None,
        rate: None,
    };
    let long = "k".repeat(16 * 1024);
    let args = crate::json::object([(long.as_str(), Value::Null)]);
    let why = validate_args(&spec, &args, 1 << 20).unwrap_err();
    assert!(why.len() < 120, "{} bytes: {why}", why.len());
    assert!(why.contains("(16384 bytes)"), "{why}");
    let short = crate::json::object([("é", Value::Null)]);
    assert_eq!(
        validate_args(&spec, &short, 100).unwrap_err(),
        "undeclared argument \"é\""
    );
}
