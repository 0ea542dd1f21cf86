//! The directories a cluster uses (data, socket) and why an existing one can be trusted.

use std::path::{Path, PathBuf};

use super::LocalDbError;
use super::process::OsUser;

/// Sockets live at `<dir>/.s.PGSQL.5432`; Unix socket paths are limited to 107 bytes.
const MAX_SOCKET_DIR_LEN: usize = 90;

pub(super) fn absolute(path: &Path) -> Result<PathBuf, LocalDbError> {
    std::path::absolute(path)
        .map_err(|e| LocalDbError::Io(format!("resolve {}", path.display()), e))
}

/// Creates `dir` (and its parents) for `owner` (default: us) with `mode`. An existing `dir` is
/// used only if it is a real directory (not a symlink) owned by that user: the socket directory
/// may live in a shared temp dir under a predictable name, where another user could plant a
/// link to a directory of ours, which a chmod and chown would then hand to `postgres`.
pub(super) fn create_owned_dir(
    dir: &Path,
    owner: Option<&OsUser>,
    mode: u32,
) -> Result<(), LocalDbError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let io = |what: &str, e| LocalDbError::Io(format!("{what} {}", dir.display()), e);
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io("create the parent of", e))?;
    }
    let expected_uid = owner.map_or_else(current_uid, |o| o.uid);
    let created = match std::fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(io("create", e)),
    };
    if !created {
        let unsafe_dir = |why: &str| LocalDbError::UnsafeDir {
            path: dir.to_owned(),
            why: why.to_owned(),
        };
        let metadata = std::fs::symlink_metadata(dir).map_err(|e| io("inspect", e))?;
        if metadata.file_type().is_symlink() {
            return Err(unsafe_dir("it is a symbolic link"));
        }
        if !metadata.is_dir() {
            return Err(unsafe_dir("it is not a directory"));
        }
        // Ours, or already handed to `postgres` by an earlier run.
        if metadata.uid() != expected_uid && metadata.uid() != current_uid() {
            return Err(unsafe_dir(&format!(
                "it belongs to uid {}, not to uid {expected_uid}",
                metadata.uid()
            )));
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .map_err(|e| io("chmod", e))?;
    if let Some(owner) = owner {
        std::os::unix::fs::chown(dir, Some(owner.uid), Some(owner.gid))
            .map_err(|e| io("chown", e))?;
    }
    Ok(())
}

fn current_uid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// Next to the data directory when the path is short enough, else under the temp dir.
pub fn socket_dir_for(data_dir: &Path) -> Result<PathBuf, LocalDbError> {
    let beside = data_dir.with_extension("sock");
    if beside.as_os_str().len() <= MAX_SOCKET_DIR_LEN {
        return Ok(beside);
    }
    let mut hasher = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(data_dir, &mut hasher);
    Ok(std::env::temp_dir().join(format!(
        "stripe-customer-sync-{:x}.sock",
        std::hash::Hasher::finish(&hasher)
    )))
}
