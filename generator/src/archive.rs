//! The deterministic ZIP: the same file tree always gives the same bytes.
//!
//! Entries are written in sorted order with a fixed timestamp (1980-01-01 00:00, the format's
//! epoch), permissions 0644, deflate at a fixed level and no extra fields, so nothing about the
//! machine or the moment of generation leaks into the archive.

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipArchive, ZipWriter};

/// The deflate level: fixed, because another level gives other bytes.
const DEFLATE_LEVEL: i64 = 6;
const FILE_MODE: u32 = 0o644;

/// Why `name` may not be the path of a generated file, or `None` when it may: a relative path of
/// non-empty segments, with no `.`/`..`, no backslash, no drive letter and no control character.
pub fn unsafe_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("is empty");
    }
    if name.starts_with('/') {
        return Some("is absolute");
    }
    if name.contains('\\') {
        return Some("contains a backslash");
    }
    if name.contains(':') {
        return Some("contains a colon (a drive letter or stream name on Windows)");
    }
    if name.chars().any(char::is_control) {
        return Some("contains a control character");
    }
    for segment in name.split('/') {
        match segment {
            "" => return Some("has an empty segment"),
            "." | ".." => return Some("has a `.` or `..` segment"),
            _ => {}
        }
    }
    None
}

/// Writes `files` as a ZIP. Panics on an unsafe name: the generator only makes names from
/// validated identifiers, so one would be a bug here, never bad input.
pub fn write_zip(files: &BTreeMap<String, Vec<u8>>) -> Result<Vec<u8>, zip::result::ZipError> {
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(DEFLATE_LEVEL))
        .last_modified_time(DateTime::default())
        .unix_permissions(FILE_MODE)
        .large_file(false);
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    // A BTreeMap iterates in byte order of the names: the entry order is fixed.
    for (name, content) in files {
        if let Some(problem) = unsafe_name(name) {
            panic!("generated file name {name:?} {problem}");
        }
        writer.start_file(name.as_str(), options)?;
        writer.write_all(content)?;
    }
    Ok(writer.finish()?.into_inner())
}

/// Reads back a ZIP made by [`write_zip`]: every entry's name and content. Refuses unsafe names,
/// so a caller may join them onto a directory.
pub fn read_zip(zip: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut archive = ZipArchive::new(Cursor::new(zip)).map_err(|e| e.to_string())?;
    let mut files = BTreeMap::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| e.to_string())?;
        let name = entry.name().to_owned();
        if let Some(problem) = unsafe_name(&name) {
            return Err(format!("entry {name:?} {problem}"));
        }
        let mut content = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
        entry
            .read_to_end(&mut content)
            .map_err(|e| format!("entry {name:?}: {e}"))?;
        if files.insert(name.clone(), content).is_some() {
            return Err(format!("entry {name:?} appears twice"));
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> BTreeMap<String, Vec<u8>> {
        BTreeMap::from([
            ("b/z.txt".to_owned(), b"zzz".to_vec()),
            ("a.txt".to_owned(), b"hello hello hello".to_vec()),
            ("b/a.py".to_owned(), vec![]),
        ])
    }

    #[test]
    fn the_same_tree_gives_the_same_bytes() {
        assert_eq!(write_zip(&tree()).unwrap(), write_zip(&tree()).unwrap());
    }

    #[test]
    fn entries_are_sorted_dated_1980_with_mode_0644_and_read_back() {
        let zip = write_zip(&tree()).unwrap();
        let mut archive = ZipArchive::new(Cursor::new(&zip)).unwrap();
        let names: Vec<String> = (0..archive.len())
            .map(|i| archive.by_index(i).unwrap().name().to_owned())
            .collect();
        assert_eq!(names, ["a.txt", "b/a.py", "b/z.txt"]);
        for i in 0..archive.len() {
            let entry = archive.by_index(i).unwrap();
            assert_eq!(entry.unix_mode(), Some(0o100644));
            let modified = entry.last_modified().unwrap();
            assert_eq!(
                (modified.year(), modified.month(), modified.day()),
                (1980, 1, 1)
            );
            assert_eq!((modified.hour(), modified.minute()), (0, 0));
            assert!(entry.extra_data().is_none_or(<[u8]>::is_empty));
        }
        assert_eq!(read_zip(&zip).unwrap(), tree());
    }

    #[test]
    fn unsafe_names_are_recognised() {
        for name in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a/./b",
            "a//b",
            "a\\b",
            "C:x",
            "a/",
            "a\nb",
        ] {
            assert!(unsafe_name(name).is_some(), "{name:?}");
        }
        for name in [
            "a",
            "app/main.py",
            ".env.example",
            "alembic/versions/0001_initial.py",
        ] {
            assert_eq!(unsafe_name(name), None, "{name:?}");
        }
    }

    #[test]
    #[should_panic(expected = "has a `.` or `..` segment")]
    fn writing_an_unsafe_name_is_a_bug() {
        let _ = write_zip(&BTreeMap::from([("../evil".to_owned(), vec![])]));
    }
}
