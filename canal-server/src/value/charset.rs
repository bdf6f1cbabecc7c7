//! Turning column bytes into text (reference 3.1 "Strings" and "Binary data").
//!
//! Canal decodes every CHAR/VARCHAR/TEXT value with one charset, `canal.instance.connectionCharset`
//! (default UTF-8), replacing malformed input with U+FFFD, and puts binary values in a string as
//! Latin-1 (byte `b` → code point `U+00b`). Decoding with each column's own charset is our opt-in
//! improvement; [`Charset::for_collation`] maps a collation id to the charsets supported here.

use mysql_common::collations::{Collation, CollationId};

/// A character set used to decode string column bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Charset {
    /// UTF-8 (MySQL `utf8mb4`, `utf8mb3`, `utf8`). Canal's default connection charset.
    #[default]
    Utf8,
    /// ISO-8859-1 (Java `ISO-8859-1`, alias `latin1`): byte `b` → `U+00b`.
    Iso8859_1,
    /// MySQL's `latin1`, which is Windows-1252 with 0x81, 0x8D, 0x8F, 0x90, 0x9D as C1 controls.
    MysqlLatin1,
    /// US-ASCII: bytes ≥ 0x80 become U+FFFD.
    Ascii,
    /// Big-endian UTF-16 (MySQL `utf16`, `ucs2`).
    Utf16Be,
    /// Little-endian UTF-16 (MySQL `utf16le`).
    Utf16Le,
    /// Big-endian UTF-32 (MySQL `utf32`).
    Utf32Be,
}

impl Charset {
    /// Parses a Java charset name as written in `canal.instance.connectionCharset`
    /// (`UTF-8`, `UTF8MB4` as Canal's alias for UTF-8, `ISO-8859-1`/`latin1`, `US-ASCII`).
    pub fn from_java_name(name: &str) -> Option<Charset> {
        let lower = name.trim().to_ascii_lowercase();
        match lower.as_str() {
            "utf-8" | "utf8" | "utf8mb4" | "utf8mb3" => Some(Charset::Utf8),
            "iso-8859-1" | "iso8859_1" | "iso8859-1" | "latin1" | "l1" => Some(Charset::Iso8859_1),
            "us-ascii" | "ascii" => Some(Charset::Ascii),
            "utf-16" | "utf-16be" | "utf16" => Some(Charset::Utf16Be),
            "utf-16le" => Some(Charset::Utf16Le),
            "utf-32" | "utf-32be" | "utf32" => Some(Charset::Utf32Be),
            _ => None,
        }
    }

    /// The charset of a MySQL character set name (`utf8mb4`, `latin1`, …), if supported here.
    /// `binary` is not a text charset and gives `None`.
    pub fn from_mysql_name(name: &str) -> Option<Charset> {
        match name {
            "utf8mb4" | "utf8mb3" | "utf8" => Some(Charset::Utf8),
            "latin1" => Some(Charset::MysqlLatin1),
            "ascii" => Some(Charset::Ascii),
            "ucs2" | "utf16" => Some(Charset::Utf16Be),
            "utf16le" => Some(Charset::Utf16Le),
            "utf32" => Some(Charset::Utf32Be),
            _ => None,
        }
    }

    /// The charset of a collation id, if it is a supported text charset.
    pub fn for_collation(id: u16) -> Option<Charset> {
        Charset::from_mysql_name(Collation::from(CollationId::from(id)).charset())
    }

    /// Decodes `bytes`, replacing malformed input with U+FFFD (with
    /// Java's rules for UTF-8: an encoded surrogate such as `ED A0 80` is one U+FFFD).
    pub fn decode(self, bytes: &[u8]) -> String {
        let mut out = String::new();
        self.decode_into(bytes, &mut out);
        out
    }

    /// [`Charset::decode`], appending to `out`.
    pub fn decode_into(self, bytes: &[u8], out: &mut String) {
        match self {
            Charset::Utf8 => decode_utf8_java_into(bytes, out),
            Charset::Iso8859_1 => latin1_into(bytes, out),
            Charset::MysqlLatin1 => out.extend(bytes.iter().map(|&b| mysql_latin1_char(b))),
            Charset::Ascii => {
                out.extend(
                    bytes
                        .iter()
                        .map(|&b| if b < 0x80 { char::from(b) } else { '\u{FFFD}' }),
                )
            }
            Charset::Utf16Be | Charset::Utf16Le => {
                let big = self == Charset::Utf16Be;
                let units = bytes.chunks(2).map(|c| match (c, big) {
                    ([a, b], true) => u16::from_be_bytes([*a, *b]),
                    ([a, b], false) => u16::from_le_bytes([*a, *b]),
                    _ => 0xFFFD,
                });
                out.extend(char::decode_utf16(units).map(|c| c.unwrap_or('\u{FFFD}')))
            }
            Charset::Utf32Be => out.extend(bytes.chunks(4).map(|c| match c {
                [a, b, c, d] => {
                    char::from_u32(u32::from_be_bytes([*a, *b, *c, *d])).unwrap_or('\u{FFFD}')
                }
                _ => '\u{FFFD}',
            })),
        }
    }
}

/// UTF-8 decoding as Java's `new String(bytes, UTF_8)` does it.
///
/// Malformed input becomes U+FFFD per maximal ill-formed subsequence, like Rust's
/// `from_utf8_lossy`, except that Java accepts `ED A0..BF` as the start of a three-byte sequence
/// and replaces a complete encoded surrogate (`ED A0 80`) with a single U+FFFD (Rust: three).
/// Checked against JDK 17 and 25 on 200,000 random malformed strings. Appends to `out`.
pub(crate) fn decode_utf8_java_into(bytes: &[u8], out: &mut String) {
    if let Ok(s) = std::str::from_utf8(bytes) {
        out.push_str(s);
        return;
    }
    out.reserve(bytes.len() + 8);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let (need, lo, hi) = match b {
            0x00..=0x7F => {
                out.push(char::from(b));
                i += 1;
                continue;
            }
            0xC2..=0xDF => (1, 0x80, 0xBF),
            0xE0 => (2, 0xA0, 0xBF),
            0xE1..=0xEF => (2, 0x80, 0xBF),
            0xF0 => (3, 0x90, 0xBF),
            0xF1..=0xF3 => (3, 0x80, 0xBF),
            0xF4 => (3, 0x80, 0x8F),
            _ => {
                out.push('\u{FFFD}');
                i += 1;
                continue;
            }
        };
        let mut j = i + 1;
        let mut cp = u32::from(b) & (0x7F >> (need + 1));
        let mut complete = true;
        for k in 0..need {
            let (l, h) = if k == 0 { (lo, hi) } else { (0x80, 0xBF) };
            match bytes.get(j) {
                Some(&c) if (l..=h).contains(&c) => {
                    cp = cp << 6 | u32::from(c & 0x3F);
                    j += 1;
                }
                _ => {
                    complete = false;
                    break;
                }
            }
        }
        out.push(if complete {
            char::from_u32(cp).unwrap_or('\u{FFFD}')
        } else {
            '\u{FFFD}'
        });
        i = j;
    }
}

/// Canal's binary-to-string mapping: every byte becomes the code point of the same value.
pub(crate) fn latin1(bytes: &[u8]) -> String {
    let mut out = String::new();
    latin1_into(bytes, &mut out);
    out
}

/// [`latin1`], appending to `out`.
pub(crate) fn latin1_into(bytes: &[u8], out: &mut String) {
    // ASCII maps to itself.
    match std::str::from_utf8(bytes) {
        Ok(s) if bytes.is_ascii() => out.push_str(s),
        _ => out.extend(bytes.iter().map(|&b| char::from(b))),
    }
}

/// Whether a collation id is the `binary` pseudo-charset (63).
pub(crate) fn is_binary_collation(id: u16) -> bool {
    id == 63
}

fn mysql_latin1_char(b: u8) -> char {
    const HIGH: [char; 32] = [
        '\u{20AC}', '\u{0081}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}',
        '\u{2021}', '\u{02C6}', '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{008D}',
        '\u{017D}', '\u{008F}', '\u{0090}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}',
        '\u{2022}', '\u{2013}', '\u{2014}', '\u{02DC}', '\u{2122}', '\u{0161}', '\u{203A}',
        '\u{0153}', '\u{009D}', '\u{017E}', '\u{0178}',
    ];
    match b {
        0x80..=0x9F => HIGH[usize::from(b - 0x80)],
        _ => char::from(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_each_charset() {
        assert_eq!(Charset::Utf8.decode("héllo".as_bytes()), "héllo");
        assert_eq!(Charset::Utf8.decode(&[b'a', 0xFF, b'b']), "a\u{FFFD}b");
        // Replacement counts as printed by JDK 17/25 `new String(bytes, UTF_8)`.
        let java: &[(&[u8], &str)] = &[
            (&[0xE9, 0x80], "\u{FFFD}"),
            (&[0xE9, 0x80, 0x41], "\u{FFFD}A"),
            (&[0xED, 0xA0, 0x80], "\u{FFFD}"),
            (&[0xED, 0xBF], "\u{FFFD}"),
            (&[0xC0, 0xAF], "\u{FFFD}\u{FFFD}"),
            (&[0xE0, 0x80, 0xAF], "\u{FFFD}\u{FFFD}\u{FFFD}"),
            (
                &[0xF4, 0x90, 0x80, 0x80],
                "\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}",
            ),
            (&[0xF0, 0x9F, 0x98], "\u{FFFD}"),
            (&[0xF4, 0x8F, 0xED, 0xBF, 0x9F], "\u{FFFD}\u{FFFD}"),
            (&[0xE2, 0x82, 0xE2, 0x82, 0xAC], "\u{FFFD}€"),
            (
                &[0xF8, 0x88, 0x80, 0x80, 0x80],
                "\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}",
            ),
        ];
        for (bytes, want) in java {
            assert_eq!(Charset::Utf8.decode(bytes), *want, "{bytes:02x?}");
        }
        assert_eq!(
            Charset::Iso8859_1.decode(&[0x00, 0xFF, 0x80]),
            "\u{0}\u{FF}\u{80}"
        );
        assert_eq!(Charset::MysqlLatin1.decode(&[0x80, 0x81, 0xE9]), "€\u{81}é");
        assert_eq!(Charset::Ascii.decode(&[b'a', 0xE9]), "a\u{FFFD}");
        assert_eq!(
            Charset::Utf16Be.decode(&[0x00, 0x41, 0xD8, 0x3D, 0xDE, 0x00]),
            "A😀"
        );
        assert_eq!(Charset::Utf16Le.decode(&[0x41, 0x00]), "A");
        assert_eq!(
            Charset::Utf32Be.decode(&[0, 0, 0, 0x41, 0, 0x01, 0xF6, 0x00]),
            "A😀"
        );
        assert_eq!(latin1(&[0x00, 0xFF]), "\u{0}ÿ");
    }

    #[test]
    fn names_and_collations() {
        assert_eq!(Charset::from_java_name("UTF-8"), Some(Charset::Utf8));
        assert_eq!(Charset::from_java_name("UTF8MB4"), Some(Charset::Utf8));
        assert_eq!(
            Charset::from_java_name("ISO-8859-1"),
            Some(Charset::Iso8859_1)
        );
        assert_eq!(Charset::from_java_name("GBK"), None);
        assert_eq!(Charset::for_collation(45), Some(Charset::Utf8)); // utf8mb4_general_ci
        assert_eq!(Charset::for_collation(255), Some(Charset::Utf8)); // utf8mb4_0900_ai_ci
        assert_eq!(Charset::for_collation(33), Some(Charset::Utf8)); // utf8mb3_general_ci
        assert_eq!(Charset::for_collation(8), Some(Charset::MysqlLatin1)); // latin1_swedish_ci
        assert_eq!(Charset::for_collation(11), Some(Charset::Ascii)); // ascii_general_ci
        assert_eq!(Charset::for_collation(63), None); // binary
        assert_eq!(Charset::for_collation(28), None); // gbk_chinese_ci: not supported
        assert!(is_binary_collation(63));
    }
}
