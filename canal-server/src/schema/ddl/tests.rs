//! Tests of the whole module (lexing, parsing, classification and the catalog together), and the
//! helpers the other test modules share.

use super::lex::DML_PREFIX_BYTES;
use super::{classify, Catalog, DdlKind, DdlStatement};

/// The first classification result of `sql`.
pub(super) fn one(sql: &str, db: &str) -> DdlStatement {
    let r = classify(sql, db);
    assert!(!r.is_empty(), "no result for {sql}");
    r.into_iter().next().unwrap()
}

/// The kinds `sql` classifies to with current database `d`.
pub(super) fn kinds(sql: &str) -> Vec<DdlKind> {
    classify(sql, "d").into_iter().map(|s| s.kind).collect()
}

/// A result naming `schema` and `table`.
pub(super) fn st(kind: DdlKind, schema: &str, table: Option<&str>) -> DdlStatement {
    DdlStatement::new(kind, Some(schema.into()), table.map(Into::into))
}

/// A catalog after applying `sqls` in database `d`.
pub(super) fn cat(sqls: &[&str]) -> Catalog {
    let mut c = Catalog::new();
    for s in sqls {
        c.apply(s, "d").unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    c
}

#[test]
fn long_statements() {
    let values = "('a;b''c', 'é'),".repeat(5000);
    let insert = format!("INSERT INTO x.big VALUES {values}('z', 'z')");
    assert!(insert.len() > DML_PREFIX_BYTES * 4);
    assert_eq!(one(&insert, "d"), st(DdlKind::Insert, "x", Some("big")));
    assert_eq!(Catalog::new().apply(&insert, "d"), Ok(vec![]));
    let update = format!("UPDATE big SET a = '{}' WHERE id = 1", "q".repeat(20_000));
    assert_eq!(one(&update, "d"), st(DdlKind::Update, "d", Some("big")));
    // Long DDL is read in full.
    let cols: Vec<String> = (0..2000).map(|i| format!("c{i} INT")).collect();
    let create = format!("CREATE TABLE wide ({})", cols.join(", "));
    let mut c = Catalog::new();
    c.apply(&create, "d").unwrap();
    assert_eq!(c.table("d", "wide").unwrap().columns.len(), 2000);
    assert_eq!(
        kinds(&format!(
            "ALTER TABLE wide ADD INDEX i (c1) COMMENT '{}'",
            "x".repeat(10_000)
        )),
        vec![DdlKind::CIndex]
    );
}

#[test]
fn never_panics_on_prefixes_and_noise() {
    let samples = [
        "CREATE TABLE `a`.`b` (id INT(11) UNSIGNED ZEROFILL NOT NULL DEFAULT '0' COMMENT 'x', \
             e ENUM('a','b') CHARACTER SET latin1 COLLATE latin1_bin, PRIMARY KEY (`id`), \
             KEY k (e(3))) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        "ALTER TABLE t ADD COLUMN (a INT, b VARCHAR(3)), DROP PRIMARY KEY, ADD PRIMARY KEY (a), \
             CHANGE COLUMN x y DECIMAL(5,2) AFTER a, RENAME TO z, CONVERT TO CHARSET latin1",
        "RENAME TABLE a TO b, c TO d; DROP TABLE x, y; CREATE DATABASE q",
        "UPDATE t1, t2 SET t1.a = (SELECT 1) WHERE ((((1))))",
    ];
    for s in samples {
        for (i, _) in s.char_indices() {
            let p = &s[..i];
            let _ = classify(p, "d");
            let _ = cat(&["CREATE TABLE t (x INT)"]).apply(p, "d");
            let _ = classify(&s[i..], "");
            let _ = Catalog::new().apply(&s[i..], "");
        }
    }
    let noise = [
        "((((",
        "))))",
        ",,,",
        "`",
        "'",
        "\"",
        "/*",
        "--",
        "\\",
        "ALTER TABLE t ADD (",
        "ENUM(",
        "CREATE TABLE t (a ENUM(",
    ];
    for a in noise {
        for b in noise {
            let s = format!("{a}{b}");
            let _ = classify(&s, "d");
            let _ = cat(&["CREATE TABLE t (x INT)"]).apply(&s, "d");
        }
    }
}
