//! The one escaping function per output language. Every user-supplied string that reaches
//! generated output passes through exactly one of these; identifiers never do, because they come
//! from names the domain validated (`^[a-z][a-z0-9_]*$`, enum values `^[A-Za-z][A-Za-z0-9_]*$`).

use std::fmt::Write as _;

/// A Python string literal denoting exactly `s`, for any Unicode input.
///
/// The literal is double-quoted and pure printable ASCII: quotes, backslashes and every character
/// outside `' '..='~'` are escaped (`\n`, `\xNN`, `\uNNNN`, `\UNNNNNNNN`). So it cannot end early,
/// cannot start a triple-quoted string, cannot hide a line break or a bidirectional control in a
/// source file, and means the same whatever encoding an editor assumes.
pub fn python_str(s: &str) -> String {
    quoted(s, '"')
}

/// [`python_str`] with the quote `ruff format` prefers: double, unless `s` holds more double
/// quotes than single ones. For modules whose layout the formatter checks; the same escapes.
pub fn python_str_formatted(s: &str) -> String {
    if s.matches('"').count() > s.matches('\'').count() {
        quoted(s, '\'')
    } else {
        quoted(s, '"')
    }
}

fn quoted(s: &str, quote: char) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ' '..='~' => out.push(c),
            c if (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push(quote);
    out
}

/// `s` as inline Markdown text that renders literally: no emphasis, links, HTML, headings, table
/// cells or code spans can start inside it, and it stays on one line (line breaks become spaces).
pub fn markdown_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '(' | ')' | '#' | '+' | '-' | '.'
            | '!' | '|' | '~' | '"' | '\'' | '$' | '%' | '^' | ':' | ';' | '=' | '?' | '@' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() || invisible(c) => {
                let _ = write!(out, "&#x{:x};", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Characters that change how text around them displays without showing themselves: bidi
/// controls (the "Trojan Source" ones), zero-width characters, line and paragraph separators.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{061c}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}'
            | '\u{feff}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes a literal made by [`python_str`] the way Python would, for the escapes it emits.
    fn python_decode(literal: &str) -> String {
        let inner = literal
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .expect("double-quoted");
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                assert!(c != '"', "an unescaped quote inside {literal}");
                out.push(c);
                continue;
            }
            let hex = |chars: &mut std::str::Chars<'_>, n: usize| {
                let digits: String = chars.take(n).collect();
                char::from_u32(u32::from_str_radix(&digits, 16).unwrap()).unwrap()
            };
            match chars.next().unwrap() {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                'x' => out.push(hex(&mut chars, 2)),
                'u' => out.push(hex(&mut chars, 4)),
                'U' => out.push(hex(&mut chars, 8)),
                other => panic!("unexpected escape \\{other}"),
            }
        }
        out
    }

    #[test]
    fn the_formatted_literal_takes_the_quote_with_fewer_escapes() {
        assert_eq!(
            python_str_formatted(r#"length("a") <= 3"#),
            r#"'length("a") <= 3'"#
        );
        assert_eq!(python_str_formatted(r#""a" 'b'"#), r#""\"a\" 'b'""#);
        assert_eq!(python_str_formatted("it's"), r#""it's""#);
        assert_eq!(python_str_formatted(r"\'"), r#""\\'""#);
    }

    #[test]
    fn a_python_literal_escapes_quotes_backslashes_and_line_breaks() {
        assert_eq!(python_str(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(python_str("one\ntwo\r\tthree"), r#""one\ntwo\r\tthree""#);
        assert_eq!(python_str(""), r#""""#);
    }

    #[test]
    fn triple_quotes_cannot_open_a_docstring() {
        let literal = python_str(r#"""" + __import__('os').system('x') + """"#);
        assert!(!literal.contains(r#"""""#));
        assert_eq!(
            python_decode(&literal),
            r#"""" + __import__('os').system('x') + """"#
        );
    }

    #[test]
    fn unicode_becomes_ascii_escapes_that_decode_back() {
        for s in [
            "é",
            "日本語",
            "emoji 🎉",
            "\u{0}",
            "\u{7f}",
            "\u{2028}",
            "\u{202e}rtl",
            "\u{feff}",
            "a\u{10ffff}",
        ] {
            let literal = python_str(s);
            assert!(
                literal.bytes().all(|b| (b' '..=b'~').contains(&b)),
                "{literal}"
            );
            assert_eq!(python_decode(&literal), s);
        }
        assert_eq!(python_str("é"), r#""\xe9""#);
        assert_eq!(python_str("🎉"), r#""\U0001f389""#);
    }

    #[test]
    fn every_character_round_trips() {
        let all: String = (0u32..0x3000)
            .chain(0x1f300..0x1f400)
            .filter_map(char::from_u32)
            .collect();
        assert_eq!(python_decode(&python_str(&all)), all);
    }

    #[test]
    fn markdown_text_neutralises_markup_and_line_breaks() {
        assert_eq!(markdown_text("*bold* _x_"), r"\*bold\* \_x\_");
        assert_eq!(
            markdown_text("<script>alert(1)</script>"),
            r"&lt;script&gt;alert\(1\)&lt;/script&gt;"
        );
        assert_eq!(markdown_text("a | b\n# title"), r"a \| b \# title");
        assert_eq!(markdown_text("[x](http://e)"), r"\[x\]\(http\://e\)");
        assert_eq!(markdown_text("`code`"), r"\`code\`");
        assert!(!markdown_text("a\r\nb").contains('\n'));
        assert_eq!(markdown_text("x\u{202e}y\u{200b}"), "x&#x202e;y&#x200b;");
        assert_eq!(markdown_text("d\u{e9}j\u{e0} vu"), "d\u{e9}j\u{e0} vu");
    }
}
