//! SHA-256 hashing and `SHA256SUMS` files.
//!
//! The `SHA256SUMS` file is written in exactly the text format of GNU
//! `sha256sum`, so a reader of the paper can verify a release with standard
//! tools (`sha256sum -c SHA256SUMS`) without building the kit.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Component, Path};

use sha2::{Digest, Sha256};

use crate::atomic::write_atomic;
use crate::IoError;

/// Name of the checksum file written into a directory.
pub const SHA256SUMS: &str = "SHA256SUMS";

/// Lowercase hex SHA-256 of a file, read in chunks so large datasets are not
/// loaded into memory.
pub fn sha256_file(path: &Path) -> Result<String, IoError> {
    let mut file = File::open(path).map_err(|e| IoError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(IoError::io(path, e)),
        };
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Lowercase hex SHA-256 of a byte slice.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A file whose current hash differs from the one recorded in `SHA256SUMS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksumMismatch {
    /// The name as listed in `SHA256SUMS` (relative to its directory).
    pub file: String,
    /// The recorded hash.
    pub expected: String,
    /// The hash of the file on disk, or `None` if the file does not exist.
    pub actual: Option<String>,
}

impl fmt::Display for ChecksumMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.actual {
            Some(actual) => write!(
                f,
                "{}: sha256 {} but SHA256SUMS records {}",
                self.file, actual, self.expected
            ),
            None => write!(
                f,
                "{}: missing (SHA256SUMS records {})",
                self.file, self.expected
            ),
        }
    }
}

/// Writes `dir/SHA256SUMS` listing `files` (names relative to `dir`).
///
/// Lines are `<hex>  <name>\n`, sorted by name, duplicates removed, so the
/// output is deterministic and accepted by `sha256sum -c`. The file is
/// replaced atomically.
pub fn write_sha256sums(dir: &Path, files: &[&str]) -> Result<(), IoError> {
    let mut names: Vec<&str> = files.to_vec();
    names.sort_unstable();
    names.dedup();
    let mut out = String::new();
    for name in names {
        check_name(name)?;
        let hash = sha256_file(&dir.join(name))?;
        out.push_str(&hash);
        out.push_str("  ");
        out.push_str(name);
        out.push('\n');
    }
    write_atomic(&dir.join(SHA256SUMS), out.as_bytes())
}

/// Re-hashes every file listed in `dir/SHA256SUMS` and returns those that do
/// not match (including missing ones), in file order. An empty vector means
/// everything verified.
pub fn check_sha256sums(dir: &Path) -> Result<Vec<ChecksumMismatch>, IoError> {
    let sums_path = dir.join(SHA256SUMS);
    let text = std::fs::read_to_string(&sums_path).map_err(|e| IoError::io(&sums_path, e))?;
    let mut mismatches = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let parse_err = |message: &str| IoError::ChecksumParse {
            path: sums_path.clone(),
            line: i + 1,
            message: message.to_string(),
        };
        let (expected, name) = parse_line(line).map_err(parse_err)?;
        check_name(name)?;
        let path = dir.join(name);
        let actual = match sha256_file(&path) {
            Ok(h) => Some(h),
            Err(IoError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                None
            }
            Err(e) => return Err(e),
        };
        if actual.as_deref() != Some(expected.as_str()) {
            mismatches.push(ChecksumMismatch {
                file: name.to_string(),
                expected,
                actual,
            });
        }
    }
    Ok(mismatches)
}

/// The file names `dir/SHA256SUMS` lists, in file order; an empty list when there is no such file.
pub fn listed_in_sha256sums(dir: &Path) -> Result<Vec<String>, IoError> {
    let sums_path = dir.join(SHA256SUMS);
    let text = match std::fs::read_to_string(&sums_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(IoError::io(&sums_path, e)),
    };
    let mut names = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
        let (_, name) = parse_line(line).map_err(|message| IoError::ChecksumParse {
            path: sums_path.clone(),
            line: i + 1,
            message: message.to_string(),
        })?;
        names.push(name.to_owned());
    }
    Ok(names)
}

/// Splits a `sha256sum` line into (lowercase hash, name). Accepts both text
/// (`"  "`) and binary (`" *"`) mode separators, as `sha256sum -c` does.
fn parse_line(line: &str) -> Result<(String, &str), &'static str> {
    const MSG: &str = "expected `<64 hex digits>  <file name>`";
    let hash = line.get(..64).ok_or(MSG)?;
    if !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(MSG);
    }
    let rest = &line[64..];
    let name = rest
        .strip_prefix("  ")
        .or_else(|| rest.strip_prefix(" *"))
        .ok_or(MSG)?;
    if name.is_empty() {
        return Err(MSG);
    }
    Ok((hash.to_ascii_lowercase(), name))
}

/// Rejects names that would not round-trip through `sha256sum` unescaped, or
/// that point outside the directory being summed.
fn check_name(name: &str) -> Result<(), IoError> {
    let bad = |reason: &str| IoError::InvalidName {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(bad("empty name"));
    }
    // GNU sha256sum escapes these characters with a leading backslash,
    // which would change the line format.
    if name.contains(['\n', '\r', '\\']) {
        return Err(bad("contains a newline, carriage return or backslash"));
    }
    if !Path::new(name)
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(bad("must be a relative path inside the directory"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hashes() {
        assert_eq!(
            sha256_bytes(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    fn setup() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("b.txt"), b"bee").unwrap();
        std::fs::write(dir.path().join("a.txt"), b"ay").unwrap();
        std::fs::write(dir.path().join("sub/c.bin"), [0u8, 1, 2]).unwrap();
        dir
    }

    #[test]
    fn format_is_sorted_sha256sum_text() {
        let dir = setup();
        write_sha256sums(dir.path(), &["sub/c.bin", "b.txt", "a.txt", "b.txt"]).unwrap();
        let text = std::fs::read_to_string(dir.path().join(SHA256SUMS)).unwrap();
        let expected = format!(
            "{}  a.txt\n{}  b.txt\n{}  sub/c.bin\n",
            sha256_bytes(b"ay"),
            sha256_bytes(b"bee"),
            sha256_bytes(&[0, 1, 2])
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn round_trip_detects_modified_and_missing() {
        let dir = setup();
        write_sha256sums(dir.path(), &["a.txt", "b.txt", "sub/c.bin"]).unwrap();
        assert!(check_sha256sums(dir.path()).unwrap().is_empty());

        std::fs::write(dir.path().join("b.txt"), b"changed").unwrap();
        std::fs::remove_file(dir.path().join("sub/c.bin")).unwrap();
        let mism = check_sha256sums(dir.path()).unwrap();
        assert_eq!(
            mism,
            vec![
                ChecksumMismatch {
                    file: "b.txt".into(),
                    expected: sha256_bytes(b"bee"),
                    actual: Some(sha256_bytes(b"changed")),
                },
                ChecksumMismatch {
                    file: "sub/c.bin".into(),
                    expected: sha256_bytes(&[0, 1, 2]),
                    actual: None,
                },
            ]
        );
        assert!(mism[1].to_string().contains("missing"));
    }

    #[test]
    fn gnu_sha256sum_accepts_our_file() {
        let dir = setup();
        write_sha256sums(dir.path(), &["a.txt", "b.txt", "sub/c.bin"]).unwrap();
        let run = || {
            std::process::Command::new("sha256sum")
                .args(["-c", "--strict", SHA256SUMS])
                .current_dir(dir.path())
                .output()
        };
        let out = match run() {
            Ok(out) => out,
            // Not on PATH (e.g. macOS without coreutils): nothing to compare with.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => panic!("running sha256sum: {e}"),
        };
        assert!(out.status.success(), "{out:?}");
        // And it must notice a change, so we know it really read our lines.
        std::fs::write(dir.path().join("a.txt"), b"nope").unwrap();
        assert!(!run().unwrap().status.success());
    }

    #[test]
    fn rejects_bad_names_and_lines() {
        let dir = setup();
        for bad in ["../x", "/etc/passwd", "a\\b", "a\nb", ""] {
            assert!(
                matches!(
                    write_sha256sums(dir.path(), &[bad]),
                    Err(IoError::InvalidName { .. })
                ),
                "{bad:?}"
            );
        }
        std::fs::write(dir.path().join(SHA256SUMS), "abc  a.txt\n").unwrap();
        let err = check_sha256sums(dir.path()).unwrap_err();
        assert!(
            matches!(err, IoError::ChecksumParse { line: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains(SHA256SUMS));
    }
}
