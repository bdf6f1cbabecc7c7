//! `Catalog::apply` against a real MariaDB: every DDL statement below runs on the server and
//! through the catalog, and after each one the catalog must describe exactly the tables
//! `information_schema` reports: column names and order, COLUMN_TYPE text, PRIMARY KEY membership
//! (from STATISTICS, index `PRIMARY`), unsigned, nullability, column and table character sets,
//! ENUM/SET labels and database default character sets.

use std::collections::{BTreeMap, BTreeSet};

use canal_server::position::BinlogPosition;
use canal_server::schema::ddl::Catalog;
use canal_server::schema::history::{DdlOutcome, SchemaHistory};
use canal_server::schema::table::{ColumnMeta, TableMeta};
use harness::MariaDb;
use mysql_async::prelude::Queryable;

/// One scenario: a database name (created fresh, `utf8mb4` unless the first statement creates it
/// itself) and the statements run with it as the current database.
struct Scenario {
    db: &'static str,
    stmts: &'static [&'static str],
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        db: "s_int",
        stmts: &[
            "CREATE TABLE t (a INT, b INT UNSIGNED, c INT ZEROFILL, d TINYINT, e TINYINT UNSIGNED, \
             f BOOL, g BOOLEAN, h BIGINT, i BIGINT UNSIGNED, j SMALLINT, k SMALLINT UNSIGNED, \
             l MEDIUMINT, m MEDIUMINT UNSIGNED, n INT(5) ZEROFILL, o TINYINT(1), p INT(0), \
             q INT SIGNED, r INTEGER, s INT1, u INT2, v INT3, w INT4, x INT8, y MIDDLEINT, \
             z BIGINT(10) UNSIGNED ZEROFILL, aa TINYINT(1) UNSIGNED, ab SERIAL, \
             ac SMALLINT ZEROFILL, ad MEDIUMINT(4) UNSIGNED, ae INT(255))",
        ],
    },
    Scenario {
        db: "s_num",
        stmts: &[
            "CREATE TABLE t (a DECIMAL, b DECIMAL(5,2) UNSIGNED, c DECIMAL(7), d DECIMAL ZEROFILL, \
             e NUMERIC, f DEC(5,2), g FIXED(6,1), h FLOAT, i FLOAT(7,3), j FLOAT(10), k FLOAT(24), \
             l FLOAT(25), m FLOAT(53), n FLOAT UNSIGNED ZEROFILL, o DOUBLE, p DOUBLE(10,2), \
             q DOUBLE PRECISION, r REAL, s REAL(8,3), u DOUBLE UNSIGNED, v FLOAT4, w FLOAT8, \
             x BIT, y BIT(8), z BIT(64), aa DECIMAL(65,30), ab FLOAT(0))",
        ],
    },
    Scenario {
        db: "s_time",
        stmts: &[
            "CREATE TABLE t (a YEAR, b YEAR(4), c DATE, d TIME, e TIME(0), f TIME(2), g DATETIME, \
             h DATETIME(3), i DATETIME(6), j TIMESTAMP, k TIMESTAMP(6) NULL DEFAULT NULL, \
             l TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP, \
             m DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), n TIMESTAMP(2) DEFAULT now(2))",
        ],
    },
    Scenario {
        db: "s_str",
        stmts: &[
            "CREATE TABLE t (a CHAR, b CHAR(10), c VARCHAR(20), d BINARY, e BINARY(4), \
             f VARBINARY(10), g TINYTEXT, h TEXT, i MEDIUMTEXT, j LONGTEXT, k TINYBLOB, l BLOB, \
             m MEDIUMBLOB, n LONGBLOB, o TEXT(100), p TEXT(70000), q BLOB(300), r BLOB(70000), \
             s LONG, u LONG VARCHAR, v LONG VARBINARY, w NATIONAL VARCHAR(10), x NVARCHAR(5), \
             y NCHAR(2), z NATIONAL CHAR(3), aa NCHAR VARCHAR(4), ab CHARACTER VARYING(5), \
             ac CHARACTER(3), ad CHAR(3) BYTE, ae VARCHAR(3) BYTE, af VARCHAR(10) BINARY, \
             ag CHAR(5) ASCII, ah CHAR(5) UNICODE, \
             ai VARCHAR(5) CHARACTER SET latin1 COLLATE latin1_bin, aj TEXT CHARSET utf8, \
             ak VARCHAR(5) COLLATE utf8mb4_bin, al VARCHAR(5) CHARSET binary, \
             am TEXT CHARACTER SET binary, an VARCHAR(5) CHARACTER SET utf8mb3, \
             ao NATIONAL CHARACTER VARYING(6), ap VARCHARACTER(7), aq TINYTEXT CHARACTER SET ucs2, \
             ar TEXT(63) CHARACTER SET utf8mb4, ai2 VARCHAR(2) CHAR SET latin1, \
             at2 VARCHAR(3) CHARACTER SET 'latin1')",
        ],
    },
    Scenario {
        db: "s_misc_types",
        stmts: &[
            r#"CREATE TABLE t (a ENUM('a','b'), b ENUM('it''s','a\\b','A','é', 'x y'), c ENUM('x ','y'),
               d SET('a','b','c') CHARACTER SET latin1, e ENUM("dq", 'sq'), f JSON, g GEOMETRY,
               h POINT, i LINESTRING, j POLYGON, k MULTIPOINT, l MULTILINESTRING, m MULTIPOLYGON,
               n GEOMETRYCOLLECTION, o INET4, p INET6, q UUID, r SET('x', 'y ') NOT NULL,
               s ENUM('a','b') COLLATE latin1_german1_ci)"#,
            "CREATE TABLE j (id INT PRIMARY KEY, doc JSON NOT NULL) DEFAULT CHARSET=latin1",
        ],
    },
    Scenario {
        db: "s_latin1",
        stmts: &[
            "DROP DATABASE s_latin1",
            "CREATE DATABASE s_latin1 CHARACTER SET latin1",
            "USE s_latin1",
            "CREATE TABLE t (a VARCHAR(3), b TEXT(255), c TEXT(256), d ENUM('a'), e TEXT)",
            "CREATE TABLE u (a VARCHAR(3)) DEFAULT CHARSET=utf8mb4",
            "CREATE TABLE v (a VARCHAR(3)) COLLATE=utf8mb4_unicode_ci",
            "CREATE TABLE w (a VARCHAR(3)) CHARSET utf8",
            "CREATE TABLE x (a VARCHAR(3)) DEFAULT CHARACTER SET = ucs2 DEFAULT COLLATE = ucs2_bin",
            "CREATE DATABASE IF NOT EXISTS s_latin1 CHARACTER SET utf8mb4",
            "CREATE DATABASE IF NOT EXISTS s_latin1_b DEFAULT COLLATE utf8mb3_bin",
            "CREATE TABLE s_latin1_b.t (a TEXT)",
            "ALTER DATABASE s_latin1_b CHARACTER SET latin2",
            "CREATE TABLE s_latin1_b.u (a TEXT)",
            "ALTER SCHEMA s_latin1 CHARACTER SET cp1251",
            "CREATE TABLE z (a CHAR(2))",
            "DROP DATABASE s_latin1_b",
        ],
    },
    Scenario {
        db: "s_pk",
        stmts: &[
            "CREATE TABLE a (id INT PRIMARY KEY, v INT)",
            "CREATE TABLE b (id INT KEY, v INT)",
            "CREATE TABLE c (x INT, y INT, z INT, PRIMARY KEY (x, y))",
            "CREATE TABLE d (x INT NOT NULL, y INT, CONSTRAINT pk PRIMARY KEY (y))",
            "CREATE TABLE e (x INT, PRIMARY KEY USING BTREE (x))",
            "CREATE TABLE f (x INT UNIQUE, y INT NOT NULL, UNIQUE KEY u (y))",
            "CREATE TABLE g (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT, s VARCHAR(40), \
             PRIMARY KEY (`id`), KEY k (s(10)))",
            "CREATE TABLE h (s VARCHAR(40), n INT, PRIMARY KEY (s(10), n DESC))",
            "CREATE TABLE i (`Weird Name` INT, `select` INT, PRIMARY KEY (`Weird Name`))",
        ],
    },
    Scenario {
        db: "s_alter_cols",
        stmts: &[
            "CREATE TABLE t (id INT NOT NULL, a VARCHAR(10), b INT, PRIMARY KEY (id))",
            "ALTER TABLE t ADD COLUMN c INT",
            "ALTER TABLE t ADD d DATETIME FIRST",
            "ALTER TABLE t ADD COLUMN e TEXT AFTER id",
            "ALTER TABLE t ADD (f INT, g VARCHAR(3))",
            "ALTER TABLE t ADD COLUMN (h BIT)",
            "ALTER TABLE t ADD COLUMN IF NOT EXISTS c BIGINT",
            "ALTER TABLE t ADD COLUMN IF NOT EXISTS i TINYINT",
            "ALTER TABLE t DROP COLUMN f",
            "ALTER TABLE t DROP g",
            "ALTER TABLE t DROP COLUMN IF EXISTS nope",
            "ALTER TABLE t MODIFY a VARCHAR(20) NOT NULL",
            "ALTER TABLE t MODIFY COLUMN b BIGINT UNSIGNED FIRST",
            "ALTER TABLE t MODIFY c INT AFTER a",
            "ALTER TABLE t CHANGE a aa VARCHAR(30)",
            "ALTER TABLE t CHANGE COLUMN aa a2 CHAR(2) AFTER d",
            "ALTER TABLE t CHANGE id id BIGINT",
            "ALTER TABLE t RENAME COLUMN h TO hh",
            "ALTER TABLE t ALTER COLUMN c SET DEFAULT 5",
            "ALTER TABLE t ALTER c DROP DEFAULT",
            "ALTER TABLE t ADD x INT, DROP COLUMN hh, MODIFY e MEDIUMTEXT, CHANGE b bb INT AFTER x",
            "ALTER TABLE t ADD COLUMN y INT, ADD COLUMN z INT AFTER y",
            "ALTER TABLE t DROP COLUMN y, ADD COLUMN y2 DECIMAL(4,1) FIRST",
            "ALTER TABLE `t` ADD COLUMN `Mixed Case` ENUM('p','q') NOT NULL DEFAULT 'q' COMMENT 'c,x'",
            "ALTER TABLE t DROP COLUMN `mixed case`",
            "ALTER TABLE t MODIFY COLUMN IF EXISTS nope INT",
            "ALTER TABLE t CHANGE COLUMN IF EXISTS nope nope2 INT",
            "ALTER TABLE t ADD COLUMN w INT, ALGORITHM=INPLACE, LOCK=NONE",
            "ALTER TABLE t ADD COLUMN w2 INT, ALGORITHM=COPY",
            "ALTER ONLINE TABLE t ADD COLUMN w3 SMALLINT",
            "ALTER TABLE t ADD w4 INT NOT NULL DEFAULT 0 AFTER `id`, ADD INDEX (w4)",
        ],
    },
    Scenario {
        db: "s_alter_keys",
        stmts: &[
            "CREATE TABLE t (a INT, b INT, c INT, d INT)",
            "ALTER TABLE t ADD PRIMARY KEY (a, b)",
            "ALTER TABLE t DROP PRIMARY KEY",
            "ALTER TABLE t ADD CONSTRAINT pk PRIMARY KEY (c)",
            "ALTER TABLE t DROP PRIMARY KEY, ADD PRIMARY KEY (a)",
            "ALTER TABLE t ADD INDEX i (b)",
            "ALTER TABLE t ADD UNIQUE KEY u (c)",
            "ALTER TABLE t DROP INDEX i, DROP KEY u",
            "ALTER TABLE t ADD CONSTRAINT uu UNIQUE (d)",
            "ALTER TABLE t DROP CONSTRAINT uu",
            "CREATE TABLE p (id INT PRIMARY KEY)",
            "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (b) REFERENCES p (id)",
            "ALTER TABLE t DROP FOREIGN KEY fk",
            "ALTER TABLE t ADD CONSTRAINT chk CHECK (d > 0)",
            "ALTER TABLE t DROP CONSTRAINT chk",
            "CREATE TABLE m (a INT, b INT, c INT, PRIMARY KEY (a))",
            "ALTER TABLE m DROP COLUMN a",
            "ALTER TABLE m MODIFY c INT PRIMARY KEY",
            "CREATE TABLE n (a INT, b INT)",
            "ALTER TABLE n ADD COLUMN id INT NOT NULL FIRST, ADD PRIMARY KEY (id)",
            "ALTER TABLE n ADD PRIMARY KEY (a), DROP PRIMARY KEY, ADD COLUMN q INT",
            "ALTER TABLE n CHANGE a a_new BIGINT NOT NULL",
            "CREATE INDEX ci ON n (b)",
            "DROP INDEX ci ON n",
            "CREATE UNIQUE INDEX cu ON n (b)",
        ],
    },
    Scenario {
        db: "s_alter_cs",
        stmts: &[
            "CREATE TABLE t (a VARCHAR(5), b TEXT, c TINYTEXT, j JSON, e ENUM('x'), n INT) CHARSET latin1",
            "ALTER TABLE t DEFAULT CHARSET=utf8mb4",
            "ALTER TABLE t ADD f VARCHAR(5)",
            "ALTER TABLE t CHARACTER SET latin1, ADD g VARCHAR(3)",
            "ALTER TABLE t MODIFY a VARCHAR(6)",
            "ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4",
            "ALTER TABLE t CONVERT TO CHARACTER SET latin1",
            "ALTER TABLE t CONVERT TO CHARSET utf8mb3 COLLATE utf8mb3_bin",
            "ALTER TABLE t COLLATE latin1_bin",
            "ALTER TABLE t ADD h TEXT",
            "ALTER TABLE t ENGINE=InnoDB DEFAULT CHARSET utf8mb4 COMMENT 'x'",
            "ALTER TABLE t ADD i TINYTEXT",
            "CREATE TABLE u (a TINYTEXT CHARACTER SET ucs2, b MEDIUMTEXT, c VARCHAR(2) CHARSET binary)",
            "ALTER TABLE u CONVERT TO CHARACTER SET utf8mb4",
            "CREATE TABLE v (a LONGTEXT, b TEXT) CHARSET latin1",
            "ALTER TABLE v CONVERT TO CHARACTER SET DEFAULT",
            "ALTER TABLE v CHARACTER SET latin1",
            "ALTER TABLE v ADD c TEXT, CHARACTER SET utf8mb3",
        ],
    },
    Scenario {
        db: "s_tables",
        stmts: &[
            "CREATE TABLE a (id INT PRIMARY KEY, v VARCHAR(3))",
            "CREATE TABLE b (x INT)",
            "RENAME TABLE a TO a2",
            "ALTER TABLE a2 RENAME TO a3",
            "ALTER TABLE a3 RENAME a4",
            "ALTER TABLE a4 RENAME AS a5, ADD w INT",
            "RENAME TABLE a5 TO tmp, b TO a5, tmp TO b",
            "CREATE DATABASE s_tables_other",
            "RENAME TABLE b TO s_tables_other.moved",
            "ALTER TABLE s_tables_other.moved RENAME TO s_tables.back, ADD COLUMN r INT FIRST",
            "CREATE TABLE c LIKE back",
            "CREATE TABLE IF NOT EXISTS c (zz INT)",
            "CREATE TABLE d (LIKE a5)",
            "CREATE TABLE IF NOT EXISTS e (q INT) ENGINE=InnoDB",
            "CREATE OR REPLACE TABLE e (q2 BIGINT)",
            "TRUNCATE TABLE e",
            "TRUNCATE d",
            "DROP TABLE c, d",
            "DROP TABLE IF EXISTS nope, e",
            "CREATE TABLE s_tables_other.x (a INT)",
            "DROP DATABASE s_tables_other",
            "ALTER TABLE back ENGINE=InnoDB",
            "ALTER TABLE back COMMENT = 'hello', AUTO_INCREMENT = 5",
            "ALTER TABLE back FORCE",
            "ALTER TABLE back ROW_FORMAT=DYNAMIC",
            "CREATE TABLE p (id INT NOT NULL, d DATE) PARTITION BY HASH(id) PARTITIONS 3",
            "ALTER TABLE p ADD COLUMN z INT, COMMENT 'c'",
            "ALTER TABLE p COALESCE PARTITION 1",
            "CREATE TABLE `we``ird` (`co``l` INT)",
            "ALTER TABLE `we``ird` ADD `x,y` INT",
        ],
    },
    Scenario {
        db: "s_attrs",
        stmts: &[
            "CREATE TABLE t (a INT NOT NULL DEFAULT -1, b VARCHAR(10) DEFAULT 'x,y' COMMENT 'a, b', \
             c INT DEFAULT (1 + 2), d DATETIME DEFAULT CURRENT_TIMESTAMP, \
             e VARCHAR(5) DEFAULT _utf8mb4'x', f BIT(1) DEFAULT b'1', g INT NULL DEFAULT NULL, \
             h INT AS (a + 1) VIRTUAL, i INT GENERATED ALWAYS AS (a * 2) STORED, \
             j INT AS (a) PERSISTENT, k INT INVISIBLE, l INT CHECK (l > 0), \
             m INT, CONSTRAINT cm CHECK (m < 100), n VARCHAR(3) NOT NULL DEFAULT '', \
             o DOUBLE DEFAULT 1.5e3, p INT UNSIGNED DEFAULT 0 NOT NULL, q INT NULL, \
             `date` DATE, `status` TINYINT, `text` TEXT, r INT AUTO_INCREMENT UNIQUE KEY)",
            "CREATE TABLE /* comment */ u (a INT) /*!50100 ENGINE=InnoDB */",
            "/*M!100100 CREATE TABLE v (a INT) */",
            "ALTER TABLE t ADD s INT COMMENT 'first' FIRST",
            "ALTER TABLE t MODIFY a INT NULL",
            "ALTER TABLE t MODIFY COLUMN b VARCHAR(12) NOT NULL DEFAULT 'q' AFTER `date`",
        ],
    },
    Scenario {
        db: "s_more",
        stmts: &[
            "CREATE TABLE Upper (`ä` INT, `a.b` VARCHAR(2), c DECIMAL(10,2) ZEROFILL) \
             ENGINE=MyISAM DEFAULT CHARSET=latin1 COLLATE=latin1_bin",
            "CREATE TABLE upper (x INT) ENGINE=InnoDB",
            "ALTER TABLE Upper ADD PRIMARY KEY (d), ADD COLUMN d INT NOT NULL FIRST",
            "ALTER TABLE Upper DROP COLUMN `a.b`, ADD COLUMN `a.b` VARCHAR(4) AFTER d",
            "ALTER TABLE Upper CHANGE `ä` `Ä` BIGINT",
            "ALTER TABLE upper ADD COLUMN y INT DEFAULT NULL AFTER x, ALGORITHM=INSTANT",
            "ALTER TABLE upper ADD COLUMN z INT, ADD INDEX iz (z), \
             ADD CONSTRAINT ck CHECK (z > 0), ENGINE=InnoDB",
            "CREATE VIEW vw AS SELECT x FROM upper",
            "CREATE OR REPLACE VIEW vw AS SELECT x, y FROM upper",
            "CREATE SEQUENCE seq",
            "GRANT SELECT ON s_more.* TO 'someone'@'%' IDENTIFIED BY 'pw'",
            "CREATE TABLE IF NOT EXISTS lk LIKE Upper",
            "CREATE TABLE IF NOT EXISTS lk LIKE upper",
            "DROP VIEW vw",
            "ALTER TABLE lk RENAME TO lk2, DROP PRIMARY KEY, ADD COLUMN q TIME(3) FIRST",
            "!ERR CREATE TABLE sel SELECT 1 AS a",
            "!ERR CREATE TABLE sel2 (x INT) SELECT 2 AS y",
            "!ERR CREATE TABLE sv (a INT) WITH SYSTEM VERSIONING",
            "!ERR ALTER TABLE lk2 ADD SYSTEM VERSIONING",
            "!ERR ALTER TABLE lk2 DROP SYSTEM VERSIONING",
            "SET STATEMENT lock_wait_timeout = 60 FOR ALTER TABLE lk2 ADD COLUMN ss INT FIRST",
            "!ERR ALTER TABLE upper ADD COLUMN zz INT, ADD COLUMN zz2 INT AFTER nope_col_does_not_exist",
        ],
    },
];

#[derive(Debug, PartialEq)]
struct Col {
    name: String,
    column_type: String,
    pk: bool,
    unsigned: bool,
    nullable: bool,
    charset: Option<String>,
    labels: Vec<String>,
}

#[derive(Debug, PartialEq)]
struct Table {
    charset: Option<String>,
    columns: Vec<Col>,
}

/// ENUM/SET labels read back from COLUMN_TYPE text (`enum('a','it''s','a\\b')`).
fn labels_of(column_type: &str) -> Vec<String> {
    let Some(inner) = column_type
        .strip_prefix("enum(")
        .or_else(|| column_type.strip_prefix("set("))
        .and_then(|s| s.strip_suffix(')'))
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue; // separators
        }
        let mut label = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    label.push('\'');
                }
                '\'' => break,
                '\\' => {
                    if let Some(n) = chars.next() {
                        label.push(n);
                    }
                }
                c => label.push(c),
            }
        }
        out.push(label);
    }
    out
}

fn from_meta(m: &TableMeta) -> Table {
    Table {
        charset: m.charset.clone(),
        columns: m
            .columns
            .iter()
            .map(|c: &ColumnMeta| Col {
                name: c.name.clone(),
                column_type: c.column_type.clone(),
                pk: c.is_primary_key,
                unsigned: c.unsigned,
                nullable: c.nullable,
                charset: c.charset.clone(),
                labels: c.enum_values.clone(),
            })
            .collect(),
    }
}

type ColRow = (String, String, String, String, String, Option<String>);

async fn server_tables(
    db: &MariaDb,
    schemas: &BTreeSet<String>,
) -> BTreeMap<(String, String), Table> {
    let list = schemas
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(",");
    let tables: Vec<(String, String, Option<String>)> = db
        .query(&format!(
            "SELECT t.TABLE_SCHEMA, t.TABLE_NAME, co.CHARACTER_SET_NAME \
             FROM information_schema.TABLES t \
             LEFT JOIN information_schema.COLLATIONS co ON co.COLLATION_NAME = t.TABLE_COLLATION \
             WHERE t.TABLE_SCHEMA IN ({list}) AND t.TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED')"
        ))
        .await
        .expect("query TABLES");
    let cols: Vec<ColRow> = db
        .query(&format!(
            "SELECT c.TABLE_SCHEMA, c.TABLE_NAME, c.COLUMN_NAME, c.COLUMN_TYPE, c.IS_NULLABLE, \
             c.CHARACTER_SET_NAME FROM information_schema.COLUMNS c \
             JOIN information_schema.TABLES t \
               ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND BINARY t.TABLE_NAME = BINARY c.TABLE_NAME \
             WHERE c.TABLE_SCHEMA IN ({list}) \
               AND t.TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') \
             ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION"
        ))
        .await
        .expect("query COLUMNS");
    let pks: Vec<(String, String, String)> = db
        .query(&format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA IN ({list}) AND INDEX_NAME = 'PRIMARY'"
        ))
        .await
        .expect("query STATISTICS");
    let pks: BTreeSet<(String, String, String)> = pks.into_iter().collect();
    let mut out: BTreeMap<(String, String), Table> = tables
        .into_iter()
        .map(|(s, t, cs)| {
            (
                (s, t),
                Table {
                    charset: cs,
                    columns: Vec::new(),
                },
            )
        })
        .collect();
    for (s, t, name, ty, nullable, cs) in cols {
        let pk = pks.contains(&(s.clone(), t.clone(), name.clone()));
        let labels = labels_of(&ty);
        let col = Col {
            unsigned: ty.contains(" unsigned"),
            name,
            column_type: ty,
            pk,
            nullable: nullable == "YES",
            charset: cs,
            labels,
        };
        out.entry((s, t))
            .or_insert_with(|| Table {
                charset: None,
                columns: Vec::new(),
            })
            .columns
            .push(col);
    }
    out
}

async fn server_db_charsets(db: &MariaDb, schemas: &BTreeSet<String>) -> BTreeMap<String, String> {
    let list = schemas
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(",");
    let rows: Vec<(String, String)> = db
        .query(&format!(
            "SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA \
             WHERE SCHEMA_NAME IN ({list})"
        ))
        .await
        .expect("query SCHEMATA");
    rows.into_iter().collect()
}

fn compare(
    step: &str,
    catalog: &Catalog,
    server: &BTreeMap<(String, String), Table>,
    schemas: &BTreeSet<String>,
    failures: &mut Vec<String>,
) {
    let ours: BTreeMap<(String, String), Table> = catalog
        .tables()
        .filter(|m| schemas.contains(&m.schema))
        .map(|m| ((m.schema.clone(), m.table.clone()), from_meta(m)))
        .collect();
    let our_names: BTreeSet<_> = ours.keys().collect();
    let their_names: BTreeSet<_> = server.keys().collect();
    if our_names != their_names {
        failures.push(format!(
            "{step}\n  tables differ: catalog {our_names:?} server {their_names:?}"
        ));
    }
    for (key, theirs) in server {
        let Some(mine) = ours.get(key) else { continue };
        if mine.charset != theirs.charset {
            failures.push(format!(
                "{step}\n  {}.{} table charset: catalog {:?} server {:?}",
                key.0, key.1, mine.charset, theirs.charset
            ));
        }
        if mine.columns.len() != theirs.columns.len() {
            failures.push(format!(
                "{step}\n  {}.{} columns: catalog {:?}\n  server {:?}",
                key.0,
                key.1,
                mine.columns.iter().map(|c| &c.name).collect::<Vec<_>>(),
                theirs.columns.iter().map(|c| &c.name).collect::<Vec<_>>()
            ));
            continue;
        }
        for (a, b) in mine.columns.iter().zip(&theirs.columns) {
            if a != b {
                failures.push(format!(
                    "{step}\n  {}.{} column differs:\n    catalog {a:?}\n    server  {b:?}",
                    key.0, key.1
                ));
            }
        }
    }
}

/// After a catalog error: copy the server's tables so later steps stay meaningful.
fn resync(
    catalog: &mut Catalog,
    server: &BTreeMap<(String, String), Table>,
    schemas: &BTreeSet<String>,
) {
    let stale: Vec<(String, String)> = catalog
        .tables()
        .filter(|m| schemas.contains(&m.schema))
        .map(|m| (m.schema.clone(), m.table.clone()))
        .collect();
    for (s, t) in stale {
        catalog.remove_table(&s, &t);
    }
    for ((s, t), table) in server {
        catalog.insert_table(TableMeta {
            schema: s.clone(),
            table: t.clone(),
            charset: table.charset.clone(),
            columns: table
                .columns
                .iter()
                .map(|c| ColumnMeta {
                    name: c.name.clone(),
                    column_type: c.column_type.clone(),
                    is_primary_key: c.pk,
                    unsigned: c.unsigned,
                    charset: c.charset.clone(),
                    collation_id: None,
                    enum_values: c.labels.clone(),
                    nullable: c.nullable,
                })
                .collect(),
        });
    }
}

#[tokio::test]
async fn catalog_matches_information_schema() {
    let db = MariaDb::start()
        .await
        .expect("start MariaDB (install mariadb-server: apt-get install mariadb-server)");
    let mut conn = db.conn().await.expect("connect");
    let mut catalog = Catalog::new();
    let mut failures = Vec::new();
    let mut checked = 0usize;
    for sc in SCENARIOS {
        let setup = format!("CREATE DATABASE {}", sc.db);
        conn.query_drop(&setup).await.expect("create database");
        catalog.apply(&setup, "").expect("catalog: create database");
        conn.query_drop(format!("USE {}", sc.db))
            .await
            .expect("use database");
        let mut schemas: BTreeSet<String> = BTreeSet::new();
        schemas.insert(sc.db.to_string());
        for sql in sc.stmts {
            // Every database a statement may touch is compared.
            for word in sql.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
                if word.starts_with(sc.db) {
                    schemas.insert(word.to_string());
                }
            }
            // `!ERR ` marks statements the catalog must refuse (the caller re-reads the table).
            let (expect_err, sql) = match sql.strip_prefix("!ERR ") {
                Some(rest) => (true, rest),
                None => (false, *sql),
            };
            let step = format!("[{}] {sql}", sc.db);
            if let Err(e) = conn.query_drop(sql).await {
                if expect_err {
                    // MariaDB refused it too (e.g. the AFTER case): nothing to compare.
                    assert!(
                        catalog.apply(sql, sc.db).is_err(),
                        "{step}: catalog accepted"
                    );
                    continue;
                }
                panic!("MariaDB rejected test statement {sql}: {e}");
            }
            let server = server_tables(&db, &schemas).await;
            match (catalog.apply(sql, sc.db), expect_err) {
                (Ok(_), false) => {}
                (Err(_), true) => {
                    resync(&mut catalog, &server, &schemas);
                    checked += 1;
                    continue;
                }
                (Ok(_), true) => {
                    failures.push(format!(
                        "{step}\n  catalog accepted a statement it should refuse"
                    ));
                    resync(&mut catalog, &server, &schemas);
                    continue;
                }
                (Err(e), false) => {
                    failures.push(format!("{step}\n  catalog error: {e}"));
                    resync(&mut catalog, &server, &schemas);
                    continue;
                }
            }
            compare(&step, &catalog, &server, &schemas, &mut failures);
            let charsets = server_db_charsets(&db, &schemas).await;
            for s in &schemas {
                let mine = catalog
                    .databases()
                    .find(|(n, _)| n == s)
                    .and_then(|(_, cs)| cs.map(str::to_string));
                if mine.as_ref() != charsets.get(s) {
                    failures.push(format!(
                        "{step}\n  database {s} charset: catalog {mine:?} server {:?}",
                        charsets.get(s)
                    ));
                }
            }
            checked += 1;
        }
    }
    let _ = conn.disconnect().await;
    assert!(
        failures.is_empty(),
        "{} of {checked} statements disagree with information_schema:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{checked} DDL statements: catalog matches information_schema");
    replay_binlog_through_history(&db).await;
}

/// The DDL exactly as MariaDB logged it (SHOW BINLOG EVENTS), replayed through a
/// `SchemaHistory` at its binlog positions, must end in the server's current definitions, except
/// for tables the history reported as invalidated (it cannot model them; the caller re-reads
/// those). A second replay must be recognised as already applied and change nothing.
async fn replay_binlog_through_history(db: &MariaDb) {
    let mut events = Vec::new();
    for file in db.binary_logs().await.expect("SHOW BINARY LOGS") {
        let rows: Vec<mysql_async::Row> = db
            .query(&format!("SHOW BINLOG EVENTS IN '{file}'"))
            .await
            .expect("SHOW BINLOG EVENTS");
        for row in rows {
            let (Some(name), Some(pos), Some(kind), Some(info)) = (
                row.get::<String, _>(0),
                row.get::<u64, _>(1),
                row.get::<String, _>(2),
                row.get::<String, _>(5),
            ) else {
                continue;
            };
            if kind != "Query" || info == "BEGIN" || info == "COMMIT" {
                continue;
            }
            // Info is `use `db`; <statement>` when a default database was set.
            let (current_db, sql) =
                match info.strip_prefix("use `").and_then(|r| r.split_once("`; ")) {
                    Some((d, rest)) => (d.to_string(), rest.to_string()),
                    None => (String::new(), info.clone()),
                };
            events.push((BinlogPosition::new(name, pos), current_db, sql));
        }
    }
    assert!(
        events.len() > 100,
        "only {} DDL events in the binlog",
        events.len()
    );

    let mut history = SchemaHistory::default();
    let mut invalidated: BTreeSet<(String, String)> = BTreeSet::new();
    for (at, current_db, sql) in &events {
        match history
            .apply_ddl(at.clone(), sql, current_db)
            .expect("apply_ddl")
        {
            DdlOutcome::Applied(_) => {}
            DdlOutcome::Invalidated { tables, reason } => {
                eprintln!("invalidated at {at}: {reason}");
                invalidated.extend(tables);
            }
            DdlOutcome::AlreadyApplied { .. } => panic!("{at}: first replay counted as a replay"),
        }
    }
    let schemas: BTreeSet<String> = history
        .catalog()
        .tables()
        .map(|m| m.schema.clone())
        .chain(SCENARIOS.iter().map(|s| s.db.to_string()))
        .collect();
    let server = server_tables(db, &schemas).await;
    let mut failures = Vec::new();
    let mut compared = 0;
    for (key, theirs) in &server {
        if invalidated.contains(key) {
            continue;
        }
        let Some(meta) = history.latest(&key.0, &key.1) else {
            failures.push(format!("{}.{}: not in the history", key.0, key.1));
            continue;
        };
        let mine = from_meta(meta);
        if &mine != theirs {
            failures.push(format!(
                "{}.{}:\n  history {mine:?}\n  server  {theirs:?}",
                key.0, key.1
            ));
        }
        compared += 1;
    }
    for m in history.catalog().tables() {
        if !server.contains_key(&(m.schema.clone(), m.table.clone())) {
            failures.push(format!(
                "{}: in the history but not on the server",
                m.full_name()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "binlog replay disagrees with information_schema:\n{}",
        failures.join("\n")
    );
    assert!(compared >= 40, "only {compared} tables compared");
    assert!(
        invalidated.len() <= 3,
        "too many tables invalidated: {invalidated:?}"
    );

    let before = history.catalog().clone();
    for (at, current_db, sql) in &events {
        let out = history
            .apply_ddl(at.clone(), sql, current_db)
            .expect("apply_ddl");
        assert!(
            matches!(out, DdlOutcome::AlreadyApplied { .. }),
            "{at}: replay applied again: {out:?}"
        );
    }
    assert_eq!(history.catalog(), &before);
    eprintln!(
        "binlog replay: {} DDL events, {compared} tables match, invalidated {invalidated:?}",
        events.len()
    );
}

#[test]
fn labels_parser() {
    assert_eq!(
        labels_of(r"enum('it''s','a\\b','x')"),
        vec!["it's", r"a\b", "x"]
    );
    assert_eq!(labels_of("set('a')"), vec!["a"]);
    assert!(labels_of("int(11)").is_empty());
}
