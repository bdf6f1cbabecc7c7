//! Bounded JSON-lines files under `[console] data_dir`, so the audit log and the metric history
//! outlive a restart of the manager: one record a line, appended as it is made; when a file holds
//! twice its capacity it is rewritten with the newest `cap` lines (a temporary file renamed over
//! it). A record that does not parse (a torn last line after a crash) is skipped when loading.
//! Writing is best effort: a failure is logged and the console goes on with memory only.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// One bounded file.
pub struct Jsonl {
    path: PathBuf,
    cap: usize,
    /// Lines in the file; the lock also orders appends and compaction.
    lines: Mutex<usize>,
}

impl Jsonl {
    /// The file `name` in `dir`, kept to about `cap` records (at most twice that on disk).
    pub fn new(dir: &Path, name: &str, cap: usize) -> Self {
        Self {
            path: dir.join(name),
            cap: cap.max(1),
            lines: Mutex::new(0),
        }
    }

    /// The newest `cap` records that parse, oldest first (none when the file does not exist).
    pub fn load<T: DeserializeOwned>(&self) -> Vec<T> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot read; starting empty");
                String::new()
            }
        };
        let lines: Vec<&str> = text.lines().collect();
        *self.lines.lock().unwrap_or_else(|p| p.into_inner()) = lines.len();
        let skip = lines.len().saturating_sub(self.cap);
        lines[skip..]
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Appends `record`; compacts the file to the newest `cap` lines beyond twice that.
    pub fn append<T: Serialize>(&self, record: &T) {
        let Ok(mut line) = serde_json::to_string(record) else {
            return;
        };
        line.push('\n');
        let mut n = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot append");
            return;
        }
        *n += 1;
        if *n > 2 * self.cap {
            match self.compact() {
                Ok(kept) => *n = kept,
                Err(e) => tracing::warn!(path = %self.path.display(), error = %e, "cannot compact"),
            }
        }
    }

    fn compact(&self) -> std::io::Result<usize> {
        let text = std::fs::read_to_string(&self.path)?;
        let lines: Vec<&str> = text.lines().collect();
        let keep = &lines[lines.len().saturating_sub(self.cap)..];
        let tmp = self.path.with_extension("tmp");
        let mut out = String::with_capacity(keep.iter().map(|l| l.len() + 1).sum());
        for l in keep {
            out.push_str(l);
            out.push('\n');
        }
        std::fs::write(&tmp, out)?;
        std::fs::rename(&tmp, &self.path)?;
        Ok(keep.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_records_across_reopening_and_skips_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let f = Jsonl::new(dir.path(), "n.jsonl", 3);
        assert!(f.load::<u32>().is_empty());
        for i in 0..10u32 {
            f.append(&i);
        }
        // Compacted at 7 lines to 3, then 3 more appended: at most twice the capacity on disk.
        let on_disk = std::fs::read_to_string(dir.path().join("n.jsonl")).unwrap();
        assert!(on_disk.lines().count() <= 6, "{on_disk}");
        let mut torn = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("n.jsonl"))
            .unwrap();
        torn.write_all(b"{\"half").unwrap();
        let again = Jsonl::new(dir.path(), "n.jsonl", 3);
        assert_eq!(again.load::<u32>(), vec![8, 9]);
    }
}
