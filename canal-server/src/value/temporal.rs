//! Date and time text (reference 3.1 "Time zone", 3.2 rows YEAR … TIMESTAMP, 3.5 opaque values).
//!
//! DATE, TIME and DATETIME print exactly as stored. TIMESTAMP is stored as epoch seconds and Canal
//! renders it with `java.sql.Timestamp` in its JVM's default zone; we render it at a fixed
//! [`UtcOffset`]. Fractions print exactly `fsp` digits (the first `fsp` digits of the
//! zero-padded microseconds).

use std::fmt;

/// A fixed offset from UTC used to render TIMESTAMP values.
///
/// Canal uses its JVM's default zone; the official Canal Docker image runs in Asia/Shanghai,
/// which has been a fixed UTC+8 since 1992, so [`UtcOffset::CANAL_DOCKER`] is the default. Zones
/// with daylight saving time cannot be expressed (TIMESTAMPs in Shanghai's 1986–1991 summers
/// print one hour earlier than a JVM in that zone would print them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UtcOffset {
    seconds: i32,
}

impl UtcOffset {
    /// UTC.
    pub const UTC: UtcOffset = UtcOffset { seconds: 0 };
    /// UTC+08:00, the zone of the official Canal Docker image (Asia/Shanghai).
    pub const CANAL_DOCKER: UtcOffset = UtcOffset { seconds: 8 * 3600 };

    /// An offset of `seconds` east of UTC; `None` beyond ±18 hours (Java's limit).
    pub fn from_seconds(seconds: i32) -> Option<UtcOffset> {
        (seconds.abs() <= 18 * 3600).then_some(UtcOffset { seconds })
    }

    /// Seconds east of UTC.
    pub fn seconds(self) -> i32 {
        self.seconds
    }

    /// Parses `UTC`, `Z`, `GMT`, or `±HH`, `±HH:MM`, `±HHMM` (optionally after `UTC`/`GMT`).
    pub fn parse(text: &str) -> Option<UtcOffset> {
        let t = text.trim();
        let t = t
            .strip_prefix("UTC")
            .or_else(|| t.strip_prefix("GMT"))
            .unwrap_or(t);
        if t.is_empty() || t == "Z" {
            return Some(UtcOffset::UTC);
        }
        let (sign, rest) = match t.as_bytes().first()? {
            b'+' => (1, &t[1..]),
            b'-' => (-1, &t[1..]),
            _ => return None,
        };
        let (hh, mm) = match rest.split_once(':') {
            Some((h, m)) => (h, m),
            None if rest.len() == 4 => rest.split_at(2),
            None => (rest, "0"),
        };
        if hh.is_empty() || hh.len() > 2 || mm.is_empty() || mm.len() > 2 {
            return None;
        }
        let hours: i32 = hh.parse().ok()?;
        let minutes: i32 = mm.parse().ok()?;
        if !hh.bytes().chain(mm.bytes()).all(|b| b.is_ascii_digit()) || minutes >= 60 {
            return None;
        }
        UtcOffset::from_seconds(sign * (hours * 3600 + minutes * 60))
    }
}

impl Default for UtcOffset {
    fn default() -> Self {
        UtcOffset::CANAL_DOCKER
    }
}

impl fmt::Display for UtcOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.seconds < 0 { '-' } else { '+' };
        let abs = self.seconds.unsigned_abs();
        write!(f, "{sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60)?;
        if abs % 60 != 0 {
            write!(f, ":{:02}", abs % 60)?;
        }
        Ok(())
    }
}

/// Short ASCII text assembled on the stack and appended to a `String` in one step (the date and
/// time printers run once per temporal value of every row).
struct Ascii {
    buf: [u8; 48],
    len: usize,
}

impl Ascii {
    fn new() -> Ascii {
        Ascii {
            buf: [0; 48],
            len: 0,
        }
    }

    #[inline]
    fn push(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    /// `n` (< 100) as two digits.
    #[inline]
    fn two(&mut self, n: u64) {
        self.push(b'0' + (n / 10) as u8);
        self.push(b'0' + (n % 10) as u8);
    }

    /// `n` zero-padded to at least `width` (≤ 20) digits.
    #[inline]
    fn padded(&mut self, n: u64, width: usize) {
        // The common cases (every field of a date-time) without the general loop.
        match width {
            2 if n < 100 => return self.two(n),
            4 if n < 10_000 => {
                self.two(n / 100);
                return self.two(n % 100);
            }
            6 if n < 1_000_000 => {
                self.two(n / 10_000);
                self.two(n / 100 % 100);
                return self.two(n % 100);
            }
            _ => {}
        }
        self.padded_slow(n, width);
    }

    fn padded_slow(&mut self, n: u64, width: usize) {
        let mut tmp = [b'0'; 20];
        let mut i = tmp.len();
        let mut n = n;
        loop {
            i -= 1;
            tmp[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let digits = &tmp[i.min(tmp.len().saturating_sub(width))..];
        self.buf[self.len..self.len + digits.len()].copy_from_slice(digits);
        self.len += digits.len();
    }

    /// Canal's `usecondsToStr(frac, fsp)`: the microseconds zero-padded to six digits, cut to
    /// `fsp`.
    fn fraction(&mut self, micros: u32, fsp: u8) {
        if fsp == 0 {
            return;
        }
        self.push(b'.');
        let at = self.len;
        self.padded(u64::from(micros), 6);
        self.len = at + usize::from(fsp.min(6));
    }

    fn date(&mut self, year: u64, month: u64, day: u64) {
        self.padded(year, 4);
        self.push(b'-');
        self.padded(month, 2);
        self.push(b'-');
        self.padded(day, 2);
    }

    fn hms(&mut self, hours: u64, minute: u8, second: u8) {
        self.padded(hours, 2);
        self.push(b':');
        self.padded(u64::from(minute), 2);
        self.push(b':');
        self.padded(u64::from(second), 2);
    }

    fn finish(&self, out: &mut String) {
        // Only ASCII digits and separators were written.
        out.push_str(std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default());
    }
}

/// `YYYY-MM-DD`; the zero date and partial zero dates print as stored.
#[cfg(test)]
pub(crate) fn date(year: u16, month: u8, day: u8) -> String {
    let mut out = String::new();
    date_into(&mut out, year, month, day);
    out
}

/// [`date`], appending to `out`.
pub(crate) fn date_into(out: &mut String, year: u16, month: u8, day: u8) {
    let mut a = Ascii::new();
    a.date(u64::from(year), u64::from(month), u64::from(day));
    a.finish(out);
}

/// `YYYY-MM-DD hh:mm:ss[.f…]` for DATETIME (and the date-time part of a zero TIMESTAMP).
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn datetime(
    year: u16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    micros: u32,
    fsp: u8,
) -> String {
    let mut out = String::new();
    datetime_into(
        &mut out, year, month, day, hour, minute, second, micros, fsp,
    );
    out
}

/// [`datetime`], appending to `out`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn datetime_into(
    out: &mut String,
    year: u16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    micros: u32,
    fsp: u8,
) {
    let (y, mo, d) = (u64::from(year), u64::from(month), u64::from(day));
    let (h, mi, sec) = (u64::from(hour), u64::from(minute), u64::from(second));
    if push_datetime_fast(out, [y, mo, d, h, mi, sec], micros, fsp) {
        return;
    }
    let mut a = Ascii::new();
    a.date(y, mo, d);
    a.push(b' ');
    a.hms(h, minute, second);
    a.fraction(micros, fsp);
    a.finish(out);
}

/// `YYYY-MM-DD hh:mm:ss[.f…]` written into a template, for fields of the usual widths (year
/// below 10000, the others below 100, microseconds below 10^6); `false` (nothing written)
/// otherwise.
fn push_datetime_fast(out: &mut String, fields: [u64; 6], micros: u32, fsp: u8) -> bool {
    let [year, month, day, hour, minute, second] = fields;
    if year > 9999 || micros > 999_999 || [month, day, hour, minute, second].iter().any(|f| *f > 99)
    {
        return false;
    }
    let mut b = *b"0000-00-00 00:00:00.000000";
    let mut put2 = |at: usize, n: u64| {
        b[at] = b'0' + (n / 10) as u8;
        b[at + 1] = b'0' + (n % 10) as u8;
    };
    put2(0, year / 100);
    put2(2, year % 100);
    put2(5, month);
    put2(8, day);
    put2(11, hour);
    put2(14, minute);
    put2(17, second);
    let micros = u64::from(micros);
    put2(20, micros / 10_000);
    put2(22, micros / 100 % 100);
    put2(24, micros % 100);
    let len = if fsp == 0 {
        19
    } else {
        20 + usize::from(fsp.min(6))
    };
    // Only ASCII was written.
    out.push_str(std::str::from_utf8(&b[..len]).unwrap_or_default());
    true
}

/// Formats a TIME value as Canal does.
///
/// Hours print with at least two digits. `legacy_hours` reproduces the printer Canal uses for the
/// pre-5.6.4 TIME format and for TIME values inside JSON, which prints exactly 100 hours as `00`.
pub(crate) fn time(
    negative: bool,
    hours: u64,
    minute: u8,
    second: u8,
    micros: u32,
    fsp: u8,
    legacy_hours: bool,
) -> String {
    let mut out = String::with_capacity(18);
    time_into(
        &mut out,
        negative,
        hours,
        minute,
        second,
        micros,
        fsp,
        legacy_hours,
    );
    out
}

/// [`time`], appending to `out`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn time_into(
    out: &mut String,
    negative: bool,
    hours: u64,
    minute: u8,
    second: u8,
    micros: u32,
    fsp: u8,
    legacy_hours: bool,
) {
    let zero = hours == 0 && minute == 0 && second == 0 && micros == 0;
    let mut a = Ascii::new();
    if negative && !zero {
        a.push(b'-');
    }
    let hours = if legacy_hours && hours == 100 {
        0
    } else {
        hours
    };
    a.hms(hours, minute, second);
    a.fraction(micros, fsp);
    a.finish(out);
}

/// Renders TIMESTAMP epoch seconds as Canal does: `0` is the zero timestamp, anything else is the
/// local date-time at `offset`, then `fsp` fraction digits.
#[cfg(test)]
pub(crate) fn timestamp(seconds: u32, micros: u32, fsp: u8, offset: UtcOffset) -> String {
    let mut out = String::new();
    timestamp_into(&mut out, seconds, micros, fsp, offset);
    out
}

/// [`timestamp`], appending to `out`.
pub(crate) fn timestamp_into(
    out: &mut String,
    seconds: u32,
    micros: u32,
    fsp: u8,
    offset: UtcOffset,
) {
    if seconds == 0 {
        return datetime_into(out, 0, 0, 0, 0, 0, 0, micros, fsp);
    }
    let local = i64::from(seconds) + i64::from(offset.seconds());
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400) as u64;
    // u32 seconds at an offset within ±18 h: years 1969..=2106, never negative.
    let (year, month, day) = civil_from_days(days);
    let (year, month, day) = (year.max(0) as u64, u64::from(month), u64::from(day));
    let (hour, minute, second) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if push_datetime_fast(out, [year, month, day, hour, minute, second], micros, fsp) {
        return;
    }
    let mut a = Ascii::new();
    a.date(year, month, day);
    a.push(b' ');
    a.hms(hour, minute as u8, second as u8);
    a.fraction(micros, fsp);
    a.finish(out);
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (valid far beyond TIMESTAMP's range).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01 so that leap days end each 400-year era's years.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A TIME inside JSON: MySQL's packed 64-bit time. Zero prints `00:00:00` (no fraction);
/// anything else prints six fraction digits.
pub(crate) fn json_time(packed: i64, fix_100_hours: bool) -> String {
    if packed == 0 {
        return "00:00:00".to_owned();
    }
    let abs = packed.unsigned_abs();
    let int_part = abs >> 24;
    let micros = (abs % (1 << 24)) as u32;
    let hours = (int_part >> 12) % (1 << 10);
    let minute = ((int_part >> 6) % (1 << 6)) as u8;
    let second = (int_part % (1 << 6)) as u8;
    let mut out = String::with_capacity(20);
    if packed < 0 {
        out.push('-');
    }
    out.push_str(&time(false, hours, minute, second, 0, 0, !fix_100_hours));
    out.push('.');
    out.push_str(&fraction6(micros));
    out
}

/// A DATE, DATETIME or TIMESTAMP inside JSON: MySQL's packed 64-bit date-time. Zero prints
/// `0000-00-00 00:00:00` (no fraction); anything else prints six fraction digits (DATE too).
pub(crate) fn json_datetime(packed: i64) -> String {
    if packed == 0 {
        return "0000-00-00 00:00:00".to_owned();
    }
    let abs = packed.unsigned_abs();
    let int_part = abs >> 24;
    let micros = (abs % (1 << 24)) as u32;
    let ymd = int_part >> 17;
    let ym = ymd >> 5;
    let hms = int_part % (1 << 17);
    let mut out = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        ym / 13,
        ym % 13,
        ymd % (1 << 5),
        hms >> 12,
        (hms >> 6) % (1 << 6),
        hms % (1 << 6)
    );
    out.push('.');
    out.push_str(&fraction6(micros));
    out
}

/// Canal's `usecondsToStr(frac, 6)`: zero-padded to six digits, then the first six digits.
fn fraction6(micros: u32) -> String {
    let mut digits = format!("{micros:06}");
    digits.truncate(6);
    digits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets() {
        assert_eq!(UtcOffset::parse("UTC"), Some(UtcOffset::UTC));
        assert_eq!(UtcOffset::parse("+08:00"), Some(UtcOffset::CANAL_DOCKER));
        assert_eq!(UtcOffset::parse("+0800"), Some(UtcOffset::CANAL_DOCKER));
        assert_eq!(UtcOffset::parse("GMT+8"), Some(UtcOffset::CANAL_DOCKER));
        assert_eq!(
            UtcOffset::parse("-05:30").map(UtcOffset::seconds),
            Some(-19_800)
        );
        assert_eq!(UtcOffset::parse("+19:00"), None);
        assert_eq!(UtcOffset::parse("08:00"), None);
        assert_eq!(UtcOffset::parse("+8:x"), None);
        assert_eq!(UtcOffset::CANAL_DOCKER.to_string(), "+08:00");
        assert_eq!(UtcOffset::default(), UtcOffset::CANAL_DOCKER);
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_675), (2023, 11, 14));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(24_855), (2038, 1, 19));
    }

    #[test]
    fn timestamps() {
        let utc = UtcOffset::UTC;
        let sh = UtcOffset::CANAL_DOCKER;
        assert_eq!(timestamp(1_700_000_000, 0, 0, utc), "2023-11-14 22:13:20");
        assert_eq!(timestamp(1_700_000_000, 0, 0, sh), "2023-11-15 06:13:20");
        assert_eq!(
            timestamp(1_700_000_000, 120_000, 3, utc),
            "2023-11-14 22:13:20.120"
        );
        assert_eq!(
            timestamp(1_700_000_000, 500_000, 1, utc),
            "2023-11-14 22:13:20.5"
        );
        assert_eq!(timestamp(0, 0, 0, sh), "0000-00-00 00:00:00");
        assert_eq!(timestamp(0, 0, 3, sh), "0000-00-00 00:00:00.000");
        assert_eq!(timestamp(u32::MAX >> 1, 0, 0, utc), "2038-01-19 03:14:07");
        assert_eq!(timestamp(1, 0, 6, utc), "1970-01-01 00:00:01.000000");
    }

    #[test]
    fn times() {
        assert_eq!(time(false, 12, 34, 56, 0, 0, false), "12:34:56");
        assert_eq!(time(true, 838, 59, 59, 0, 0, false), "-838:59:59");
        assert_eq!(time(false, 100, 0, 0, 0, 0, false), "100:00:00");
        assert_eq!(time(false, 100, 0, 0, 0, 0, true), "00:00:00");
        assert_eq!(time(false, 101, 0, 0, 0, 0, true), "101:00:00");
        assert_eq!(time(true, 0, 0, 1, 500_000, 2, false), "-00:00:01.50");
        assert_eq!(time(true, 0, 0, 0, 500_000, 2, false), "-00:00:00.50");
        assert_eq!(time(false, 12, 34, 56, 1, 6, false), "12:34:56.000001");
        assert_eq!(time(false, 0, 0, 0, 0, 3, false), "00:00:00.000");
        assert_eq!(time(true, 0, 0, 0, 0, 0, false), "00:00:00");
    }

    #[test]
    fn datetime_printers_match_format() {
        let mut seed = 0x1234_5678_9abc_def1u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for i in 0..20_000 {
            let r = next();
            // Mostly in range; every 8th value with fields past two (four) digits.
            let wide = i % 8 == 0;
            let year = if wide { r as u16 } else { (r % 10_000) as u16 };
            let f = |shift: u32, max: u64| ((r >> shift) % if wide { 256 } else { max }) as u8;
            let (month, day, hour, minute, second) =
                (f(16, 13), f(24, 32), f(32, 24), f(40, 60), f(48, 60));
            let micros = if wide {
                (next() % 20_000_000) as u32
            } else {
                (next() % 1_000_000) as u32
            };
            let fsp = (r >> 56) as u8 % 7;
            let digits = format!("{micros:06}");
            let frac = if fsp == 0 {
                String::new()
            } else {
                format!(".{}", &digits[..usize::from(fsp)])
            };
            assert_eq!(
                datetime(year, month, day, hour, minute, second, micros, fsp),
                format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}{frac}")
            );
        }
    }

    #[test]
    fn dates_and_datetimes() {
        assert_eq!(date(2024, 1, 2), "2024-01-02");
        assert_eq!(date(0, 0, 0), "0000-00-00");
        assert_eq!(date(2024, 0, 0), "2024-00-00");
        assert_eq!(datetime(2024, 1, 2, 3, 4, 5, 0, 0), "2024-01-02 03:04:05");
        assert_eq!(
            datetime(2024, 1, 2, 3, 4, 5, 500_000, 2),
            "2024-01-02 03:04:05.50"
        );
        assert_eq!(
            datetime(2024, 1, 2, 3, 4, 5, 1, 6),
            "2024-01-02 03:04:05.000001"
        );
        assert_eq!(datetime(0, 0, 0, 0, 0, 0, 0, 0), "0000-00-00 00:00:00");
        assert_eq!(datetime(0, 0, 0, 0, 0, 0, 0, 3), "0000-00-00 00:00:00.000");
        assert_eq!(datetime(2024, 0, 0, 0, 0, 0, 0, 0), "2024-00-00 00:00:00");
        assert_eq!(
            datetime(999, 12, 31, 23, 59, 59, 0, 0),
            "0999-12-31 23:59:59"
        );
    }

    fn packed_datetime(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64, us: i64) -> i64 {
        let ymd = ((y * 13 + mo) << 5) | d;
        let hms = (h << 12) | (mi << 6) | s;
        (((ymd << 17) | hms) << 24) + us
    }

    #[test]
    fn json_temporals() {
        assert_eq!(json_datetime(0), "0000-00-00 00:00:00");
        let dt = packed_datetime(2024, 1, 2, 3, 4, 5, 120_000);
        assert_eq!(json_datetime(dt), "2024-01-02 03:04:05.120000");
        let d = packed_datetime(2024, 1, 2, 0, 0, 0, 0);
        assert_eq!(json_datetime(d), "2024-01-02 00:00:00.000000");
        let t = (((12i64 << 12) | (34 << 6) | 56) << 24) + 1;
        assert_eq!(json_time(t, false), "12:34:56.000001");
        assert_eq!(json_time(-t, false), "-12:34:56.000001");
        assert_eq!(json_time(0, false), "00:00:00");
        let h100 = (100i64 << 12) << 24;
        assert_eq!(json_time(h100, false), "00:00:00.000000");
        assert_eq!(json_time(h100, true), "100:00:00.000000");
        assert_eq!(json_time(i64::MIN, false).chars().next(), Some('-'));
    }
}
