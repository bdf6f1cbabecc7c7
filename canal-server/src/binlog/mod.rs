//! Reading the binlog: the replica connection (`source`), binlog files on disk ([`file`](mod@file)), the
//! checks every event passes ([`event`]), row images (`rows`), the conversion into Canal entries
//! ([`convert`]) and the start position (`start`).

pub mod convert;
pub mod event;
pub mod file;
#[cfg(test)]
mod fuzz_regressions;
pub(crate) mod rows;
pub(crate) mod source;
pub(crate) mod start;
