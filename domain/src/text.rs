//! Text that must be safe for every consumer of an event: NUL detection, sizes as serialised, and
//! the sanitising and cutting of foreign text (process output, logs, reports) before it is stored.

use serde::Serialize;
use serde_json::Value;

use crate::error::Pointer;

/// What stands in for a NUL in foreign text: PostgreSQL's `jsonb` and `text` refuse U+0000.
pub const NUL_REPLACEMENT: char = '\u{FFFD}';

/// The length in bytes of `value` serialised as compact JSON, counted without building the text.
pub fn serialized_len<T: Serialize + ?Sized>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        // Serialising a value of this crate cannot fail (string keys only); if it ever did, the
        // value is treated as too large rather than as small.
        Err(_) => usize::MAX,
    }
}

/// The JSON Pointer of the first string (or object key) in `value` that holds U+0000, if any.
pub fn nul_pointer(value: &Value) -> Option<String> {
    fn walk(value: &Value, at: &Pointer) -> Option<Pointer> {
        match value {
            Value::String(s) if s.contains('\0') => Some(at.clone()),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, v)| walk(v, &at.index(i))),
            Value::Object(map) => map.iter().find_map(|(k, v)| {
                if k.contains('\0') {
                    // The pointer goes into problem documents that may be stored (idempotency):
                    // it names the key with the NUL shown as U+FFFD.
                    Some(at.key(&k.replace('\0', &NUL_REPLACEMENT.to_string())))
                } else {
                    let here = at.key(k);
                    walk(v, &here)
                }
            }),
            _ => None,
        }
    }
    walk(value, &Pointer::root()).map(|p| p.to_string())
}

/// Whether JSON text holds an escaped U+0000 (`\u0000`), told apart from the same six characters
/// written as text (`\\u0000`) by the parity of the backslashes before it. (A raw NUL byte is not
/// valid JSON at all.) Linear in the text; the pointer is found with [`nul_pointer`] only then.
pub fn holds_nul_escape(json: &str) -> bool {
    let bytes = json.as_bytes();
    let mut from = 0;
    while let Some(found) = json[from..].find("\\u0000") {
        let at = from + found;
        let backslashes = bytes[..=at]
            .iter()
            .rev()
            .take_while(|b| **b == b'\\')
            .count();
        if backslashes % 2 == 1 {
            return true;
        }
        from = at + 1;
    }
    false
}

/// Foreign text made storable: every U+0000 becomes U+FFFD, and text over `max_bytes` is cut at a
/// character boundary with a note of how much was left out.
pub fn sanitize_foreign(text: &str, max_bytes: usize) -> String {
    let clean = if text.contains('\0') {
        text.replace('\0', &NUL_REPLACEMENT.to_string())
    } else {
        text.to_owned()
    };
    if clean.len() <= max_bytes {
        return clean;
    }
    let note_room = 48.min(max_bytes);
    let mut cut = max_bytes - note_room;
    while !clean.is_char_boundary(cut) {
        cut -= 1;
    }
    let note = format!("\n… [{} bytes cut]", clean.len() - cut);
    let mut out = String::with_capacity(cut + note.len());
    out.push_str(&clean[..cut]);
    if out.len() + note.len() <= max_bytes {
        out.push_str(&note);
    }
    out
}

/// At most `max_items` of `items`, and how many were left out.
pub fn cap_list<T>(mut items: Vec<T>, max_items: usize) -> (Vec<T>, usize) {
    let left_out = items.len().saturating_sub(max_items);
    items.truncate(max_items);
    (items, left_out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_counted_length_is_the_serialised_length() {
        let v = json!({"a": "x\u{0}y\"é", "b": [1, 2.5, null, true], "c": {}});
        assert_eq!(serialized_len(&v), serde_json::to_string(&v).unwrap().len());
    }

    #[test]
    fn a_nul_is_found_in_values_and_keys_with_its_pointer() {
        assert_eq!(
            nul_pointer(&json!({"a": ["ok", "b\u{0}"]})),
            Some("/a/1".into())
        );
        assert_eq!(
            nul_pointer(&json!({"k\u{0}": 1})),
            Some("/k\u{FFFD}".into())
        );
        assert_eq!(
            nul_pointer(&json!({"a/b": {"c": "\u{0}"}})),
            Some("/a~1b/c".into())
        );
        assert_eq!(nul_pointer(&json!({"a": "\\u0000 is only text"})), None);
    }

    #[test]
    fn an_escaped_nul_is_found_and_text_that_looks_like_one_is_not() {
        let text = |v: Value| serde_json::to_string(&v).unwrap();
        assert!(holds_nul_escape(&text(json!("a\u{0}b"))));
        assert!(holds_nul_escape(&text(json!("\\\u{0}"))));
        assert!(!holds_nul_escape(&text(json!("\\u0000"))));
        assert!(!holds_nul_escape(&text(json!("\\\\u0000"))));
        assert!(holds_nul_escape(r#"{"a":"\\\u0000"}"#));
        assert!(!holds_nul_escape(r#"{"a":"\\u0000"}"#));
    }

    #[test]
    fn foreign_text_loses_its_nuls_and_is_cut_to_its_size() {
        assert_eq!(sanitize_foreign("a\u{0}b", 100), "a\u{FFFD}b");
        let long = "é".repeat(1000);
        let cut = sanitize_foreign(&long, 101);
        assert!(cut.len() <= 101, "{}", cut.len());
        assert!(cut.ends_with("bytes cut]"), "{cut}");
        assert!(sanitize_foreign(&long, 10).len() <= 10);
        assert_eq!(sanitize_foreign("short", 5), "short");
    }

    #[test]
    fn a_capped_list_says_how_many_were_left_out() {
        assert_eq!(cap_list(vec![1, 2, 3, 4], 2), (vec![1, 2], 2));
        assert_eq!(cap_list(vec![1], 2), (vec![1], 0));
    }
}
