//! Hand-rolled option parsing: `--name VALUE` options plus positional arguments.

/// Parsed command-line arguments.
#[derive(Debug)]
pub struct Args {
    options: Vec<(String, String)>,
    pub positional: Vec<String>,
}

impl Args {
    /// Splits `args`; `with_value` lists the options that take a value (all others are refused).
    pub fn parse(args: &[String], with_value: &[&str]) -> Result<Args, String> {
        let mut options = Vec::new();
        let mut positional = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if a == "--" {
                positional.extend(it.by_ref().cloned());
                break;
            }
            if a.starts_with('-') && a.len() > 1 && a.parse::<f64>().is_err() {
                if !with_value.contains(&a.as_str()) {
                    return Err(format!("unknown option '{a}'"));
                }
                let v = it
                    .next()
                    .ok_or_else(|| format!("option '{a}' needs a value"))?;
                // Given twice it would be ambiguous (which --final-hash was meant?): refused.
                if options.iter().any(|(k, _)| k == a) {
                    return Err(format!("option '{a}' given twice"));
                }
                options.push((a.clone(), v.clone()));
            } else {
                positional.push(a.clone());
            }
        }
        Ok(Args {
            options,
            positional,
        })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn require(&self, name: &str) -> Result<&str, String> {
        self.get(name).ok_or_else(|| format!("missing {name}"))
    }

    /// A number option, or `default` when absent.
    pub fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("{name}: '{v}' is not a valid number")),
        }
    }

    /// The positional arguments joined by spaces (the prompt text).
    pub fn text(&self) -> String {
        self.positional.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> Result<Args, String> {
        let args: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        Args::parse(&args, &["--final-hash", "--model"])
    }

    #[test]
    fn options_positionals_and_refusals() {
        let a = parse(&["audit.log", "--final-hash", "ab", "-0.5"]).unwrap();
        assert_eq!(a.get("--final-hash"), Some("ab"));
        assert_eq!(a.positional, ["audit.log", "-0.5"]);
        assert!(parse(&["--nope", "x"])
            .unwrap_err()
            .contains("unknown option"));
        assert!(parse(&["--model"]).unwrap_err().contains("needs a value"));
        let twice = parse(&["--final-hash", "aa", "x", "--final-hash", "bb"]);
        assert_eq!(
            twice.err().as_deref(),
            Some("option '--final-hash' given twice")
        );
    }
}
