//! A minimal command-line reader shared by both tools: `--name value`, `--name=value`, flags,
//! and repeatable options. No parser crate, to keep the crate's dependencies to the pinned few.

use std::collections::HashMap;

/// Parsed arguments: option values by name (repeatable ones keep every value) and flags.
#[derive(Debug, Default)]
pub struct Args {
    values: HashMap<String, Vec<String>>,
    flags: Vec<String>,
}

impl Args {
    /// Parses `argv` (without the program name). `with_value` lists the options that take a
    /// value (`-H` included); `flags` those that do not. Anything else is an error.
    pub fn parse(argv: &[String], with_value: &[&str], flags: &[&str]) -> Result<Args, String> {
        let mut out = Args::default();
        let mut i = 0;
        while i < argv.len() {
            let arg = &argv[i];
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) if n.starts_with('-') => (n.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            if flags.contains(&name.as_str()) {
                if inline.is_some() {
                    return Err(format!("{name} takes no value"));
                }
                out.flags.push(name);
            } else if with_value.contains(&name.as_str()) {
                let value = match inline {
                    Some(v) => v,
                    None => {
                        i += 1;
                        argv.get(i).cloned().ok_or_else(|| format!("{name} needs a value"))?
                    }
                };
                out.values.entry(name).or_default().push(value);
            } else {
                return Err(format!("unknown argument '{arg}' (see --help)"));
            }
            i += 1;
        }
        Ok(out)
    }

    /// The last value given for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).and_then(|v| v.last()).map(String::as_str)
    }

    /// Every value given for `name`, in order.
    pub fn all(&self, name: &str) -> &[String] {
        self.values.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether the flag `name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }

    /// `name` parsed as `T`, or `default` when absent; a value that does not parse is an error
    /// naming the option.
    pub fn parse_or<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("{name}: cannot read '{v}'")),
        }
    }

    /// `name` parsed as `T` when present.
    pub fn parse_opt<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| format!("{name}: cannot read '{v}'")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn values_flags_and_repeats() {
        let a = Args::parse(
            &argv(&["--rps", "10", "-H", "a: b", "--stream", "-H=c: d", "--port=0"]),
            &["--rps", "-H", "--port"],
            &["--stream"],
        )
        .unwrap();
        assert_eq!(a.parse_or("--rps", 0.0).unwrap(), 10.0);
        assert_eq!(a.all("-H"), ["a: b", "c: d"]);
        assert!(a.flag("--stream"));
        assert_eq!(a.get("--port"), Some("0"));
        assert!(Args::parse(&argv(&["--nope"]), &[], &[]).is_err());
        assert!(Args::parse(&argv(&["--rps"]), &["--rps"], &[]).is_err());
    }
}
