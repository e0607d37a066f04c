//! The worker's private cache directory (virtual environments and verification scratch space):
//! owned by the server's user, mode 0700, never a symlink, checked before every use, so another
//! local user cannot plant or read what verification runs (issue 10, L4: it used to be a shared
//! directory in world-writable `/tmp`).

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
