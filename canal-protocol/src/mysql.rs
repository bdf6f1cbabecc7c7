//! MySQL's length-encoded integer, as binlog events carry it (table-map metadata, transaction
//! payload headers, row-event options).
//!
//! The first byte is the value itself up to 0xfa, or says how many little-endian bytes follow:
//! 0xfc two, 0xfd three, 0xfe eight. 0xfb (NULL in text rows) and 0xff (an error packet's
//! marker) start no integer.

/// Why no length-encoded integer could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LenencError {
    /// The input ends before the integer does (or is empty).
    #[error("length-encoded integer cut short")]
    Truncated,
    /// The first byte, 0xfb or 0xff, starts no integer.
    #[error("byte {0:#04x} starts no length-encoded integer")]
    Reserved(u8),
}

/// Reads the length-encoded integer at the start of `b`: its value and how many bytes it takes.
/// Never reads past `b`.
#[inline]
pub fn split_lenenc(b: &[u8]) -> Result<(u64, usize), LenencError> {
    let (&first, rest) = b.split_first().ok_or(LenencError::Truncated)?;
    let len = match first {
        0..=0xfa => return Ok((first.into(), 1)),
        0xfc => 2,
        0xfd => 3,
        0xfe => 8,
        reserved => return Err(LenencError::Reserved(reserved)),
    };
    let bytes = rest.get(..len).ok_or(LenencError::Truncated)?;
    let value = bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &x| acc << 8 | u64::from(x));
    Ok((value, 1 + len))
}

/// Reads the length-encoded integer at the start of `*b` and advances `*b` past it; `None`
/// (with `*b` unchanged) when `*b` does not start with a whole one.
#[inline]
pub fn read_lenenc(b: &mut &[u8]) -> Option<u64> {
    let (value, taken) = split_lenenc(b).ok()?;
    *b = &b[taken..];
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_width() {
        let cases: [(&[u8], u64, usize); 5] = [
            (&[0x00], 0, 1),
            (&[0xfa, 9], 250, 1),
            (&[0xfc, 0x34, 0x12], 0x1234, 3),
            (&[0xfd, 0x56, 0x34, 0x12], 0x12_3456, 4),
            (&[0xfe, 1, 2, 3, 4, 5, 6, 7, 8, 9], 0x0807_0605_0403_0201, 9),
        ];
        for (input, value, taken) in cases {
            assert_eq!(split_lenenc(input), Ok((value, taken)), "{input:?}");
            let mut b = input;
            assert_eq!(read_lenenc(&mut b), Some(value));
            assert_eq!(b, &input[taken..]);
        }
    }

    #[test]
    fn refuses_short_and_reserved_input_without_advancing() {
        for input in [
            &[][..],
            &[0xfc, 1],
            &[0xfd, 1, 2],
            &[0xfe, 1, 2, 3, 4, 5, 6, 7],
        ] {
            assert_eq!(
                split_lenenc(input),
                Err(LenencError::Truncated),
                "{input:?}"
            );
            let mut b = input;
            assert_eq!(read_lenenc(&mut b), None);
            assert_eq!(b, input);
        }
        for first in [0xfb, 0xff] {
            let input = [first, 1, 2, 3, 4, 5, 6, 7, 8];
            assert_eq!(split_lenenc(&input), Err(LenencError::Reserved(first)));
            let mut b = &input[..];
            assert_eq!(read_lenenc(&mut b), None);
            assert_eq!(b.len(), input.len());
        }
    }
}
