//! The history file: its JSON layout ([`FORMAT`] 1) and [`SchemaHistory::load`] /
//! [`SchemaHistory::save`]. Saving is atomic (temporary file, fsync, rename, fsync of the
//! directory); loading never panics on file contents and reports a bad file as
//! [`HistoryError::Corrupt`] naming its path.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{HistoryConfig, HistoryError, SchemaHistory, Version};
use crate::position::BinlogPosition;
use crate::schema::ddl::Catalog;

/// Format version written to (and required in) the history file.
const FORMAT: u32 = 1;

/// The file's top level.
#[derive(Serialize, Deserialize)]
struct HistoryFile {
    format: u32,
    server_charset: String,
    /// Databases and their default character set, when known.
    databases: BTreeMap<String, Option<String>>,
    applied_through: Option<BinlogPosition>,
    seeded_at: Option<BinlogPosition>,
    tables: Vec<TableVersions>,
}

/// One table's versions (sorted and de-duplicated by position on load).
#[derive(Serialize, Deserialize)]
struct TableVersions {
    schema: String,
    table: String,
    versions: Vec<Version>,
}

impl SchemaHistory {
    /// Reads a history saved by [`save`](Self::save), with default retention settings. A missing
    /// file gives an empty history (check [`is_empty`](Self::is_empty) and seed it); an unreadable
    /// or invalid one is an error naming `path`. Never panics on file contents.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, HistoryError> {
        let path = path.as_ref();
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(HistoryError::Io {
                    path: path.to_path_buf(),
                    op: "read",
                    source,
                })
            }
        };
        let corrupt = |reason: String| HistoryError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let file: HistoryFile =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if file.format != FORMAT {
            return Err(corrupt(format!(
                "format {} is not the supported format {FORMAT}",
                file.format
            )));
        }
        let mut h = SchemaHistory {
            tables: BTreeMap::new(),
            catalog: Catalog::with_server_charset(&file.server_charset),
            applied_through: file.applied_through,
            seeded_at: file.seeded_at,
            config: HistoryConfig::default(),
        };
        for (db, cs) in file.databases {
            if let Some(cs) = cs {
                h.catalog.set_database_charset(&db, &cs);
            }
        }
        for tv in file.tables {
            let key = (tv.schema, tv.table);
            for v in &tv.versions {
                if let Some(m) = &v.table {
                    if (m.schema.as_str(), m.table.as_str()) != (key.0.as_str(), key.1.as_str()) {
                        return Err(corrupt(format!(
                            "a version of {}.{} describes {}",
                            key.0,
                            key.1,
                            m.full_name()
                        )));
                    }
                }
            }
            if h.tables.contains_key(&key) {
                return Err(corrupt(format!("{}.{} is listed twice", key.0, key.1)));
            }
            let mut versions = tv.versions;
            versions.sort_by(|a, b| a.at.total_cmp(&b.at));
            versions.dedup_by(|later, earlier| {
                if later.at == earlier.at {
                    // keep the one written last
                    std::mem::swap(later, earlier);
                    true
                } else {
                    false
                }
            });
            if let Some(Some(latest)) = versions.last().map(|v| v.table.clone()) {
                h.catalog.insert_table(latest);
            }
            if !versions.is_empty() {
                h.tables.insert(key, versions);
            }
        }
        Ok(h)
    }

    /// Writes the history to `path` atomically: a temporary file beside it is written and
    /// fsynced, renamed over `path`, and the directory is fsynced, so a crash leaves either the
    /// old or the new file. The directory must exist.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), HistoryError> {
        let path = path.as_ref();
        let io = |op: &'static str| {
            move |source| HistoryError::Io {
                path: path.to_path_buf(),
                op,
                source,
            }
        };
        let file = HistoryFile {
            format: FORMAT,
            server_charset: self.catalog.server_charset().to_string(),
            databases: self
                .catalog
                .databases()
                .map(|(db, cs)| (db.to_string(), cs.map(str::to_string)))
                .collect(),
            applied_through: self.applied_through.clone(),
            seeded_at: self.seeded_at.clone(),
            tables: self
                .tables
                .iter()
                .map(|((schema, table), versions)| TableVersions {
                    schema: schema.clone(),
                    table: table.clone(),
                    versions: versions.clone(),
                })
                .collect(),
        };
        let bytes = serde_json::to_vec(&file).map_err(|e| HistoryError::Io {
            path: path.to_path_buf(),
            op: "serialize",
            source: std::io::Error::other(e),
        })?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "schema-history".to_string());
        let tmp = path.with_file_name(format!(".{name}.tmp"));
        {
            let mut f = File::create(&tmp).map_err(io("create temporary file"))?;
            f.write_all(&bytes).map_err(io("write temporary file"))?;
            f.sync_all().map_err(io("fsync temporary file"))?;
        }
        fs::rename(&tmp, path).map_err(io("rename temporary file"))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("fsync directory"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::super::tests::{meta, names, pos, seeded};
    use crate::schema::history::{DdlOutcome, HistoryError, SchemaHistory};

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.json");
        let mut h = SchemaHistory::load(&path).unwrap();
        assert!(h.is_empty());
        h.set_database_charset("d", "latin1");
        h.seed(pos(100), vec![meta("t", &[("a", "int(11)")])]);
        h.apply_ddl(pos(200), "ALTER TABLE t ADD b TEXT", "d")
            .unwrap();
        h.apply_ddl(pos(300), "CREATE TABLE u (s VARCHAR(2))", "d")
            .unwrap();
        h.apply_ddl(pos(400), "DROP TABLE u", "d").unwrap();
        h.save(&path).unwrap();
        let tmp_left = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(tmp_left, 1, "temporary file left behind");

        let mut l = SchemaHistory::load(&path).unwrap();
        assert!(!l.is_empty());
        for p in [50, 100, 150, 200, 300, 400, 500] {
            for t in ["t", "u"] {
                assert_eq!(l.table_at("d", t, &pos(p)), h.table_at("d", t, &pos(p)));
            }
        }
        assert_eq!(l.catalog(), h.catalog());
        assert_eq!(l.catalog().database_charset("d"), Some("latin1"));
        assert_eq!(
            l.table_at("d", "u", &pos(300)).unwrap().columns[0]
                .charset
                .as_deref(),
            Some("latin1")
        );
        assert!(matches!(
            l.apply_ddl(pos(200), "ALTER TABLE t ADD b TEXT", "d")
                .unwrap(),
            DdlOutcome::AlreadyApplied { .. }
        ));
        // Saving over an existing file works.
        l.apply_ddl(pos(500), "ALTER TABLE t DROP b", "d").unwrap();
        l.save(&path).unwrap();
        let l2 = SchemaHistory::load(&path).unwrap();
        assert_eq!(names(l2.latest("d", "t")), ["a"]);
    }

    #[test]
    fn corrupt_files_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.json");
        let good = {
            let mut h = seeded();
            h.apply_ddl(pos(200), "ALTER TABLE t ADD b INT", "d")
                .unwrap();
            h.save(&path).unwrap();
            fs::read_to_string(&path).unwrap()
        };
        let cases = vec![
            String::new(),
            "not json".to_string(),
            "{}".to_string(),
            good.replace("\"format\":1", "\"format\":9"),
            good.replace(
                "\"table\":\"t\",\"versions\"",
                "\"table\":\"x\",\"versions\"",
            ),
            good[..good.len() / 2].to_string(),
            "\u{0}\u{1}".to_string(),
        ];
        for bad in cases {
            fs::write(&path, &bad).unwrap();
            match SchemaHistory::load(&path) {
                Err(e @ HistoryError::Corrupt { .. }) => {
                    assert!(e.to_string().contains("h.json"), "{e}");
                    assert!(e.is_fatal() && !e.is_retryable());
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let missing_dir = dir.path().join("no/such/dir/h.json");
        let err = seeded().save(&missing_dir).unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert!(err.to_string().contains("no/such/dir"), "{err}");
    }
}
