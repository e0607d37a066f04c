//! Provider keys: the variable-name rule, the key read at call time, and its redaction from text.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::error::AiError;

pub use domain::ai::config::{BOOTSTRAP_KEY_ENV, KEY_ENV_PREFIX, valid_key_env};

/// The shortest piece of a key that is redacted wherever it appears.
pub const REDACTED_PIECE_CHARS: usize = 8;

/// What stands where a key or a piece of it was.
pub const REDACTED: &str = "[redacted]";

/// A provider key, read from its variable when a call is made. Neither `Debug` nor anything else
/// prints it; only the request's header builder reads it.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// The key held by the variable `env` now; a missing, empty or non-Unicode variable is
    /// [`AiError::MissingKey`], which names the variable and nothing else.
    pub fn from_env(env: &str) -> Result<Self, AiError> {
        match std::env::var(env) {
            Ok(value) if !value.trim().is_empty() => Ok(Self(value.trim().to_owned())),
            _ => Err(AiError::MissingKey {
                env: env.to_owned(),
            }),
        }
    }

    /// The key as it goes into a header. Crate-private: nothing outside may read it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with this key and every piece of it of 8 or more characters replaced.
    pub fn redact(&self, text: &str) -> String {
        redact(text, &self.0)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

/// Where keys are read from: the process environment (always, in the product), or a fixed table
/// of variable names and values standing in for it in tests (the workspace forbids `unsafe`, and
/// `std::env::set_var` is unsafe). Its `Debug` prints names only.
#[derive(Clone, Default)]
pub enum KeySource {
    #[default]
    Environment,
    Fixed(Arc<HashMap<String, String>>),
}

impl KeySource {
    /// A table of variable names and values, read instead of the environment.
    pub fn fixed<I, N, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (N, V)>,
        N: Into<String>,
        V: Into<String>,
    {
        Self::Fixed(Arc::new(
            pairs
                .into_iter()
                .map(|(n, v)| (n.into(), v.into()))
                .collect(),
        ))
    }

    /// The key the variable `env` holds now ([`AiError::MissingKey`] naming it if none).
    pub fn read(&self, env: &str) -> Result<ApiKey, AiError> {
        match self {
            Self::Environment => ApiKey::from_env(env),
            Self::Fixed(table) => match table.get(env) {
                Some(value) if !value.trim().is_empty() => Ok(ApiKey(value.trim().to_owned())),
                _ => Err(AiError::MissingKey {
                    env: env.to_owned(),
                }),
            },
        }
    }
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Environment => f.write_str("KeySource::Environment"),
            Self::Fixed(table) => f
                .debug_tuple("KeySource::Fixed")
                .field(&table.keys().collect::<Vec<_>>())
                .finish(),
        }
    }
}

/// `text` with `secret` and every piece of it of at least [`REDACTED_PIECE_CHARS`] characters
/// replaced by [`REDACTED`] (a shorter secret only where it appears whole). A longer piece is a
/// run of overlapping 8-character windows, so marking every occurrence of every window marks it.
pub fn redact(text: &str, secret: &str) -> String {
    if secret.is_empty() || text.is_empty() {
        return text.to_owned();
    }
    let secret_chars: Vec<(usize, char)> = secret.char_indices().collect();
    let mut windows: Vec<&str> = Vec::new();
    if secret_chars.len() < REDACTED_PIECE_CHARS {
        windows.push(secret);
    } else {
        for start in 0..=(secret_chars.len() - REDACTED_PIECE_CHARS) {
            let from = secret_chars[start].0;
            let to = secret_chars
                .get(start + REDACTED_PIECE_CHARS)
                .map_or(secret.len(), |(i, _)| *i);
            windows.push(&secret[from..to]);
        }
        windows.sort_unstable();
        windows.dedup();
    }
    let mut marked = vec![false; text.len()];
    let mut any = false;
    for window in windows {
        let mut from = 0;
        while let Some(found) = text[from..].find(window) {
            let at = from + found;
            for m in &mut marked[at..at + window.len()] {
                *m = true;
            }
            any = true;
            // Overlapping occurrences: step one character on.
            from = at + text[at..].chars().next().map_or(1, char::len_utf8);
        }
    }
    if !any {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut in_run = false;
    for (i, c) in text.char_indices() {
        if marked[i] {
            if !in_run {
                out.push_str(REDACTED);
                in_run = true;
            }
        } else {
            in_run = false;
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_and_its_long_pieces_are_redacted_and_short_ones_are_not() {
        let key = "sk-abcdefghijklmnop";
        assert_eq!(redact("key sk-abcdefghijklmnop!", key), "key [redacted]!");
        assert_eq!(redact("tail ghijklmnop", key), "tail [redacted]");
        assert_eq!(redact("piece cdefghij end", key), "piece [redacted] end");
        assert_eq!(redact("short cdefghi", key), "short cdefghi");
        assert_eq!(
            redact("twice abcdefgh abcdefgh", key),
            "twice [redacted] [redacted]"
        );
        assert_eq!(
            redact("a short one: abc!", "abc"),
            "a short one: [redacted]!"
        );
    }

    #[test]
    fn a_key_never_prints() {
        let key = ApiKey("sk-secret-value".into());
        assert_eq!(format!("{key:?}"), "ApiKey([redacted])");
    }
}
