//! A two-way channel's pipelines must mirror each other: the reverse pipeline reads the forward
//! one's target and writes its source, over the same tables with the names swapped and the same
//! column views. [`check_mirror`] says which key is wrong when they do not.

use regex::Regex;

use super::{err, ModelError, Pipeline, TableMapping};

/// Checks that `reverse` is the mirror of `forward`; errors name the `reverse.*` key to fix.
pub fn check_mirror(forward: &Pipeline, reverse: &Pipeline) -> Result<(), ModelError> {
    if reverse.id == forward.id {
        return Err(err(
            "reverse.id",
            format!("must differ from pipeline.id ({})", forward.id),
        ));
    }
    if forward.source_site() == forward.target_site() {
        return Err(err(
            "pipeline.target.site",
            format!(
                "a two-way channel joins two sites, but source and target are both site {:?}",
                forward.source_site()
            ),
        ));
    }
    for (key, got, want, what) in [
        (
            "reverse.source",
            reverse.source_site(),
            forward.target_site(),
            "pipeline.target",
        ),
        (
            "reverse.target",
            reverse.target_site(),
            forward.source_site(),
            "pipeline.source",
        ),
    ] {
        if got != want {
            return Err(err(
                format!("{key}.site"),
                format!(
                    "is site {got:?} but must be {what}'s site {want:?} (give `site` on both \
                     pipelines, or the same address)"
                ),
            ));
        }
    }
    if reverse.tables.len() != forward.tables.len() {
        return Err(err(
            "reverse.tables",
            format!(
                "has {} mappings but pipeline.tables has {}: each must mirror the one at its index",
                reverse.tables.len(),
                forward.tables.len()
            ),
        ));
    }
    for (i, (f, r)) in forward.tables.iter().zip(&reverse.tables).enumerate() {
        check_table(i, f, r)?;
    }
    Ok(())
}

fn anchored(source: &str) -> Option<Regex> {
    Regex::new(&format!("^(?:{source})$")).ok()
}

/// The plain `schema` and `table` parts of a mapping's source regex (`shop\.user`), if both are.
fn plain_parts(source: &str) -> Option<(&str, &str)> {
    let (s, t) = source.split_once(r"\.")?;
    let plain = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    (plain(s) && plain(t)).then_some((s, t))
}

fn renames(t: &TableMapping) -> bool {
    t.target_schema.is_some() || t.target_table.is_some()
}

fn check_table(i: usize, f: &TableMapping, r: &TableMapping) -> Result<(), ModelError> {
    let key = |k: &str| format!("reverse.tables[{i}].{k}");
    if !renames(f) {
        // Same names on both sites: the reverse takes the very same tables.
        if r.source != f.source || renames(r) {
            return Err(err(
                key("source"),
                format!(
                    "must mirror pipeline.tables[{i}] ({:?}, same names on both sites): the same \
                     source regex and no target_schema / target_table",
                    f.source
                ),
            ));
        }
    } else {
        // Renamed: only plain names can be mirrored with certainty.
        let Some((fs, ft)) = plain_parts(&f.source) else {
            return Err(err(
                format!("pipeline.tables[{i}].source"),
                "a renaming mapping of a two-way channel must name one table (schema\\.table)",
            ));
        };
        let (ts, tt) = (
            f.target_schema.as_deref().unwrap_or(fs),
            f.target_table.as_deref().unwrap_or(ft),
        );
        let back_ok = plain_parts(&r.source) == Some((ts, tt))
            && r.target_schema.as_deref().unwrap_or(ts) == fs
            && r.target_table.as_deref().unwrap_or(tt) == ft
            && anchored(&r.source).is_some();
        if !back_ok {
            return Err(err(
                key("source"),
                format!(
                    "must mirror pipeline.tables[{i}] ({fs}.{ft} → {ts}.{tt}): source = \
                     \"{ts}\\\\.{tt}\" mapped back to {fs}.{ft}"
                ),
            ));
        }
    }
    if (r.conflict, &r.version_column) != (f.conflict, &f.version_column) {
        return Err(err(
            key("conflict"),
            format!(
                "conflict and version_column must equal pipeline.tables[{i}]'s: both sites \
                 resolve alike"
            ),
        ));
    }
    if r.include_columns != f.include_columns {
        return Err(err(
            key("include_columns"),
            format!("must equal pipeline.tables[{i}].include_columns"),
        ));
    }
    if r.exclude_columns != f.exclude_columns {
        return Err(err(
            key("exclude_columns"),
            format!("must equal pipeline.tables[{i}].exclude_columns"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Channel;

    const TWO_WAY: &str = include_str!("../../../config/channel-two-way.toml");

    #[test]
    fn the_example_mirrors_and_runs_both_directions() {
        let c = Channel::from_toml(TWO_WAY).unwrap();
        let dirs = c.directions();
        assert_eq!(dirs.len(), 2);
        assert_eq!(dirs[0].pipeline.id, c.pipeline.id);
        let r = c.reverse.as_ref().unwrap();
        assert_eq!(dirs[1].pipeline.id, r.id);
        assert_eq!(dirs[1].reverse.as_ref().unwrap().id, c.pipeline.id);
        assert_eq!(c.pipeline.source_site(), r.target_site());
        assert!(
            dirs.iter().all(|d| d.priority_site() == "hangzhou"),
            "one priority site for both directions"
        );
    }

    #[test]
    fn a_reverse_that_does_not_mirror_names_the_key() {
        for (from, to, key) in [
            ("id = 12", "id = 11", "reverse.id"),
            (
                "site = \"hangzhou\"\nusername = \"otter\"\npassword = \"env:OTTER_HZ_PASSWORD\"\n\n[[reverse",
                "site = \"singapore\"\nusername = \"otter\"\npassword = \"env:OTTER_HZ_PASSWORD\"\n\n[[reverse",
                "reverse.target.site",
            ),
            (
                "[[reverse.tables]]\nsource = \"shop\\\\.user\"",
                "[[reverse.tables]]\nsource = \"shop\\\\.users\"",
                "reverse.tables[0].source",
            ),
            (
                "[[reverse.tables]]\nsource = \"shop\\\\.user\"\nexclude_columns = [\"password_hash\"]",
                "[[reverse.tables]]\nsource = \"shop\\\\.user\"\nexclude_columns = []",
                "reverse.tables[0].exclude_columns",
            ),
        ] {
            let bad = TWO_WAY.replacen(from, to, 1);
            assert_ne!(bad, TWO_WAY, "{from:?} not in the example");
            let e = Channel::from_toml(&bad).unwrap_err();
            assert_eq!(e.key, key, "{e}");
        }
    }
}
