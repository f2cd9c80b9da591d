//! Atomic file replacement.
//!
//! Every artefact the kit writes goes through here: the bytes are written to a
//! temporary file next to the target, flushed to disk, then renamed over the
//! target. A rename within one directory is atomic on POSIX filesystems, so a
//! reader (or a process killed mid-write) sees either the old file or the new
//! one, never a truncated mix.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::IoError;

/// Atomically replaces `path` with `bytes`, creating parent directories.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    write_atomic_with(path, |file| {
        file.write_all(bytes).map_err(|e| IoError::io(path, e))
    })
}

/// Atomically replaces `path` with whatever `f` writes into the file it is given.
///
/// `f` receives a fresh, empty temporary file in the same directory as `path`.
/// If `f` fails, the temporary file is deleted and `path` is left untouched.
pub fn write_atomic_with(
    path: &Path,
    f: impl FnOnce(&mut File) -> Result<(), IoError>,
) -> Result<(), IoError> {
    let dir = parent_dir(path);
    std::fs::create_dir_all(&dir).map_err(|e| IoError::io(&dir, e))?;

    // The temp file must live in the target's directory: a rename across
    // filesystems is a copy, which is not atomic.
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!(".{file_name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    // NamedTempFile defaults to 0600; the artefacts are ordinary shared files,
    // so ask for 0644 (still subject to the umask).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    let mut tmp = builder
        .tempfile_in(&dir)
        .map_err(|e| IoError::io(&dir, e))?;

    // On error `tmp` is dropped here, which deletes the temp file.
    f(tmp.as_file_mut())?;
    tmp.as_file_mut()
        .flush()
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| IoError::io(tmp.path(), e))?;

    tmp.persist(path).map_err(|e| IoError::io(path, e.error))?;

    // Make the rename itself durable. Best effort: some platforms and
    // filesystems do not allow syncing a directory, and the data is already safe.
    #[cfg(unix)]
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The directory a file lives in; `Path::parent` gives "" for bare names.
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_content_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/out.txt");
        write_atomic(&path, b"first version, longer").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"first version, longer");
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(entries(&dir.path().join("a/b")), vec!["out.txt"]);
    }

    #[test]
    fn failed_writer_keeps_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        write_atomic(&path, b"old").unwrap();
        let err = write_atomic_with(&path, |f| {
            f.write_all(b"partial").unwrap();
            Err(IoError::InvalidName {
                name: "x".into(),
                reason: "test failure".into(),
            })
        })
        .unwrap_err();
        assert!(matches!(err, IoError::InvalidName { .. }));
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(entries(dir.path()), vec!["out.txt"]);
    }

    #[cfg(unix)]
    #[test]
    fn written_file_is_not_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        write_atomic(&path, b"x").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        // Owner read/write always; group/other read unless the umask forbids it.
        assert_eq!(mode & 0o600, 0o600);
        assert_eq!(mode & 0o133, 0);
    }
}
