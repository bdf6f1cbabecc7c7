//! Canal's table filters: comma-separated regexes, each anchored and matched case-insensitively
//! against the lower-cased `schema.table`; the black list wins.

use regex::{Regex, RegexBuilder};

/// A pattern that does not compile.
#[derive(Debug, thiserror::Error)]
#[error("invalid table filter {pattern:?}: {source}")]
pub struct FilterError {
    /// The offending comma-separated element.
    pub pattern: String,
    /// Why it does not compile.
    #[source]
    pub source: regex::Error,
}

/// A comma-separated list of table regexes (`canal.instance.filter.regex` syntax).
///
/// Commas inside `{}`, `[]` and `()` belong to the regex. Each element must match the whole
/// lower-cased `schema.table`. An empty list matches every table.
#[derive(Debug, Clone)]
pub struct RegexList {
    source: String,
    regex: Option<Regex>,
}

impl RegexList {
    /// Compiles `text`; `None` or blank means "everything".
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        let mut parts: Vec<String> = split_top_level(text)
            .into_iter()
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        if parts.is_empty() {
            return Ok(Self {
                source: text.to_string(),
                regex: None,
            });
        }
        // Canal tries the longest pattern first; with an alternation of anchored groups the order
        // does not change what matches, but it keeps behaviour identical for pathological cases.
        parts.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in &parts {
            RegexBuilder::new(&format!("^(?:{p})$"))
                .case_insensitive(true)
                .build()
                .map_err(|source| FilterError {
                    pattern: p.clone(),
                    source,
                })?;
        }
        let joined = parts
            .iter()
            .map(|p| format!("(?:{p})"))
            .collect::<Vec<_>>()
            .join("|");
        let regex = RegexBuilder::new(&format!("^(?:{joined})$"))
            .case_insensitive(true)
            .build()
            .map_err(|source| FilterError {
                pattern: text.to_string(),
                source,
            })?;
        Ok(Self {
            source: text.to_string(),
            regex: Some(regex),
        })
    }

    /// Whether this list is empty (matches everything as an allow list, nothing as a deny list).
    pub fn is_empty(&self) -> bool {
        self.regex.is_none()
    }

    /// Whether `name` (already `schema.table`) matches; an empty list matches everything.
    pub fn matches(&self, name: &str) -> bool {
        match &self.regex {
            None => true,
            Some(r) => r.is_match(&name.to_lowercase()),
        }
    }

    /// The text it was built from.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '{' | '[' | '(' => depth += 1,
            '}' | ']' | ')' => depth -= 1,
            ',' if depth <= 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// The allow and deny lists of a destination. `accepts` is what the parser asks per table.
#[derive(Debug, Clone)]
pub struct TableFilter {
    allow: RegexList,
    deny: Option<RegexList>,
}

impl TableFilter {
    /// Builds a filter from Canal's `filter` and `black_filter` texts.
    pub fn new(filter: &str, black_filter: &str) -> Result<Self, FilterError> {
        let deny = RegexList::parse(black_filter)?;
        Ok(Self {
            allow: RegexList::parse(filter)?,
            deny: (!deny.is_empty()).then_some(deny),
        })
    }

    /// A filter that accepts every table.
    pub fn accept_all() -> Self {
        Self {
            allow: RegexList {
                source: String::new(),
                regex: None,
            },
            deny: None,
        }
    }

    /// Whether rows and DDL of `schema.table` pass: allowed and not denied.
    pub fn accepts(&self, schema: &str, table: &str) -> bool {
        let name = format!("{schema}.{table}");
        self.allow.matches(&name) && !self.deny.as_ref().is_some_and(|d| d.matches(&name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canal_semantics() {
        let f = TableFilter::new(r"shop\..*,crm\.user_\d{1,3}", r"shop\.secret.*").unwrap();
        assert!(f.accepts("shop", "orders"));
        assert!(
            f.accepts("SHOP", "Orders"),
            "case-insensitive on lower-cased names"
        );
        assert!(!f.accepts("shop", "secret_keys"), "black list wins");
        assert!(f.accepts("crm", "user_12"));
        assert!(!f.accepts("crm", "user_1234"), "anchored at both ends");
        assert!(!f.accepts("crm", "users"));
        assert!(!f.accepts("other", "t"));
    }

    #[test]
    fn empty_filter_matches_all_and_empty_black_list_blocks_nothing() {
        let f = TableFilter::new("", "").unwrap();
        assert!(f.accepts("a", "b"));
        let f = TableFilter::new(r".*\..*", "").unwrap();
        assert!(f.accepts("x", "y"));
    }

    #[test]
    fn commas_inside_groups_belong_to_the_regex() {
        let l = RegexList::parse(r"db\.t(1,2)?,db\.u{1,2}").unwrap();
        assert!(l.matches("db.t1,2"));
        assert!(l.matches("db.uu"));
    }

    #[test]
    fn bad_regex_is_an_error_naming_it() {
        let e = TableFilter::new(r"db\.(", "").unwrap_err();
        assert!(e.to_string().contains(r"db\.("), "{e}");
    }
}
