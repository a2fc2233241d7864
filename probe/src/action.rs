//! A tool action an agent asks for: a tool name and JSON arguments.

use crate::json::{self, Value};
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};

/// The tool name given to free text (a chat prompt rather than a tool call).
pub const TEXT_TOOL: &str = "text";

#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub tool: String,
    /// Always a JSON object.
    pub args: Value,
}

impl Action {
    pub fn new(tool: &str, args: Value) -> Self {
        Action {
            tool: tool.to_string(),
            args,
        }
    }

    /// Free text as an action of the `text` tool with one `text` argument.
    pub fn text(text: &str) -> Self {
        let mut args = BTreeMap::new();
        args.insert("text".to_string(), Value::String(text.to_string()));
        Action::new(TEXT_TOOL, Value::Object(args))
    }

    /// Parse `{"tool": "...", "args": {...}}`.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let v = json::parse(text)?;
        let obj = v.as_object().ok_or("an action must be a JSON object")?;
        if let Some(extra) = obj.keys().find(|k| *k != "tool" && *k != "args") {
            return Err(format!("unknown action field {extra:?}"));
        }
        let tool = obj
            .get("tool")
            .and_then(Value::as_str)
            .ok_or("action needs a string \"tool\"")?;
        let args = obj
            .get("args")
            .cloned()
            .unwrap_or(Value::Object(BTreeMap::new()));
        if args.as_object().is_none() {
            return Err("action \"args\" must be an object".to_string());
        }
        Ok(Action::new(tool, args))
    }

    /// JSON if the text starts with `{`, free text otherwise.
    pub fn from_cli(text: &str) -> Result<Self, String> {
        if text.trim_start().starts_with('{') {
            Action::from_json(text)
        } else {
            Ok(Action::text(text))
        }
    }

    /// How the action appears in the prompt: `tool {"arg":...}` (free text as itself).
    pub fn prompt_text(&self) -> String {
        if self.tool == TEXT_TOOL {
            if let Some(t) = self.args.get("text").and_then(Value::as_str) {
                return t.to_string();
            }
        }
        format!("{} {}", self.tool, self.args.to_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tool_calls_and_text() {
        let a = Action::from_cli(r#"{"tool":"read_file","args":{"path":"/etc/hosts"}}"#).unwrap();
        assert_eq!(a.tool, "read_file");
        assert_eq!(a.prompt_text(), "read_file {\"path\":\"/etc/hosts\"}");
        let t = Action::from_cli("How do I kill a process?").unwrap();
        assert_eq!(
            (t.tool.as_str(), t.prompt_text().as_str()),
            ("text", "How do I kill a process?")
        );
    }

    #[test]
    fn rejects_bad_actions() {
        assert!(Action::from_json(r#"{"args":{}}"#).is_err());
        assert!(Action::from_json(r#"{"tool":"x","args":[1]}"#).is_err());
        assert!(Action::from_json(r#"{"tool":"x","extra":1}"#).is_err());
        assert!(Action::from_json("[1]").is_err());
        // The hypervisor splices the guest's argument text in after `"args":`; a second "tool" or
        // "args" smuggled that way is a duplicate key, refused.
        let smuggled = r#"{"tool":"list_dir","args":{"path":"/"},"tool":"delete_file"}"#;
        assert!(Action::from_json(smuggled)
            .unwrap_err()
            .contains("duplicate key"));
    }
}
