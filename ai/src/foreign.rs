//! Foreign text (model output, provider errors, prompts) made fit for an event.

use serde_json::Value;

use crate::key::ApiKey;

/// A provider's error body as recorded (cut to 1 KiB, key redacted).
pub const ERROR_BODY_BYTES: usize = 1024;

/// A transport failure's description as recorded.
pub const TRANSPORT_DETAIL_BYTES: usize = 1024;

/// The raw text of an answer that could not be used, as recorded.
pub const RAW_ANSWER_BYTES: usize = 16 * 1024;

/// A prompt (system or user) as recorded beside the request.
pub const PROMPT_BYTES: usize = 32 * 1024;

/// How much of a body is read before redaction: enough that the 1 KiB kept is redacted with the
/// context around it, little enough that redaction stays cheap.
const REDACT_WINDOW_BYTES: usize = 16 * 1024;

/// `text` redacted of `key` (when there is one), its NULs replaced and cut to `max_bytes`.
pub fn clean(text: &str, key: Option<&ApiKey>, max_bytes: usize) -> String {
    let window = prefix(text, REDACT_WINDOW_BYTES.max(max_bytes));
    let redacted = match key {
        Some(key) => key.redact(window),
        None => window.to_owned(),
    };
    domain::text::sanitize_foreign(&redacted, max_bytes)
}

/// A prompt as it may be recorded: NULs replaced and cut to [`PROMPT_BYTES`]. (Prompts are sent
/// to the provider as they are; only the recorded copy is cleaned.)
pub fn prompt_for_event(text: &str) -> String {
    domain::text::sanitize_foreign(text, PROMPT_BYTES)
}

/// Every string and key of a model's structured answer with U+0000 replaced by U+FFFD (and the
/// key redacted), so the value can be stored as it is.
pub fn clean_value(value: Value, key: Option<&ApiKey>) -> Value {
    let fix = |s: String| -> String {
        let s = if s.contains('\0') {
            s.replace('\0', &domain::text::NUL_REPLACEMENT.to_string())
        } else {
            s
        };
        match key {
            Some(key) => key.redact(&s),
            None => s,
        }
    };
    match value {
        Value::String(s) => Value::String(fix(s)),
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|v| clean_value(v, key)).collect())
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (fix(k), clean_value(v, key)))
                .collect(),
        ),
        other => other,
    }
}

/// At most `max_bytes` of `text`, cut at a character boundary.
fn prefix(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut cut = max_bytes;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text[..cut]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn foreign_text_loses_nuls_and_is_cut() {
        assert_eq!(clean("a\u{0}b", None, 100), "a\u{FFFD}b");
        assert!(clean(&"x".repeat(5000), None, ERROR_BODY_BYTES).len() <= ERROR_BODY_BYTES);
    }

    #[test]
    fn a_structured_answer_loses_nuls_in_strings_and_keys() {
        let v = clean_value(json!({"a\u{0}": ["x\u{0}", 1]}), None);
        assert_eq!(v, json!({"a\u{FFFD}": ["x\u{FFFD}", 1]}));
    }

    #[test]
    fn a_key_the_model_echoes_is_redacted_from_text_and_structured_answers() {
        let keys = crate::KeySource::fixed([("BACKFORGE_AI_KEY_T", "sk-abcdefghijklmnop")]);
        let key = keys.read("BACKFORGE_AI_KEY_T").unwrap();
        assert_eq!(
            clean("k=sk-abcdefghijklmnop\u{0}", Some(&key), 100),
            "k=[redacted]\u{FFFD}"
        );
        let v = clean_value(
            json!({"sk-abcdefghijklmnop": ["tail ghijklmnop", 1]}),
            Some(&key),
        );
        assert_eq!(v, json!({"[redacted]": ["tail [redacted]", 1]}));
    }
}
