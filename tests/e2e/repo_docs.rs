//! The repository documents itself: no tracked file may send a reader to notes that live outside
//! it. The user's reference is `docs/api.md`, the map of the code `docs/ARCHITECTURE.md`.

use std::path::Path;
use std::process::Command;

/// Lockfiles are generated and name whatever their registries name, so they are not prose to check.
fn is_lockfile(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.ends_with(".lock") || name == "package-lock.json"
}

#[test]
fn no_tracked_file_points_to_documents_outside_the_repository() {
    // Built at run time so that this file does not name what it looks for.
    let needle = ["sha", "red/"].concat();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let listed = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(&root)
        .output()
        .expect("git runs (the test reads the list of tracked files)");
    assert!(
        listed.status.success(),
        "git ls-files failed: {}",
        String::from_utf8_lossy(&listed.stderr)
    );

    let mut offenders = Vec::new();
    let mut checked = 0;
    for path in String::from_utf8_lossy(&listed.stdout)
        .split('\0')
        .filter(|p| !p.is_empty())
    {
        if is_lockfile(path) {
            continue;
        }
        // A tracked file deleted in the working tree has nothing to say.
        let Ok(bytes) = std::fs::read(root.join(path)) else {
            continue;
        };
        // Binary files (and anything that is not UTF-8 text) are not documentation.
        if bytes.contains(&0) {
            continue;
        }
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        checked += 1;
        for (n, line) in text.lines().enumerate() {
            if line.contains(&needle) {
                offenders.push(format!("{path}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        checked > 0,
        "no tracked text file was read from {}",
        root.display()
    );
    assert!(
        offenders.is_empty(),
        "tracked files name `{needle}`, which is not in the repository; point to docs/api.md or \
         docs/ARCHITECTURE.md instead:\n{}",
        offenders.join("\n")
    );
}
