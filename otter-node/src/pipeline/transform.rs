//! Transform (near the target): the rows of an extracted batch renamed to the target's
//! schema/table, and the tables a DDL statement names rewritten to their targets ([`ddl`]).

pub mod ddl;

use crate::batch::LoadBatch;
use crate::model::{find_mapping, CompiledMapping};

/// Renames the rows (and DDL schema) of an extracted batch to the target's schema/table.
pub fn transform(mut batch: LoadBatch, mappings: &[CompiledMapping]) -> LoadBatch {
    for r in &mut batch.rows {
        if let Some(m) = find_mapping(mappings, &r.schema, &r.table) {
            let (s, t) = m.target(&r.schema, &r.table);
            r.schema = s;
            r.table = t;
        }
    }
    for c in &mut batch.checked {
        if let Some(m) = find_mapping(mappings, &c.schema, &c.table) {
            let (s, t) = m.target(&c.schema, &c.table);
            c.schema = s;
            c.table = t;
        }
    }
    if let Some(d) = &mut batch.ddl {
        // The statement's table names, not only the batch's fields, go to the target's.
        d.sql = ddl::rewrite_tables(&d.sql, &d.schema, mappings);
        if let Some(m) = find_mapping(mappings, &d.schema, &d.table) {
            let (s, t) = m.target(&d.schema, &d.table);
            d.schema = s;
            d.table = t;
        }
    }
    batch
}
