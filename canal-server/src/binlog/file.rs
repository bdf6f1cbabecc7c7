//! Binlog files on disk (RDS backups, relay logs, MySQL 8 fixtures): the same events as the replica
//! stream, with the same checks, read from a file.
//!
//! Each event is framed by its own header before mysql_common sees it, so a truncated or corrupt
//! file yields a typed error at an exact offset, never a panic or an unbounded allocation.

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use mysql_common::binlog::consts::{BinlogVersion, EventType};
use mysql_common::binlog::events::{Event, TransactionPayloadEvent};
use mysql_common::binlog::EventStreamReader;

use crate::binlog::convert::EventPos;
use crate::binlog::event::{self, EventError};
use crate::binlog::source::RawEvent;

/// The four bytes every binlog file starts with.
pub const BINLOG_MAGIC: [u8; 4] = [0xfe, b'b', b'i', b'n'];
const HEADER_LEN: usize = 19;
/// Largest event accepted (MySQL's `max_allowed_packet` ceiling is 1 GiB).
pub const MAX_EVENT_SIZE: usize = 1 << 30;

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
            let payload = event::guarded(ty, || {
                ev.read_event::<TransactionPayloadEvent<'_>>()
                    .map(|p| p.danger_decompress())
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
