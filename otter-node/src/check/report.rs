//! A check's report as operators read it: one line per table, then each difference with both rows.

use std::fmt::Write as _;

use crate::check::{DifferenceKind, Report};

/// The report as text: per table the rows and chunks compared, then every difference.
pub fn render_table(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "pipeline {}: {} → {}, {} table(s) in {:.1} s",
        report.pipeline,
        report.source,
        report.target,
        report.tables.len(),
        report.secs
    );
    let _ = writeln!(
        out,
        "{:<32} {:<32} {:>10} {:>10} {:>7} {:>9} {:>11} {:>9}",
        "source",
        "target",
        "rows src",
        "rows tgt",
        "chunks",
        "differing",
        "differences",
        "in flight"
    );
    for t in &report.tables {
        let _ = writeln!(
            out,
            "{:<32} {:<32} {:>10} {:>10} {:>7} {:>9} {:>11} {:>9}",
            t.source,
            t.target,
            t.source_rows,
            t.target_rows,
            t.chunks,
            t.differing_chunks,
            t.differences.len() as u64 + t.more_differences,
            t.unsettled.len()
        );
    }
    for t in &report.tables {
        for d in &t.differences {
            let kind = match d.kind {
                DifferenceKind::Changed => "changed",
                DifferenceKind::Missing => "missing on target",
                DifferenceKind::Extra => "extra on target",
            };
            let _ = writeln!(
                out,
                "{}  {}  {kind}{}\n  source: {}\n  target: {}",
                t.target,
                d.key,
                if d.repaired { "  (repaired)" } else { "" },
                d.source.as_deref().unwrap_or("(no row)"),
                d.target.as_deref().unwrap_or("(no row)"),
            );
        }
        if t.more_differences > 0 {
            let _ = writeln!(out, "{}  … and {} more", t.target, t.more_differences);
        }
        for k in &t.unsettled {
            let _ = writeln!(
                out,
                "{}  {k}  still changing at the source (not compared)",
                t.target
            );
        }
    }
    out
}
