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
    let mut out = String::with_capacity(text.len() + 2);
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
    Ok(out)
}

fn all_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

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
