//! The wire form of stage data pulled between nodes: Select's entries length-prefixed, rows as
//! JSON, both gzip'd.

use std::io::{Read, Write};

use crate::batch::LoadBatch;

/// Why pulled stage data does not decode.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Not gzip, or truncated.
    #[error("gunzip: {0}")]
    Gunzip(#[source] std::io::Error),
    /// An entry's length prefix is cut short.
    #[error("truncated entry length")]
    TruncatedLength,
    /// An entry is shorter than its length prefix says.
    #[error("truncated entry")]
    TruncatedEntry,
    /// The rows are not a [`LoadBatch`]'s JSON.
    #[error("batch JSON: {0}")]
    BatchJson(#[source] serde_json::Error),
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

fn gunzip(gz: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut out)
        .map_err(CodecError::Gunzip)?;
    Ok(out)
}

/// Encodes a Select batch's serialized entries (length-prefixed, gzip'd).
pub fn encode_entries(entries: &[bytes::Bytes]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(entries.iter().map(|e| e.len() + 4).sum());
    for e in entries {
        raw.extend_from_slice(&(e.len() as u32).to_be_bytes());
        raw.extend_from_slice(e);
    }
    gzip(&raw)
}

/// Decodes [`encode_entries`]; the entries share one buffer.
pub fn decode_entries(gz: &[u8]) -> Result<Vec<bytes::Bytes>, CodecError> {
    let raw = bytes::Bytes::from(gunzip(gz)?);
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < raw.len() {
        let len_bytes: [u8; 4] = raw
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .ok_or(CodecError::TruncatedLength)?;
        let len = u32::from_be_bytes(len_bytes) as usize;
        let end = at + 4 + len;
        if end > raw.len() {
            return Err(CodecError::TruncatedEntry);
        }
        out.push(raw.slice(at + 4..end));
        at = end;
    }
    Ok(out)
}

/// Encodes a [`LoadBatch`] (JSON, gzip'd).
pub fn encode_batch(b: &LoadBatch) -> Vec<u8> {
    gzip(&serde_json::to_vec(b).unwrap_or_default())
}

/// Decodes [`encode_batch`].
pub fn decode_batch(gz: &[u8]) -> Result<LoadBatch, CodecError> {
    serde_json::from_slice(&gunzip(gz)?).map_err(CodecError::BatchJson)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_batches_round_trip() {
        let entries = vec![bytes::Bytes::from_static(b"ab"), bytes::Bytes::new()];
        assert_eq!(decode_entries(&encode_entries(&entries)).unwrap(), entries);
        let b = LoadBatch::default();
        assert_eq!(decode_batch(&encode_batch(&b)).unwrap(), b);
        assert!(matches!(
            decode_entries(&gzip(&[0, 0, 0, 9, 1])),
            Err(CodecError::TruncatedEntry)
        ));
    }
}
