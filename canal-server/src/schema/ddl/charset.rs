//! Character sets: a `CHARACTER SET` / `COLLATE` spec as written, name normalisation, the
//! character set of a collation and bytes per character, as MariaDB 10.11 defines them.

/// `[DEFAULT] CHARACTER SET x` / `COLLATE y` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct CharsetSpec {
    pub(super) charset: Option<CharsetName>,
    pub(super) collate: Option<String>,
}

/// The character set named by `CHARACTER SET x`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CharsetName {
    Named(String),
    /// `CHARACTER SET DEFAULT`: the enclosing default.
    Default,
}

impl CharsetSpec {
    /// The character set this spec selects, `default` for `CHARACTER SET DEFAULT`, `None` when the
    /// spec names neither a charset nor a collation.
    pub(super) fn resolve(&self, default: impl FnOnce() -> String) -> Option<String> {
        match &self.charset {
            Some(CharsetName::Named(n)) => Some(normalize_charset(n)),
            Some(CharsetName::Default) => Some(default()),
            None => self.collate.as_deref().map(charset_of_collation),
        }
    }
}

/// Lower case; `utf8` is `utf8mb3` (MariaDB 10.6+ with the default `old_mode`).
pub(super) fn normalize_charset(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if lower == "utf8" {
        "utf8mb3".to_string()
    } else {
        lower
    }
}

/// The character set a collation belongs to: the part before the first `_`.
pub(super) fn charset_of_collation(collation: &str) -> String {
    let lower = collation.to_ascii_lowercase();
    normalize_charset(lower.split('_').next().unwrap_or(&lower))
}

/// Maximum bytes per character; unknown character sets count as 4 (the largest).
pub(crate) fn mbmaxlen(charset: &str) -> u64 {
    match charset {
        "latin1" | "latin2" | "latin5" | "latin7" | "ascii" | "binary" | "cp1250" | "cp1251"
        | "cp1256" | "cp1257" | "cp850" | "cp852" | "cp866" | "dec8" | "hp8" | "koi8r"
        | "koi8u" | "swe7" | "greek" | "hebrew" | "armscii8" | "geostd8" | "keybcs2" | "macce"
        | "macroman" | "tis620" => 1,
        "gbk" | "big5" | "sjis" | "cp932" | "euckr" | "gb2312" | "ucs2" => 2,
        "utf8mb3" | "ujis" | "eucjpms" => 3,
        _ => 4,
    }
}
