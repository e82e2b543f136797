//! SQLite is single-instance: `run` holds an exclusive lock on a file beside the database
//! (`<database>.lock`) for as long as it runs, and a second `run` on the same file refuses
//! to start. The operating system drops the lock when the process ends, however it ends
//! (`kill -9` included), so a crash never leaves a stale lock behind. An in-memory
//! database, and PostgreSQL, need none.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The lock held by the running instance; dropping it releases the database.
#[derive(Debug)]
pub struct SingleInstance {
    _file: File,
    path: PathBuf,
}

/// Why the database could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum SingleInstanceError {
    /// Another process holds the lock.
    #[error(
        "database {database} is in use by another instance (pid {holder}, lock file {lock}): \
         SQLite is single-instance; to run several instances use PostgreSQL with [ha] enabled = true"
    )]
    InUse {
        /// The database file.
        database: String,
        /// The lock file.
        lock: String,
        /// The pid written by the holder, as written.
        holder: String,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock {lock} (beside database {database}): {source}")]
    Io {
        /// The database file.
        database: String,
        /// The lock file.
        lock: String,
        /// Why.
        source: std::io::Error,
    },
}

impl SingleInstance {
    /// Locks the SQLite database of `url` for this process: `Ok(None)` when `url` needs no
    /// lock (PostgreSQL, an in-memory SQLite database).
    pub fn acquire(url: &str) -> Result<Option<Self>, SingleInstanceError> {
        let Some(database) = sqlite_file(url) else {
            return Ok(None);
        };
        let mut lock = database.clone().into_os_string();
        lock.push(".lock");
        let lock = PathBuf::from(lock);
        let io = |source| SingleInstanceError::Io {
            database: database.display().to_string(),
            lock: lock.display().to_string(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(SingleInstanceError::InUse {
                    database: database.display().to_string(),
                    lock: lock.display().to_string(),
                    holder: if holder.is_empty() { "unknown" } else { holder }.to_owned(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        // For the message a second instance prints; the lock itself is what counts.
        let _ = file.set_len(0);
        let _ = file.seek(SeekFrom::Start(0));
        let _ = writeln!(file, "{}", std::process::id());
        let _ = file.flush();
        Ok(Some(Self {
            _file: file,
            path: lock,
        }))
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The database file of a SQLite URL; `None` for PostgreSQL and in-memory databases.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = path.strip_prefix("//").unwrap_or(path);
    let memory =
        path.is_empty() || path == ":memory:" || query.split('&').any(|kv| kv == "mode=memory");
    (!memory).then(|| PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_found_and_memory_needs_no_lock() {
        let cases = [
            (
                "sqlite://mt5-reconciler.db?mode=rwc",
                Some("mt5-reconciler.db"),
            ),
            ("sqlite:///var/lib/r.db", Some("/var/lib/r.db")),
            ("sqlite:r.db", Some("r.db")),
            ("sqlite::memory:", None),
            ("sqlite://:memory:", None),
            ("sqlite://x.db?mode=memory&cache=shared", None),
            ("postgres://u@h/db", None),
        ];
        for (url, want) in cases {
            assert_eq!(sqlite_file(url), want.map(PathBuf::from), "{url}");
        }
    }

    #[test]
    fn a_second_lock_on_the_same_file_is_refused_until_the_first_is_dropped() {
        let dir = std::env::temp_dir().join(format!("mt5r-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("a.db").display());
        let first = SingleInstance::acquire(&url)
            .unwrap()
            .expect("a file is locked");
        let second = SingleInstance::acquire(&url).unwrap_err();
        let message = second.to_string();
        assert!(message.contains("in use by another instance"), "{message}");
        assert!(
            message.contains(&std::process::id().to_string()),
            "{message}"
        );
        drop(first);
        assert!(SingleInstance::acquire(&url).unwrap().is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
