//! The stage data this node produced, kept in memory by (pipeline, process, stage): the next stage
//! on this node takes it directly, other nodes pull it over HTTP ([`crate::http`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::batch::LoadBatch;
use crate::pipeline::select::SelectedEntries;
use crate::process::view::Snapshot;
use crate::process::Stage;
use crate::runtime::codec::CodecError;
use crate::runtime::codec::{decode_batch, decode_entries, encode_batch, encode_entries};

/// What a stage produced for one batch, kept as values: the next stage on the same node uses it
/// directly; it is encoded only when another node pulls it over HTTP.
#[derive(Debug, Clone)]
pub enum StageData {
    /// Select's canal entries.
    Entries(Arc<SelectedEntries>),
    /// Extract's or Transform's rows.
    Batch(Arc<LoadBatch>),
}

impl StageData {
    /// The wire form (gzip'd; see [`encode_entries`] / [`encode_batch`]).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            StageData::Entries(e) => encode_entries(e.raw()),
            StageData::Batch(b) => encode_batch(b),
        }
    }

    /// Decodes the wire form of `stage`'s data.
    pub fn decode(stage: Stage, gz: &[u8]) -> Result<Self, CodecError> {
        match stage {
            Stage::Selected => Ok(StageData::Entries(Arc::new(SelectedEntries::new(
                decode_entries(gz)?,
                None,
            )))),
            _ => Ok(StageData::Batch(Arc::new(decode_batch(gz)?))),
        }
    }
}

/// Batch data this node produced, by (pipeline, process, stage); other nodes pull it over HTTP.
/// Entries go when their process is gone (acked or discarded). Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Registry(Arc<Mutex<HashMap<DataKey, Kept>>>);

/// (pipeline, process, stage).
type DataKey = (u32, u64, Stage);

/// The data and when it was kept.
type Kept = (StageData, Instant);

impl Registry {
    /// Keeps `data` for (pid, process, stage).
    pub fn put(&self, pid: u32, process: u64, stage: Stage, data: StageData) {
        if let Ok(mut r) = self.0.lock() {
            r.insert((pid, process, stage), (data, Instant::now()));
        }
    }

    /// The data for (pid, process, stage), if this node has it.
    pub fn get(&self, pid: u32, process: u64, stage: Stage) -> Option<StageData> {
        self.0
            .lock()
            .ok()?
            .get(&(pid, process, stage))
            .map(|(d, _)| d.clone())
    }

    /// Forgets one stage's data of one process.
    pub fn forget_stage(&self, pid: u32, process: u64, stage: Stage) {
        if let Ok(mut r) = self.0.lock() {
            r.remove(&(pid, process, stage));
        }
    }

    /// Forgets every stage of one process.
    pub fn forget(&self, pid: u32, process: u64) {
        if let Ok(mut r) = self.0.lock() {
            r.retain(|(p, id, _), _| !(*p == pid && *id == process));
        }
    }

    /// Forgets the processes of a pipeline that are not `live`, among those kept for more than
    /// a few seconds (a process created after `live` was listed is not touched).
    pub fn keep_only(&self, pid: u32, live: &HashSet<u64>) {
        if let Ok(mut r) = self.0.lock() {
            r.retain(|(p, id, _), (_, at)| {
                *p != pid || live.contains(id) || at.elapsed() < Duration::from_secs(5)
            });
        }
    }

    /// Forgets a whole pipeline.
    pub fn forget_pipeline(&self, pid: u32) {
        if let Ok(mut r) = self.0.lock() {
            r.retain(|(p, _, _), _| *p != pid);
        }
    }

    /// At most every second, forgets the data of processes no longer in the window `snap`
    /// (`last` is when it last did).
    pub(crate) fn sweep(&self, pid: u32, snap: &Snapshot, last: &mut Instant) {
        if last.elapsed() >= Duration::from_secs(1) {
            self.keep_only(pid, &snap.processes.keys().copied().collect());
            *last = Instant::now();
        }
    }
}
