//! DECIMAL text (reference 3.3).
//!
//! mysql_common decodes a NEWDECIMAL into its plain text with exactly `scale` fractional digits
//! (`"1.00"`, `"-0.50"`, `"15"`). Canal decodes the same binary per 9-digit storage group and
//! drops a trailing partial group whose value is zero, then prints `BigDecimal.toPlainString()`:
//!
//! * full 9-digit fractional groups are always printed;
//! * the trailing `scale % 9` digits are printed only if they are not all zero;
//! * if no fractional digit is left, a single `0` is printed (`1.00` → `1.0`);
//! * `BigDecimal` has no negative zero, so an all-zero value prints without `-`.

/// Rewrites mysql_common's DECIMAL text (`scale` fractional digits) as Canal prints it, or
/// exactly as stored when `exact_scale` is set. `precision`/`scale` come from the column
/// metadata; text that does not fit them is rejected as malformed.
pub(crate) fn canal_decimal(
    text: &str,
    precision: usize,
    scale: usize,
    exact_scale: bool,
) -> Result<String, &'static str> {
    let mut out = String::with_capacity(text.len() + 2);
    canal_decimal_into(&mut out, text, precision, scale, exact_scale)?;
    Ok(out)
}

/// [`canal_decimal`], appending to `out` (nothing is appended on error).
pub(crate) fn canal_decimal_into(
    out: &mut String,
    text: &str,
    precision: usize,
    scale: usize,
    exact_scale: bool,
) -> Result<(), &'static str> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int_part, frac_part) = match body.split_once('.') {
        Some((i, f)) => (i, f),
        None => (body, ""),
    };
    if int_part.is_empty() || !all_digits(int_part) || !all_digits(frac_part) {
        return Err("not a plain decimal number");
    }
    if frac_part.len() != scale {
        return Err("fractional digits do not match the column scale");
    }
    let int_part = int_part.trim_start_matches('0');
    if int_part.len() > precision.saturating_sub(scale) {
        return Err("integer digits exceed the column precision");
    }

    let frac_shown = if exact_scale {
        frac_part
    } else {
        let full = scale / 9 * 9;
        if frac_part[full..].bytes().any(|b| b != b'0') {
            frac_part
        } else {
            &frac_part[..full]
        }
    };

    let is_zero = int_part.is_empty() && frac_part.bytes().all(|b| b == b'0');
    if negative && !is_zero {
        out.push('-');
    }
    out.push_str(if int_part.is_empty() { "0" } else { int_part });
    if scale > 0 {
        out.push('.');
        out.push_str(if frac_shown.is_empty() {
            "0"
        } else {
            frac_shown
        });
    }
    Ok(())
}

/// Bytes of a NEWDECIMAL(`precision`, `scale`) value in a row image (MySQL
/// `decimal_bin_size`); `precision` ≤ 65 and `scale` ≤ `precision` (checked TABLE_MAP metadata).
pub(crate) fn decimal_bin_size(precision: usize, scale: usize) -> usize {
    let intg = precision - scale;
    (intg / DIG_PER_DEC + scale / DIG_PER_DEC) * 4
        + DIG_TO_BYTES[intg % DIG_PER_DEC]
        + DIG_TO_BYTES[scale % DIG_PER_DEC]
}

const DIG_PER_DEC: usize = 9;
const DIG_TO_BYTES: [usize; DIG_PER_DEC + 1] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];
const POWERS_10: [i32; DIG_PER_DEC + 1] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
];

/// The text mysql_common 0.37 makes of a NEWDECIMAL row-image value
/// (`Decimal::read_bin(…, keep_prec = false)` then `Display`: exactly `scale` fraction digits),
/// without allocating. `raw` holds exactly [`decimal_bin_size`] bytes. Corrupt bytes give the
/// same text mysql_common gives in release builds (it wraps where a debug build would panic).
pub(crate) fn mysql_decimal_text(raw: &[u8], precision: usize, scale: usize) -> DecimalText {
    let mut out = DecimalText {
        buf: [0; 160],
        len: 0,
    };
    let mut bin = [0u8; 32];
    let bin = &mut bin[..raw.len().min(32)];
    bin.copy_from_slice(&raw[..bin.len()]);
    if let Some(first) = bin.first_mut() {
        *first ^= 0x80;
    }
    let mask: i32 = if bin.first().is_some_and(|b| b & 0x80 != 0) {
        -1
    } else {
        0
    };
    let mut at = 0;
    // A big-endian signed group of `len` bytes, XORed with the sign mask.
    let mut read = |len: usize| -> i32 {
        let b = bin.get(at..at + len).unwrap_or(&[]);
        at += len;
        let v = match *b {
            [a] => i32::from(a as i8),
            [a, b] => i32::from(i16::from_be_bytes([a, b])),
            [a, b, c] => i32::from_be_bytes([a, b, c, 0]) >> 8,
            [a, b, c, d] => i32::from_be_bytes([a, b, c, d]),
            _ => 0,
        };
        v ^ mask
    };
    let intg = precision - scale;
    let (prefix_len, intg_full) = (intg % DIG_PER_DEC, intg / DIG_PER_DEC);
    let (suffix_len, frac_full) = (scale % DIG_PER_DEC, scale / DIG_PER_DEC);
    let mut groups = [0i32; 16];
    let mut n = 0;
    let mut out_intg = intg;
    let mut out_frac = scale;
    let mut sign = mask != 0;
    let mut trimmed = false;
    if prefix_len > 0 {
        let x = read(DIG_TO_BYTES[prefix_len]);
        if x == 0 && !trimmed {
            out_intg -= prefix_len;
        } else {
            trimmed = true;
            groups[n] = x;
            n += 1;
        }
    }
    for _ in 0..intg_full {
        let x = read(4);
        if x == 0 && !trimmed {
            out_intg -= DIG_PER_DEC;
        } else {
            trimmed = true;
            groups[n] = x;
            n += 1;
        }
    }
    for _ in 0..frac_full {
        groups[n] = read(4);
        n += 1;
    }
    if suffix_len > 0 {
        groups[n] =
            read(DIG_TO_BYTES[suffix_len]).wrapping_mul(POWERS_10[DIG_PER_DEC - suffix_len]);
        n += 1;
    }
    if out_intg == 0 && out_frac == 0 {
        out_intg = 1;
        out_frac = 0;
        sign = false;
        groups[0] = 0;
        n = 1;
    }
    let groups = &groups[..n];

    // Display.
    let prefix_len = out_intg % DIG_PER_DEC;
    let suffix_len = out_frac % DIG_PER_DEC;
    let mut intg = out_intg;
    if sign {
        out.push('-');
    }
    let mut i = 0;
    while i < groups.len() && intg > 0 {
        let x = groups[i];
        i += 1;
        if prefix_len > 0 && i == 1 {
            push_padded_i32(&mut out, x, 0);
            intg -= prefix_len;
        } else {
            push_padded_i32(&mut out, x, if i == 1 { 0 } else { DIG_PER_DEC });
            intg = intg.wrapping_sub(DIG_PER_DEC);
        }
    }
    if out_intg == 0 {
        out.push('0');
    }
    if i < groups.len() {
        out.push('.');
    }
    while i < groups.len() {
        let x = groups[i];
        i += 1;
        if i == groups.len() && suffix_len > 0 {
            push_padded_i32(
                &mut out,
                x / POWERS_10[DIG_PER_DEC - suffix_len],
                suffix_len,
            );
        } else {
            push_padded_i32(&mut out, x, DIG_PER_DEC);
        }
    }
    out
}

/// Canal's text of a NEWDECIMAL row-image value straight from its bytes: what
/// [`canal_decimal`] makes of [`mysql_decimal_text`], without the intermediate text. Returns
/// `false` (nothing appended) unless every digit group is in range, as MySQL writes them; the
/// caller then takes the long way, which reports the error.
pub(crate) fn canal_decimal_from_bin(
    out: &mut String,
    raw: &[u8],
    precision: usize,
    scale: usize,
    exact_scale: bool,
) -> bool {
    if precision < scale || precision > 65 || raw.len() != decimal_bin_size(precision, scale) {
        return false;
    }
    let negative = raw.first().is_some_and(|b| b & 0x80 == 0);
    let mask: u8 = if negative { 0xff } else { 0 };
    let mut at = 0;
    // The next group of `digits` digits, or `None` if out of range.
    let mut group = |digits: usize| -> Option<u32> {
        let len = DIG_TO_BYTES[digits];
        let b = raw.get(at..at + len)?;
        let first = at == 0;
        at += len;
        let mut v: u32 = 0;
        for (k, &x) in b.iter().enumerate() {
            let x = if first && k == 0 { x ^ 0x80 } else { x } ^ mask;
            v = v << 8 | u32::from(x);
        }
        (v < POWERS_10[digits] as u32).then_some(v)
    };
    let intg = precision - scale;
    let mut int_text = DecimalText {
        buf: [0; 160],
        len: 0,
    };
    let mut is_zero = true;
    let int_groups = std::iter::once(intg % DIG_PER_DEC)
        .filter(|d| *d > 0)
        .chain(std::iter::repeat_n(DIG_PER_DEC, intg / DIG_PER_DEC));
    for digits in int_groups {
        let Some(v) = group(digits) else {
            return false;
        };
        if int_text.len == 0 {
            if v != 0 {
                push_padded_i32(&mut int_text, v as i32, 0);
                is_zero = false;
            }
        } else {
            push_padded_i32(&mut int_text, v as i32, DIG_PER_DEC);
        }
    }
    let mut frac_text = DecimalText {
        buf: [0; 160],
        len: 0,
    };
    for _ in 0..scale / DIG_PER_DEC {
        let Some(v) = group(DIG_PER_DEC) else {
            return false;
        };
        is_zero &= v == 0;
        push_padded_i32(&mut frac_text, v as i32, DIG_PER_DEC);
    }
    let suffix = scale % DIG_PER_DEC;
    if suffix > 0 {
        let Some(v) = group(suffix) else {
            return false;
        };
        is_zero &= v == 0;
        // Canal drops a trailing partial group that is zero.
        if exact_scale || v != 0 {
            push_padded_i32(&mut frac_text, v as i32, suffix);
        }
    }
    if negative && !is_zero {
        out.push('-');
    }
    out.push_str(if int_text.len == 0 {
        "0"
    } else {
        int_text.as_str()
    });
    if scale > 0 {
        out.push('.');
        out.push_str(if frac_text.len == 0 {
            "0"
        } else {
            frac_text.as_str()
        });
    }
    true
}

/// The text of [`mysql_decimal_text`], kept on the stack (at most 16 groups of 11 characters).
pub(crate) struct DecimalText {
    buf: [u8; 160],
    len: usize,
}

impl DecimalText {
    fn push(&mut self, c: char) {
        // Only '-', '.' and digits are written.
        if let Some(b) = self.buf.get_mut(self.len) {
            *b = c as u8;
            self.len += 1;
        }
    }

    fn extend(&mut self, chars: impl Iterator<Item = char>) {
        chars.for_each(|c| self.push(c));
    }

    /// The text.
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

/// `format!("{x:0width$}")`: the sign counts towards the width.
fn push_padded_i32(out: &mut DecimalText, x: i32, width: usize) {
    let mut digits = [0u8; 12];
    let mut i = digits.len();
    let mut v = i64::from(x).unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let len = digits.len() - i + usize::from(x < 0);
    if x < 0 {
        out.push('-');
    }
    out.extend(std::iter::repeat_n('0', width.saturating_sub(len)));
    out.extend(digits[i..].iter().map(|&d| char::from(d)));
}

fn all_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// mysql_common's text for `raw`, `None` where its debug build would panic: the trailing
    /// partial fraction group of corrupt bytes overflowing i32 when scaled (release builds
    /// wrap, as [`mysql_decimal_text`] does).
    fn mysql_common_text(raw: &[u8], precision: usize, scale: usize) -> Option<String> {
        let suffix = scale % DIG_PER_DEC;
        if suffix > 0 {
            let len = DIG_TO_BYTES[suffix];
            let b = &raw[raw.len() - len..];
            let mut x = match *b {
                [a] => i32::from(a as i8),
                [a, b] => i32::from(i16::from_be_bytes([a, b])),
                [a, b, c] => i32::from_be_bytes([a, b, c, 0]) >> 8,
                [a, b, c, d] => i32::from_be_bytes([a, b, c, d]),
                _ => unreachable!(),
            };
            if raw.len() == len {
                // The sign bit is flipped in the first byte.
                x = match *b {
                    [a] => i32::from((a ^ 0x80) as i8),
                    [a, b] => i32::from(i16::from_be_bytes([a ^ 0x80, b])),
                    [a, b, c] => i32::from_be_bytes([a ^ 0x80, b, c, 0]) >> 8,
                    [a, b, c, d] => i32::from_be_bytes([a ^ 0x80, b, c, d]),
                    _ => unreachable!(),
                };
            }
            let mask = if (raw[0] ^ 0x80) & 0x80 != 0 { -1 } else { 0 };
            (x ^ mask).checked_mul(POWERS_10[DIG_PER_DEC - suffix])?;
        }
        mysql_common::binlog::decimal::Decimal::read_bin(raw, precision, scale, false)
            .map(|d| d.to_string())
            .ok()
    }

    #[test]
    fn canal_text_from_bytes_matches_the_long_way() {
        let mut seed = 0x0bad_5eed_1234_5678u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut fast = 0;
        for precision in 1..=65usize {
            for scale in 0..=precision.min(30) {
                let size = decimal_bin_size(precision, scale);
                for round in 0..40 {
                    // Valid groups (most rounds) or random bytes, either sign; zero often.
                    let intg = precision - scale;
                    let mut groups = Vec::new();
                    if intg % 9 > 0 {
                        groups.push(intg % 9);
                    }
                    groups.extend(std::iter::repeat_n(9, intg / 9 + scale / 9));
                    if scale % 9 > 0 {
                        groups.push(scale % 9);
                    }
                    let mut raw = Vec::new();
                    for d in &groups {
                        let r = next();
                        let v = match round % 4 {
                            0 => 0,
                            1 => r % 10u64.pow(*d as u32),
                            2 => 10u64.pow(*d as u32) - 1,
                            _ => r % 10u64.pow((r % (*d as u64 + 1)) as u32).max(1),
                        };
                        let len = DIG_TO_BYTES[*d];
                        raw.extend_from_slice(&(v as u32).to_be_bytes()[4 - len..]);
                    }
                    if round % 10 == 9 {
                        raw = (0..size).map(|_| next() as u8).collect();
                    }
                    if let Some(b) = raw.first_mut() {
                        *b ^= 0x80;
                    }
                    if round % 2 == 1 {
                        raw.iter_mut().for_each(|b| *b = !*b);
                    }
                    assert_eq!(raw.len(), size);
                    for exact in [false, true] {
                        let mut ours = String::new();
                        if !canal_decimal_from_bin(&mut ours, &raw, precision, scale, exact) {
                            assert!(ours.is_empty());
                            continue;
                        }
                        let text = mysql_decimal_text(&raw, precision, scale);
                        let long = canal_decimal(text.as_str(), precision, scale, exact);
                        assert_eq!(
                            Ok(ours.as_str()),
                            long.as_deref(),
                            "({precision}, {scale}) {raw:02x?} {}",
                            text.as_str()
                        );
                        fast += 1;
                    }
                }
            }
        }
        assert!(fast > 50_000, "{fast}");
    }

    #[test]
    fn decimal_text_matches_mysql_common() {
        // Every (precision, scale): random bytes, and random bytes with runs of zero bytes (zero
        // leading groups are trimmed, zero is special) around both sign encodings.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut compared = 0;
        for precision in 1..=65usize {
            for scale in 0..=precision.min(30) {
                let size = decimal_bin_size(precision, scale);
                for round in 0..60 {
                    let mut raw: Vec<u8> = (0..size).map(|_| next() as u8).collect();
                    if round % 2 == 0 {
                        let keep = next();
                        for (k, b) in raw.iter_mut().enumerate() {
                            if keep >> (k % 64) & 1 == 0 {
                                *b = 0;
                            }
                        }
                    }
                    if round % 3 == 0 {
                        // Positive (first bit set once flipped back) or negative with all-ones.
                        raw[0] = if round % 2 == 0 { 0x80 } else { 0x7f };
                        if round % 4 == 3 {
                            raw.iter_mut().skip(1).for_each(|b| *b = 0xff);
                        }
                    }
                    assert_eq!(raw.len(), size, "({precision}, {scale})");
                    let Some(expected) = mysql_common_text(&raw, precision, scale) else {
                        continue;
                    };
                    let ours = mysql_decimal_text(&raw, precision, scale);
                    assert_eq!(ours.as_str(), expected, "({precision}, {scale}) {raw:02x?}");
                    compared += 1;
                }
            }
        }
        assert!(compared > 30_000, "{compared}");
    }

    #[test]
    fn canal_scale_quirk() {
        // (mysql_common text, precision, scale, Canal text) — reference 3.2 / 3.3 examples.
        let cases = [
            ("1.50", 10, 2, "1.50"),
            ("10.10", 10, 2, "10.10"),
            ("1.05", 10, 2, "1.05"),
            ("1.00", 10, 2, "1.0"),
            ("0.00", 10, 2, "0.0"),
            ("100.00", 10, 2, "100.0"),
            ("-0.50", 10, 2, "-0.50"),
            ("15", 10, 0, "15"),
            ("0", 10, 0, "0"),
            ("-15", 10, 0, "-15"),
            ("1.5000", 10, 4, "1.5000"),
            ("1.0000", 10, 4, "1.0"),
            ("1.5000000000", 20, 10, "1.500000000"),
            ("0.0000000000", 20, 10, "0.000000000"),
            ("1.000000001", 18, 9, "1.000000001"),
            ("1.000000000", 18, 9, "1.000000000"),
            ("-0.00", 10, 2, "0.0"),
            ("12345678901234567890.12", 30, 2, "12345678901234567890.12"),
        ];
        for (text, p, s, want) in cases {
            assert_eq!(
                canal_decimal(text, p, s, false).as_deref(),
                Ok(want),
                "{text}"
            );
        }
        // DECIMAL(65,30) 1.1 → 27 fractional digits.
        let text = format!("1.1{}", "0".repeat(29));
        let got = canal_decimal(&text, 65, 30, false).unwrap();
        assert_eq!(got, format!("1.1{}", "0".repeat(26)));
    }

    #[test]
    fn exact_scale_keeps_every_digit() {
        assert_eq!(canal_decimal("1.00", 10, 2, true).as_deref(), Ok("1.00"));
        assert_eq!(
            canal_decimal("1.5000000000", 20, 10, true).as_deref(),
            Ok("1.5000000000")
        );
        assert_eq!(canal_decimal("15", 10, 0, true).as_deref(), Ok("15"));
    }

    #[test]
    fn rejects_text_that_does_not_fit() {
        for (text, p, s) in [
            ("1.5", 10, 2),
            ("abc", 10, 0),
            ("123", 3, 1),
            ("1-2.00", 10, 2),
            ("", 5, 0),
        ] {
            assert!(canal_decimal(text, p, s, false).is_err(), "{text}");
        }
    }
}
