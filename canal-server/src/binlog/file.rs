//! Binlog files on disk (RDS backups, relay logs, MySQL 8 fixtures): the same events as the replica
//! stream, with the same checks, read from a file.
//!
//! Each event is framed by its own header before mysql_common sees it, so a truncated or corrupt
//! file yields a typed error at an exact offset, never a panic or an unbounded allocation.

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use canal_protocol::mysql::read_lenenc;
use mysql_common::binlog::consts::{
    BinlogChecksumAlg, BinlogVersion, EventType, TransactionPayloadCompressionType,
};
use mysql_common::binlog::events::{Event, TransactionPayloadEvent};
use mysql_common::binlog::EventStreamReader;

use crate::binlog::event::{self, EventError};
use crate::binlog::source::RawEvent;
use crate::position::EventPos;

/// The four bytes every binlog file starts with.
pub const BINLOG_MAGIC: [u8; 4] = [0xfe, b'b', b'i', b'n'];
const HEADER_LEN: usize = 19;
const CHECKSUM_LEN: usize = 4;
/// Largest event accepted (MySQL's `max_allowed_packet` ceiling is 1 GiB).
pub const MAX_EVENT_SIZE: usize = 1 << 30;
/// Largest decompressed TRANSACTION_PAYLOAD accepted. The payload is held in memory while its
/// events are read, so this bounds what a corrupt size or a compression bomb can cost.
pub const MAX_PAYLOAD_SIZE: u64 = 1 << 30;

/// A binlog file that cannot be read further.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Opening or reading failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Not a binlog file.
    #[error("{path}: not a binlog file (bad magic bytes)")]
    NotBinlog {
        /// The file.
        path: PathBuf,
    },
    /// The file ends inside an event.
    #[error("{path}: truncated event at offset {offset}: {reason}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Start of the incomplete event.
        offset: u64,
        /// What is missing.
        reason: String,
    },
    /// An event is corrupt.
    #[error("{path}: corrupt event at offset {offset}: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Start of the event.
        offset: u64,
        /// What is wrong.
        #[source]
        source: EventError,
    },
}

/// Reads events from one binlog file in order.
pub struct BinlogFileReader<R> {
    path: PathBuf,
    name: String,
    input: R,
    offset: u64,
    esr: EventStreamReader,
    /// Decompressed payload being read, and the payload event's position.
    payload: Option<(Cursor<Vec<u8>>, EventPos)>,
    done: bool,
    verify_checksums: bool,
}

impl BinlogFileReader<std::io::BufReader<std::fs::File>> {
    /// Opens `path` and checks the magic bytes.
    pub fn open(path: &Path) -> Result<Self, FileError> {
        let f = std::fs::File::open(path).map_err(|source| FileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::new(path, std::io::BufReader::with_capacity(1 << 20, f))
    }
}

impl<R: Read> BinlogFileReader<R> {
    /// Reads from `input`, which holds the bytes of the file named by `path`.
    pub fn new(path: &Path, mut input: R) -> Result<Self, FileError> {
        let mut magic = [0u8; 4];
        read_full(&mut input, &mut magic).map_err(|source| FileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if magic != BINLOG_MAGIC {
            return Err(FileError::NotBinlog {
                path: path.to_path_buf(),
            });
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Self {
            path: path.to_path_buf(),
            name,
            input,
            offset: 4,
            esr: EventStreamReader::new(BinlogVersion::Version4),
            payload: None,
            done: false,
            verify_checksums: true,
        })
    }

    /// Turns CRC verification off (for files known to have been rewritten without fixing CRCs).
    pub fn without_checksum_verification(mut self) -> Self {
        self.verify_checksums = false;
        self
    }

    /// The byte offset of the next event.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next event, `Ok(None)` at a clean end of file.
    pub fn next_event(&mut self) -> Result<Option<RawEvent>, FileError> {
        if let Some((cursor, pos)) = self.payload.as_mut() {
            let pos = pos.clone();
            // mysql_common unwraps the read of an event body (`Event::read`): frame each inner
            // event here first, like the events of the file.
            let rest = cursor
                .get_ref()
                .get(cursor.position() as usize..)
                .unwrap_or_default();
            if let Some(reason) = inner_event_problem(rest) {
                self.payload = None;
                return Err(self.corrupt(pos.offset, reason));
            }
            let read = event::guarded(EventType::TRANSACTION_PAYLOAD_EVENT as u8, || {
                self.esr.read_decompressed(&mut *cursor)
            });
            match read {
                Ok(Ok(Some(ev))) => return Ok(Some(RawEvent { event: ev, pos })),
                Ok(Ok(None)) => self.payload = None,
                Ok(Err(e)) => {
                    self.payload = None;
                    return Err(self.corrupt(pos.offset, e.to_string()));
                }
                Err(e) => {
                    self.payload = None;
                    return Err(FileError::Corrupt {
                        path: self.path.clone(),
                        offset: pos.offset,
                        source: e,
                    });
                }
            }
        }
        if self.done {
            return Ok(None);
        }
        let start = self.offset;
        let mut header = [0u8; HEADER_LEN];
        let got = read_up_to(&mut self.input, &mut header).map_err(|e| self.io(e))?;
        if got == 0 {
            self.done = true;
            return Ok(None);
        }
        if got < HEADER_LEN {
            self.done = true;
            return Err(FileError::Truncated {
                path: self.path.clone(),
                offset: start,
                reason: format!("event header has {got} of {HEADER_LEN} bytes"),
            });
        }
        let size = u32::from_le_bytes([header[9], header[10], header[11], header[12]]) as usize;
        if !(HEADER_LEN..=MAX_EVENT_SIZE).contains(&size) {
            self.done = true;
            return Err(self.corrupt(start, format!("event size {size} out of range")));
        }
        let mut buf = vec![0u8; size];
        buf[..HEADER_LEN].copy_from_slice(&header);
        let got = read_up_to(&mut self.input, &mut buf[HEADER_LEN..]).map_err(|e| self.io(e))?;
        if got < size - HEADER_LEN {
            self.done = true;
            return Err(FileError::Truncated {
                path: self.path.clone(),
                offset: start,
                reason: format!(
                    "event of {size} bytes has only {} in the file",
                    HEADER_LEN + got
                ),
            });
        }
        self.offset += size as u64;
        let ty = header[4];
        // mysql_common cuts the CRC32 off the body without a length check (`Event::read`).
        if ty != EventType::FORMAT_DESCRIPTION_EVENT as u8
            && size < HEADER_LEN + CHECKSUM_LEN
            && self.checksummed()
        {
            return Err(self.corrupt(
                start,
                format!("event of {size} bytes has no room for its CRC32"),
            ));
        }
        let ev = match event::guarded(ty, || self.esr.read(&buf[..])) {
            Ok(Ok(Some(ev))) => ev,
            Ok(Ok(None)) => return Ok(None),
            Ok(Err(e)) => return Err(self.corrupt(start, e.to_string())),
            Err(e) => {
                return Err(FileError::Corrupt {
                    path: self.path.clone(),
                    offset: start,
                    source: e,
                })
            }
        };
        if self.verify_checksums {
            event::verify_checksum(&ev).map_err(|source| FileError::Corrupt {
                path: self.path.clone(),
                offset: start,
                source,
            })?;
        }
        let pos = EventPos {
            file: self.name.clone(),
            offset: start,
            next_offset: self.offset,
        };
        if ty == EventType::TRANSACTION_PAYLOAD_EVENT as u8 {
            if let Some(reason) = payload_header_problem(ev.data()) {
                return Err(self.corrupt(start, format!("transaction payload: {reason}")));
            }
            let payload = event::guarded(ty, || {
                ev.read_event::<TransactionPayloadEvent<'_>>()
                    .and_then(|p| decompress_payload(&p))
            });
            match payload {
                Ok(Ok(bytes)) => self.payload = Some((Cursor::new(bytes), pos.clone())),
                Ok(Err(e)) => return Err(self.corrupt(start, format!("transaction payload: {e}"))),
                Err(e) => {
                    return Err(FileError::Corrupt {
                        path: self.path.clone(),
                        offset: start,
                        source: e,
                    })
                }
            }
        }
        Ok(Some(RawEvent { event: ev, pos }))
    }

    /// Whether events after the last FORMAT_DESCRIPTION end with a checksum mysql_common strips.
    fn checksummed(&self) -> bool {
        let footer = self.esr.get_fde().footer();
        footer.get_checksum_enabled()
            && !matches!(
                footer.get_checksum_alg(),
                Ok(None) | Ok(Some(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_OFF))
            )
    }

    fn io(&self, source: std::io::Error) -> FileError {
        FileError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn corrupt(&self, offset: u64, reason: String) -> FileError {
        FileError::Corrupt {
            path: self.path.clone(),
            offset,
            source: EventError::Malformed {
                event_type: 0,
                reason,
            },
        }
    }
}

impl<R: Read> Iterator for BinlogFileReader<R> {
    type Item = Result<RawEvent, FileError>;
    fn next(&mut self) -> Option<Self::Item> {
        match self.next_event() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => None,
            Err(e) => {
                self.done = true;
                self.payload = None;
                Some(Err(e))
            }
        }
    }
}

/// Why the next event inside a decompressed TRANSACTION_PAYLOAD cannot be read, if it cannot;
/// `rest` is what is left of the payload.
fn inner_event_problem(rest: &[u8]) -> Option<String> {
    if rest.is_empty() {
        return None;
    }
    if rest.len() < HEADER_LEN {
        return Some(format!(
            "transaction payload ends inside an event header ({} of {HEADER_LEN} bytes)",
            rest.len()
        ));
    }
    let size = u32::from_le_bytes([rest[9], rest[10], rest[11], rest[12]]) as usize;
    if size < HEADER_LEN || size > rest.len() {
        return Some(format!(
            "event of {size} bytes in a transaction payload with {} bytes left",
            rest.len()
        ));
    }
    None
}

/// What, in a TRANSACTION_PAYLOAD's header fields, would make mysql_common's decoder panic: an
/// unknown field type above 255 (`try_into().unwrap()`), a compression type other than ZSTD (0)
/// or NONE (255) (`unwrap()`), an unknown field's length past the end (`ParseBuf::skip`) or a
/// truncated length-encoded integer (`eat_lenenc_int`). The walk is the decoder's own.
fn payload_header_problem(body: &[u8]) -> Option<String> {
    const BAD_INT: &str = "malformed length-encoded integer in the header";
    let mut b = body;
    while !b.is_empty() {
        let Some(field) = read_lenenc(&mut b) else {
            return Some(BAD_INT.into());
        };
        match field {
            // End of the header: mysql_common checks the payload size itself.
            0 => return None,
            // Payload size, compression type, uncompressed size: a length, then the value.
            1..=3 => {
                let (Some(_), Some(value)) = (read_lenenc(&mut b), read_lenenc(&mut b)) else {
                    return Some(BAD_INT.into());
                };
                if field == 2 && TransactionPayloadCompressionType::try_from(value).is_err() {
                    return Some(format!("unknown compression type {value}"));
                }
            }
            f if f > 255 => return Some(format!("unknown header field type {f}")),
            // Another field is skipped by its length.
            _ => match read_lenenc(&mut b) {
                Some(len) if len <= b.len() as u64 => b = &b[len as usize..],
                _ => return Some("header field runs past the end of the event".into()),
            },
        }
    }
    None
}

/// Decompresses a TRANSACTION_PAYLOAD's events. Unlike mysql_common's `danger_decompress`,
/// nothing is allocated from the size the event claims (a corrupt size asked for up to 2^64
/// bytes), a zstd error is an error rather than an empty payload that silently drops the
/// transaction, and the result must have exactly the claimed size, at most [`MAX_PAYLOAD_SIZE`].
fn decompress_payload(p: &TransactionPayloadEvent<'_>) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind};
    if p.algorithm() == TransactionPayloadCompressionType::NONE {
        return Ok(p.payload_raw().to_vec());
    }
    let claimed = p.uncompressed_size();
    if claimed > MAX_PAYLOAD_SIZE {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("uncompressed size {claimed} exceeds the limit of {MAX_PAYLOAD_SIZE} bytes"),
        ));
    }
    let mut out = Vec::new();
    p.decompressed()?.take(claimed + 1).read_to_end(&mut out)?;
    if out.len() as u64 != claimed {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!(
                "decompresses to {}{} bytes, the event says {claimed}",
                out.len(),
                if out.len() as u64 > claimed { "+" } else { "" }
            ),
        ));
    }
    Ok(out)
}

fn read_up_to<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<()> {
    if read_up_to(r, buf)? < buf.len() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "file shorter than the 4-byte binlog magic",
        ));
    }
    Ok(())
}

/// Returns the event's type, for callers that only skim.
pub fn event_type(ev: &Event) -> u8 {
    ev.header().event_type_raw()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zstd_payload(uncompressed_size: u64, data: &[u8]) -> TransactionPayloadEvent<'_> {
        TransactionPayloadEvent::new(
            data.len() as u64,
            TransactionPayloadCompressionType::ZSTD,
            uncompressed_size,
            data,
        )
    }

    /// A zstd frame with one raw block holding "hello" (single segment, 1-byte content size).
    const HELLO_ZSTD: &[u8] = &[
        0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x05, 0x29, 0x00, 0x00, b'h', b'e', b'l', b'l', b'o',
    ];

    #[test]
    fn payload_decompression_checks_the_claimed_size() {
        assert_eq!(
            decompress_payload(&zstd_payload(5, HELLO_ZSTD)).unwrap(),
            b"hello"
        );
        assert!(decompress_payload(&zstd_payload(4, HELLO_ZSTD)).is_err());
        assert!(decompress_payload(&zstd_payload(6, HELLO_ZSTD)).is_err());
        // Not zstd: an error, where danger_decompress returned an empty payload (the
        // transaction's events silently vanished).
        assert!(decompress_payload(&zstd_payload(5, b"not zstd at all")).is_err());
        // A huge claimed size is refused before anything is allocated for it.
        assert!(decompress_payload(&zstd_payload(1 << 40, HELLO_ZSTD)).is_err());
        let none = TransactionPayloadEvent::new(
            3,
            TransactionPayloadCompressionType::NONE,
            0,
            &b"abc"[..],
        );
        assert_eq!(decompress_payload(&none).unwrap(), b"abc");
    }

    #[test]
    fn payload_header_checked_before_mysql_common_reads_it() {
        // size 5, compression ZSTD, uncompressed size 5, end mark, payload.
        let mut ok = vec![1, 1, 5, 2, 1, 0, 3, 1, 5, 0];
        ok.extend_from_slice(b"abcde");
        assert_eq!(payload_header_problem(&ok), None);
        // An unknown field (7) of 2 bytes is skipped, as mysql_common does.
        assert_eq!(payload_header_problem(&[7, 2, 0xaa, 0xbb, 0]), None);
        // Found by fuzzing, each a panic in TransactionPayloadEvent::deserialize:
        // an unknown field whose length runs past the end (ParseBuf::skip),
        assert!(payload_header_problem(&[9, 0x2b, 0, 0]).is_some());
        // an unknown field type above 255 (u8::try_from(..).unwrap()),
        assert!(payload_header_problem(&[0xfc, 0x00, 0x01, 0, 0]).is_some());
        // a compression type that is neither ZSTD nor NONE (unwrap()),
        assert!(payload_header_problem(&[2, 1, 7, 0]).is_some());
        // and an unknown field's length cut short (eat_lenenc_int).
        assert!(payload_header_problem(&[7, 0xfe, 1]).is_some());
        for field in [1, 2, 3] {
            assert!(payload_header_problem(&[field, 1]).is_some());
        }
    }

    #[test]
    fn event_too_short_for_its_crc_is_corrupt() {
        // MySQL 8.0.22's FORMAT_DESCRIPTION (binlog_checksum=CRC32), then a 21-byte XID event.
        let fde = "dc1d4f600f01000000790000007d00000001000400382e302e323200000000000000000000\
                   00000000000000000000000000000000000000000000000000000000000000000000dc1d4f\
                   6013000d0008000000000400040000006100041a08000000080808020000000a0a0a2a2a00\
                   1234000a2801b49eea21";
        let mut file = BINLOG_MAGIC.to_vec();
        file.extend(hex::decode(fde.replace(' ', "")).unwrap());
        let mut xid = vec![0u8; 21];
        xid[4] = EventType::XID_EVENT as u8;
        xid[9..13].copy_from_slice(&21u32.to_le_bytes());
        file.extend_from_slice(&xid);
        let mut r = BinlogFileReader::new(Path::new("x"), Cursor::new(file)).unwrap();
        assert!(r.next_event().unwrap().is_some(), "the FORMAT_DESCRIPTION");
        // Found by fuzzing: mysql_common computed `data.len() - 4` and panicked.
        let err = r.next_event().unwrap_err().to_string();
        assert!(err.contains("no room for its CRC32"), "{err}");
    }

    #[test]
    fn inner_events_are_framed_before_mysql_common_reads_them() {
        let mut ev = vec![0u8; 30];
        ev[9..13].copy_from_slice(&30u32.to_le_bytes());
        assert_eq!(inner_event_problem(&[]), None);
        assert_eq!(inner_event_problem(&ev), None);
        // Found by fuzzing: an inner event longer than the rest of the payload made
        // mysql_common's Event::read unwrap an UnexpectedEof.
        assert!(inner_event_problem(&ev[..29]).is_some());
        assert!(inner_event_problem(&ev[..18]).is_some());
        ev[9..13].copy_from_slice(&18u32.to_le_bytes());
        assert!(inner_event_problem(&ev).is_some());
    }
}
