//! The worker's directories. A private cache ([`private_dir`]): owned by the server's user, mode
//! 0700, never a symlink, checked before every use, so another local user cannot plant or read
//! what it holds (issue 10, L4: it used to be a shared directory in world-writable `/tmp`). And
//! the verification directory ([`shared_dir`]): the virtualenvs the sandbox's uids run and their
//! per-run project directories, which those uids must reach but no one but the server may change.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Where the cache lives: `BACKFORGE_CACHE_DIR`, else `$XDG_CACHE_HOME/backforge`, else
/// `$HOME/.cache/backforge`, else a per-user directory in the system temp dir (still checked).
pub fn default_root(get: impl Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(dir) = get("BACKFORGE_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = get("XDG_CACHE_HOME").filter(|d| d.starts_with('/')) {
        return Path::new(&dir).join("backforge");
    }
    if let Some(home) = get("HOME").filter(|d| d.starts_with('/')) {
        return Path::new(&home).join(".cache").join("backforge");
    }
    let user = own_uid().map_or_else(|_| "unknown".to_owned(), |uid| uid.to_string());
    std::env::temp_dir().join(format!("backforge-cache-{user}"))
}

/// This process's effective user id: the owner of `/proc/self`.
fn own_uid() -> anyhow::Result<u32> {
    Ok(std::fs::metadata("/proc/self")
        .context("cannot tell this process's user from /proc/self")?
        .uid())
}

/// Creates `dir` (and missing parents) with mode 0700, or checks the one that exists: a real
/// directory (not a symlink), owned by this process's user, writable by nobody else. One that is
/// only readable by others is tightened to 0700; anything else is refused, naming the problem.
pub fn private_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    let uid = own_uid()?;
    if std::fs::symlink_metadata(dir).is_err() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create the cache directory {}", dir.display()))?;
    }
    let meta = std::fs::symlink_metadata(dir)
        .with_context(|| format!("cannot inspect the cache directory {}", dir.display()))?;
    anyhow::ensure!(
        !meta.file_type().is_symlink() && meta.is_dir(),
        "the cache directory {} is not a directory (or is a symlink)",
        dir.display()
    );
    anyhow::ensure!(
        meta.uid() == uid,
        "the cache directory {} belongs to uid {}, not to this server (uid {uid})",
        dir.display(),
        meta.uid()
    );
    let mode = meta.mode() & 0o7777;
    anyhow::ensure!(
        mode & 0o022 == 0,
        "the cache directory {} is writable by other users (mode {mode:o}); remove it or make it 0700",
        dir.display()
    );
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} private", dir.display()))?;
    }
    Ok(dir.to_path_buf())
}

/// Creates `dir` (and missing parents) with mode 0755, or checks the one that exists, so the
/// sandbox's unprivileged uids can read and search it and no one but the server can change it: a
/// real directory owned by this process's user, writable by no one else (one that is only
/// private is opened up to 0755), and every directory above it owned by root or this user,
/// searchable by every uid, and writable by no one else (a sticky one, like `/tmp`, excepted).
/// A refusal names the directory and what is wrong with it.
pub fn shared_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    let uid = own_uid()?;
    anyhow::ensure!(
        dir.is_absolute(),
        "the verification directory {} must be an absolute path",
        dir.display()
    );
    if std::fs::symlink_metadata(dir).is_err() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    }
    let meta = std::fs::symlink_metadata(dir)
        .with_context(|| format!("cannot inspect the directory {}", dir.display()))?;
    anyhow::ensure!(
        !meta.file_type().is_symlink() && meta.is_dir(),
        "{} is not a directory (or is a symlink)",
        dir.display()
    );
    anyhow::ensure!(
        meta.uid() == uid,
        "the directory {} belongs to uid {}, not to this server (uid {uid})",
        dir.display(),
        meta.uid()
    );
    let mode = meta.mode() & 0o7777;
    anyhow::ensure!(
        mode & 0o022 == 0,
        "the directory {} is writable by other users (mode {mode:o})",
        dir.display()
    );
    if mode & 0o755 != 0o755 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot make {} readable by the sandbox", dir.display()))?;
    }
    for ancestor in dir.ancestors().skip(1) {
        let meta = std::fs::metadata(ancestor)
            .with_context(|| format!("cannot inspect {}", ancestor.display()))?;
        let mode = meta.mode() & 0o7777;
        anyhow::ensure!(
            meta.uid() == 0 || meta.uid() == uid,
            "{} (above {}) belongs to uid {}: only root or this server may own the directories \
             above the verification directory",
            ancestor.display(),
            dir.display(),
            meta.uid()
        );
        anyhow::ensure!(
            mode & 0o022 == 0 || mode & 0o1000 != 0,
            "{} (above {}) is writable by other users (mode {mode:o})",
            ancestor.display(),
            dir.display()
        );
        anyhow::ensure!(
            mode & 0o001 != 0,
            "{} (above {}) cannot be searched by the sandbox's uids (mode {mode:o}): put the \
             verification directory (BACKFORGE_VENV_DIR) under directories every uid may enter",
            ancestor.display(),
            dir.display()
        );
        if ancestor.symlink_metadata()?.file_type().is_symlink() {
            anyhow::bail!(
                "{} (above {}) is a symlink: name the verification directory by its real path",
                ancestor.display(),
                dir.display()
            );
        }
    }
    Ok(dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> PathBuf {
        std::env::temp_dir().join(format!("bf-cache-test-{}", uuid::Uuid::new_v4().simple()))
    }

    #[test]
    fn a_new_directory_is_created_private() {
        let root = scratch();
        let dir = root.join("a/b");
        private_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_readable_directory_is_tightened_and_a_writable_or_linked_one_refused() {
        let root = scratch();
        std::fs::create_dir_all(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&root).unwrap();
        assert_eq!(std::fs::metadata(&root).unwrap().mode() & 0o777, 0o700);

        let shared = root.join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let error = private_dir(&shared).unwrap_err().to_string();
        assert!(error.contains("writable by other users"), "{error}");

        let link = root.join("link");
        std::os::unix::fs::symlink(&shared, &link).unwrap();
        let error = private_dir(&link).unwrap_err().to_string();
        assert!(error.contains("symlink"), "{error}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_shared_directory_is_opened_to_0755_and_one_under_a_private_one_refused() {
        let root = scratch();
        let dir = root.join("shared");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        shared_dir(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o755);

        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
        let error = shared_dir(&dir).unwrap_err().to_string();
        assert!(error.contains("cannot be searched"), "{error}");
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o775)).unwrap();
        let error = shared_dir(&dir).unwrap_err().to_string();
        assert!(error.contains("writable by other users"), "{error}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_default_follows_the_settings_then_xdg_then_home() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |key: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(
            default_root(env(&[("BACKFORGE_CACHE_DIR", "/srv/c"), ("HOME", "/h")])),
            PathBuf::from("/srv/c")
        );
        assert_eq!(
            default_root(env(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")])),
            PathBuf::from("/x/backforge")
        );
        assert_eq!(
            default_root(env(&[("HOME", "/h")])),
            PathBuf::from("/h/.cache/backforge")
        );
        assert!(
            default_root(env(&[]))
                .to_string_lossy()
                .contains("backforge-cache-")
        );
    }
}
