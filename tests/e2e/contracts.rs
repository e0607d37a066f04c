//! Contracts between crates are types in the crate that owns them: these tests read the other
//! crates' production sources and fail on a contract's spelling copied into them as a literal.

use std::path::{Path, PathBuf};

/// Crates whose sources are not production code (tests, benchmarks) or not checked here.
const EXEMPT: &[&str] = &["tests", "bench", "target"];

/// The workspace's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

/// Every crate folder of the workspace (a folder with a `Cargo.toml` and a `src`), by name.
fn crates() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root()).expect("the workspace") {
        let path = entry.expect("an entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if path.join("Cargo.toml").is_file() && path.join("src").is_dir() {
            out.push((name, path));
        }
    }
    out.sort();
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// One Rust source file, lexed just enough: its code with comments and literals blanked, and its
/// string literals with their offsets.
struct Lexed {
    code: Vec<u8>,
    literals: Vec<(usize, String)>,
}

/// Splits `source` into code and string literals (plain, raw and byte strings); comments (nested
/// block comments too) are dropped, char literals and lifetimes told apart.
fn lex(source: &str) -> Lexed {
    let b = source.as_bytes();
    let mut code = vec![b' '; b.len()];
    let mut literals = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            b'r' | b'b'
                if !(i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
                    && raw_start(b, i).is_some() =>
            {
                let (hashes, body) = raw_start(b, i).unwrap_or((0, i));
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                let end = b[body..]
                    .windows(close.len())
                    .position(|w| w == close.as_slice())
                    .map_or(b.len(), |p| body + p);
                literals.push((i, String::from_utf8_lossy(&b[body..end]).into_owned()));
                i = (end + close.len()).min(b.len());
            }
            b'"' => {
                let start = i;
                i += 1;
                let mut text = Vec::new();
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        text.push(b[i]);
                        i += 1;
                    }
                    if i < b.len() {
                        text.push(b[i]);
                        i += 1;
                    }
                }
                i += 1;
                literals.push((start, String::from_utf8_lossy(&text).into_owned()));
            }
            b'\'' => {
                // A char literal ('x', '\n', '"'), or a lifetime ('a) left as code.
                let char_len = source[i + 1..].chars().next().map_or(1, char::len_utf8);
                if b.get(i + 1) == Some(&b'\\') {
                    i += 2;
                    while i < b.len() && b[i] != b'\'' {
                        i += 1;
                    }
                    i += 1;
                } else if b.get(i + 1 + char_len) == Some(&b'\'') {
                    i += char_len + 2;
                } else {
                    code[i] = b'\'';
                    i += 1;
                }
            }
            other => {
                code[i] = other;
                i += 1;
            }
        }
    }
    Lexed { code, literals }
}

/// Where a raw or byte string starting at `i` has its body: (number of `#`, body offset).
fn raw_start(b: &[u8], i: usize) -> Option<(usize, usize)> {
    let mut j = i;
    if b.get(j) == Some(&b'b') {
        j += 1;
    }
    let raw = b.get(j) == Some(&b'r');
    if raw {
        j += 1;
    }
    let mut hashes = 0;
    while raw && b.get(j) == Some(&b'#') {
        hashes += 1;
        j += 1;
    }
    (j > i && b.get(j) == Some(&b'"')).then_some((hashes, j + 1))
}

/// The byte ranges of `#[cfg(test)]` items in `code`, and the names of `#[cfg(test)] mod x;`
/// modules declared there (their files are test code as a whole).
fn test_items(code: &[u8]) -> (Vec<(usize, usize)>, Vec<String>) {
    let text = String::from_utf8_lossy(code);
    let mut ranges = Vec::new();
    let mut files = Vec::new();
    for (at, _) in text.match_indices("#[cfg(test)]") {
        let rest = &code[at..];
        let Some(open) = rest.iter().position(|&c| c == b'{' || c == b';') else {
            continue;
        };
        if rest[open] == b';' {
            let item = String::from_utf8_lossy(&rest[..open]).into_owned();
            if let Some(name) = item.split_whitespace().last() {
                files.push(name.to_owned());
            }
            continue;
        }
        let mut depth = 0usize;
        let mut end = code.len();
        for (k, &c) in rest.iter().enumerate().skip(open) {
            match c {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = at + k + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        ranges.push((at, end));
    }
    (ranges, files)
}

/// Every string literal of the production sources of every crate but `owner` (and the exempt
/// ones) that contains one of `needles`, as `path:line: "literal"`.
fn literals_outside(owner: &str, needles: &[&str]) -> Vec<String> {
    let root = root();
    let mut found = Vec::new();
    for (name, dir) in crates() {
        if name == owner || EXEMPT.contains(&name.as_str()) {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&dir.join("src"), &mut files);
        let lexed: Vec<(String, Lexed)> = files
            .iter()
            .map(|file| {
                let source = std::fs::read_to_string(file).expect("a source file");
                let lexed = lex(&source);
                (source, lexed)
            })
            .collect();
        // Files of `#[cfg(test)] mod x;` modules are test code as a whole.
        let mut test_files: Vec<PathBuf> = Vec::new();
        for (file, (_, lexed)) in files.iter().zip(&lexed) {
            let here = match file.file_stem().and_then(|s| s.to_str()) {
                Some("lib" | "main" | "mod") => file.parent().map(Path::to_path_buf),
                _ => Some(file.with_extension("")),
            };
            for module in test_items(&lexed.code).1 {
                if let Some(here) = &here {
                    test_files.push(here.join(format!("{module}.rs")));
                    test_files.push(here.join(module).join("mod.rs"));
                }
            }
        }
        for (file, (source, lexed)) in files.iter().zip(&lexed) {
            if test_files.contains(file) {
                continue;
            }
            let ranges = test_items(&lexed.code).0;
            for (at, literal) in &lexed.literals {
                if ranges.iter().any(|(from, to)| at >= from && at < to) {
                    continue;
                }
                if needles.iter().any(|n| literal.contains(n)) {
                    let line = source[..*at].matches('\n').count() + 1;
                    let path = file.strip_prefix(&root).unwrap_or(file).display();
                    found.push(format!("{path}:{line}: \"{literal}\""));
                }
            }
        }
    }
    found
}

#[test]
fn the_lexer_finds_literals_and_skips_comments_chars_and_test_modules() {
    let source = r####"
        // "in a comment .events."
        /* "in a /* nested */ block" */
        fn f<'a>(x: &'a str) -> char { let _ = r#"raw "quoted" .jobs."#; let _ = b"bytes"; '"' }
        const A: &str = "a \" quote";
        #[cfg(test)]
        mod tests { const B: &str = "in a test"; }
        const C: &str = "after";
    "####;
    let lexed = lex(source);
    let literals: Vec<&str> = lexed.literals.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        literals,
        [
            r#"raw "quoted" .jobs."#,
            "bytes",
            r#"a \" quote"#,
            "in a test",
            "after"
        ]
    );
    let (ranges, _) = test_items(&lexed.code);
    let in_test = |needle: &str| {
        lexed
            .literals
            .iter()
            .find(|(_, l)| l == needle)
            .is_some_and(|(at, _)| ranges.iter().any(|(f, t)| at >= f && at < t))
    };
    assert!(in_test("in a test"));
    assert!(!in_test("after"));
}

/// NATS subjects, stream names and consumer names are spelled in `messaging` only.
#[test]
fn nats_spellings_appear_only_in_messaging() {
    let found = literals_outside(
        "messaging",
        &[
            ".events.",
            ".jobs.",
            "_EVENTS",
            "_JOBS",
            "jobs.generation",
            "generation-worker",
        ],
    );
    assert!(
        found.is_empty(),
        "NATS names belong to the `messaging` crate (use `messaging::Names`):\n{}",
        found.join("\n")
    );
}

/// Whether a string literal spells a read-model table: the live or next schema (`rm.`, `rm_next`),
/// the checkpoint row's name quoted for SQL, or a read-model table after an SQL keyword.
fn spells_read_model_table(literal: &str) -> bool {
    let after_boundary = |needle: &str| {
        literal.match_indices(needle).any(|(at, _)| {
            !literal[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    };
    let words: Vec<&str> = literal
        .split(|c: char| c.is_whitespace() || c == '(' || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    let names_table = words.windows(2).any(|w| {
        let table = w[1]
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .trim_end_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
        matches!(
            w[0],
            "FROM" | "JOIN" | "INTO" | "UPDATE" | "TABLE" | "EXISTS"
        ) && read_model::tables::TABLES.contains(&table)
    });
    after_boundary("rm.")
        || after_boundary(read_model::NEXT)
        || literal.contains(&format!("'{}'", read_model::PROJECTION))
        || names_table
}

/// Read-model tables are spelled in `read-model` only: the projector writes them through its
/// table constants, the query API and the worker read them through its typed readers.
#[test]
fn read_model_tables_appear_only_in_read_model() {
    assert!(spells_read_model_table("SELECT tx FROM rm.checkpoints"));
    assert!(spells_read_model_table("UPDATE {schema}.users SET"));
    assert!(spells_read_model_table("WHERE name = 'read_models'"));
    assert!(!spells_read_model_table("SELECT tx FROM relay_checkpoints"));
    assert!(!spells_read_model_table("{schema}.{PROJECTS}"));
    let found: Vec<String> = literals_outside(
        "read-model",
        &[
            "rm",
            "read_models",
            "FROM",
            "JOIN",
            "INTO",
            "UPDATE",
            "TABLE",
            "EXISTS",
        ],
    )
    .into_iter()
    .filter(|hit| {
        hit.split_once(": \"")
            .is_some_and(|(_, literal)| spells_read_model_table(literal))
    })
    .collect();
    assert!(
        found.is_empty(),
        "read-model tables belong to the `read-model` crate (use its table constants and readers):\n{}",
        found.join("\n")
    );
}
