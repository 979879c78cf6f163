//! What every configuration section validates with: [`ConfigError`] (a path and a message),
//! [`err`], serde path rendering, the name and header-name rules, and [`Secret`]. A leaf:
//! it imports no other module of the crate, so the section configs (`auth::config`,
//! `quota::config`, `quota::fleet`, `prompt::config`, ...) depend on it and `config/`, which
//! assembles them, stays the root that nothing imports back.

use std::fmt;

/// A configuration error: the path of the offending value as the operator wrote it
/// (`models["gpt"].provider`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// A [`ConfigError`] at `path`.
pub fn err(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError { path: path.into(), message: message.into() }
}

/// A credential read from the VM environment. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A serde path as the operator reads it, after `prefix`: `models.gpt.targets.0` ->
/// `models["gpt"].targets[0]`. A map key right after one of the `named` fields is quoted.
pub fn render_path(prefix: &str, path: &serde_path_to_error::Path, named: &[&str]) -> String {
    use serde_path_to_error::Segment;
    let mut out = prefix.to_string();
    let mut previous_field: Option<&str> = None;
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => {
                out.push_str(&format!("[{index}]"));
                previous_field = None;
            }
            Segment::Map { key } if previous_field.is_some_and(|f| named.contains(&f)) => {
                out.push_str(&format!("[{key:?}]"));
                previous_field = None;
            }
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
                previous_field = Some(key.as_str());
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// serde_json appends " at line 1 column 42"; the path already says where.
pub fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message.get(..i).unwrap_or(message).to_string(),
        None => message.to_string(),
    }
}

/// Names of models, providers, templates and rules become metric labels and log fields: keep
/// them printable and free of the characters the stats tag convention uses (`;`, `=`).
pub fn check_name(path: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_graphic() && c != ';' && c != '=' && c != '"');
    if ok {
        Ok(())
    } else {
        Err(err(path, format!("{name:?} is not a valid name (1-128 printable ASCII characters, no ';', '=' or '\"')")))
    }
}

/// `name` lower-cased, if it is an HTTP header name (RFC 9110 token characters).
pub fn header_name(path: &str, name: &str) -> Result<String, ConfigError> {
    let name = name.to_ascii_lowercase();
    let ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.!#$%&'*+^`|~".contains(&b));
    if ok {
        Ok(name)
    } else {
        Err(err(path, format!("{name:?} is not a valid HTTP header name")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_break_a_stats_tag_are_refused() {
        assert_eq!(check_name("p", "gpt-4o_mini.v2:latest"), Ok(()));
        for bad in ["", "a;b", "a=b", "a\"b", "a b", "é", &"x".repeat(129)] {
            let e = check_name("models[0]", bad).unwrap_err();
            assert_eq!(e.path, "models[0]");
            assert!(e.message.contains("is not a valid name"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn header_names_are_lower_cased_tokens() {
        assert_eq!(header_name("h", "X-Consumer"), Ok("x-consumer".to_string()));
        assert_eq!(header_name("h", "a b").unwrap_err().to_string(), "h: \"a b\" is not a valid HTTP header name");
        assert!(header_name("h", "").is_err());
    }

    #[test]
    fn errors_print_their_path_and_secrets_never_print() {
        assert_eq!(err("", "empty").to_string(), "empty");
        assert_eq!(err("a.b", "bad").to_string(), "a.b: bad");
        assert_eq!(format!("{:?}", Secret::new("sk-123".to_string())), "Secret(..)");
        assert_eq!(strip_position("expected value at line 1 column 42"), "expected value");
    }
}
