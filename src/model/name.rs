//! Namespace and queue names: `[A-Za-z0-9._-]{1,80}`.
//!
//! The alphabet keeps names safe inside store keys (the engine separates key parts
//! with `/`) and in URLs without escaping. `.` and `..` are refused: HTTP clients
//! resolve them as path segments (`/v1/queues/..` is sent as `/v1/`), so such a
//! queue could be created by some clients and never reached by others.

use std::fmt;

/// A validated namespace, queue or exchange name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("name is empty")]
    Empty,
    /// The name is longer than [`Name::MAX_LEN`].
    #[error("name is {0} bytes long; the limit is 80")]
    TooLong(usize),
    /// The name holds a character outside `[A-Za-z0-9._-]`.
    #[error("name contains {0:?}; only A-Z, a-z, 0-9, '.', '_' and '-' are allowed")]
    BadChar(char),
    /// The name is `.` or `..`.
    #[error("name {0:?} is a relative path segment, which URLs cannot carry")]
    Dots(&'static str),
}

impl Name {
    /// Longest name in bytes.
    pub const MAX_LEN: usize = 80;

    /// Validates `s` as a name.
    pub fn new(s: &str) -> Result<Self, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || "._-".contains(*c))) {
            return Err(NameError::BadChar(c));
        }
        if s.len() > Self::MAX_LEN {
            return Err(NameError::TooLong(s.len()));
        }
        if let Some(dots) = [".", ".."].into_iter().find(|d| *d == s) {
            return Err(NameError::Dots(dots));
        }
        Ok(Self(s.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_alphabet_and_refuses_the_rest() {
        assert!(Name::new("orders.v2_eu-1").is_ok());
        assert_eq!(Name::new(""), Err(NameError::Empty));
        assert_eq!(Name::new(&"a".repeat(81)), Err(NameError::TooLong(81)));
        assert!(Name::new(&"a".repeat(80)).is_ok());
        assert_eq!(Name::new("a/b"), Err(NameError::BadChar('/')));
        assert_eq!(Name::new("é"), Err(NameError::BadChar('é')));
        assert_eq!(Name::new(".."), Err(NameError::Dots("..")));
        assert_eq!(Name::new("."), Err(NameError::Dots(".")));
        assert!(Name::new("...").is_ok());
    }
}
