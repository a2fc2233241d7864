//! Hand-rolled option parsing: `--name VALUE` options plus positional arguments.

/// Parsed command-line arguments.
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
            .rev()
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
