//! Secrets that stay on the machine that uses them: references (`env:NAME`, `file:PATH`) that a
//! process resolves locally, so that what is stored in ZooKeeper or a shared config names a secret
//! without holding it, and the permission checks on the files that hold them.
//!
//! Every secret setting (MySQL passwords of otter pipelines, ZooKeeper digest credentials) takes
//! one of:
//! - `""`: no secret (an empty password);
//! - `env:NAME`: the value of environment variable `NAME` on the process that uses it;
//! - `file:PATH`: the contents of `PATH` (one trailing newline dropped), a file that must not be
//!   readable by group or others (mode 0600 or stricter), checked each time it is read;
//! - anything else: the secret itself, written where it is configured.

use std::path::{Path, PathBuf};

/// A secret setting that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// `env:NAME` names a variable that is not set (or not UTF-8).
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    /// A secret file cannot be read.
    #[error("cannot read {path}: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A secret file others may read.
    #[error("{path} has mode {mode:04o}: a file holding a secret must not be readable by group or others (chmod 600 it)")]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A configuration file anyone may rewrite.
    #[error("{path} is world-writable (mode {mode:04o}) and holds secrets or says where data goes: anyone on the machine could redirect it (chmod o-w it)")]
    WorldWritable {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// A parsed secret setting; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// No secret.
    Empty,
    /// Read from this environment variable.
    Env(String),
    /// Read from this file (mode 0600 or stricter).
    File(PathBuf),
    /// The secret itself.
    Literal(String),
}

impl SecretRef {
    /// Parses a setting; never fails (anything unrecognised is a literal).
    pub fn parse(setting: &str) -> SecretRef {
        if setting.is_empty() {
            SecretRef::Empty
        } else if let Some(name) = setting.strip_prefix("env:") {
            SecretRef::Env(name.to_string())
        } else if let Some(path) = setting.strip_prefix("file:") {
            SecretRef::File(PathBuf::from(path))
        } else {
            SecretRef::Literal(setting.to_string())
        }
    }

    /// True when the setting holds the secret itself (it must not be stored in ZooKeeper).
    pub fn is_literal(&self) -> bool {
        matches!(self, SecretRef::Literal(_))
    }

    /// The secret, read now from the environment or the file.
    pub fn resolve(&self) -> Result<String, SecretError> {
        match self {
            SecretRef::Empty => Ok(String::new()),
            SecretRef::Literal(s) => Ok(s.clone()),
            SecretRef::Env(name) => {
                std::env::var(name).map_err(|_| SecretError::MissingEnv(name.clone()))
            }
            SecretRef::File(path) => read_secret_file(path),
        }
    }
}

/// Resolves a secret setting (see the module documentation).
pub fn resolve(setting: &str) -> Result<String, SecretError> {
    SecretRef::parse(setting).resolve()
}

/// Reads a file holding a secret, refusing one that group or others may read.
pub fn read_secret_file(path: &Path) -> Result<String, SecretError> {
    let unreadable = |e: std::io::Error| SecretError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    let mode = mode_of(&meta);
    if mode & 0o077 != 0 {
        return Err(SecretError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    let mut text = std::fs::read_to_string(path).map_err(unreadable)?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

/// Refuses a configuration file that anyone on the machine may rewrite.
pub fn check_config_file(path: &Path) -> Result<(), SecretError> {
    let meta = std::fs::metadata(path).map_err(|e| SecretError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mode = mode_of(&meta);
    if mode & 0o002 != 0 {
        return Err(SecretError::WorldWritable {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(unix)]
fn mode_of(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode_of(_meta: &std::fs::Metadata) -> u32 {
    0o600
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn settings_parse_into_references() {
        assert_eq!(SecretRef::parse(""), SecretRef::Empty);
        assert_eq!(SecretRef::parse("env:X"), SecretRef::Env("X".into()));
        assert_eq!(
            SecretRef::parse("file:/etc/s"),
            SecretRef::File("/etc/s".into())
        );
        assert!(SecretRef::parse("hunter2").is_literal());
        assert_eq!(
            resolve("env:ZK_COORD_SECRET_TEST_UNSET"),
            Err(SecretError::MissingEnv("ZK_COORD_SECRET_TEST_UNSET".into()))
        );
    }

    #[test]
    fn secret_files_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "s3cret\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_secret_file(&f).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(resolve(&format!("file:{}", f.display())).unwrap(), "s3cret");

        assert!(check_config_file(&f).is_ok());
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = check_config_file(&f).unwrap_err();
        assert!(e.to_string().contains("world-writable"), "{e}");
    }
}
