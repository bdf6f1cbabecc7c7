//! The store's bounds and batching (Canal's `canal.instance.memory.*` and `get.ddl.isolation`)
//! and the [`Gate`] that decides whether batches may be handed out.

use std::sync::Arc;

/// How GET's batch size is counted (Canal's `canal.instance.memory.batch.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum BatchMode {
    /// `fetch_size` entries.
    Itemsize,
    /// `fetch_size × mem_unit` bytes of serialized entries.
    Memsize,
}

/// Store bounds and batching.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    /// Maximum entries held (Canal's `canal.instance.memory.buffer.size`).
    pub max_entries: usize,
    /// Maximum bytes of serialized entries held.
    pub max_bytes: usize,
    /// How batch sizes are counted.
    pub batch_mode: BatchMode,
    /// Bytes per `fetch_size` unit in MEMSIZE mode (`canal.instance.memory.buffer.memunit`).
    pub mem_unit: usize,
    /// DDL alone in its batch (`canal.instance.get.ddl.isolation`).
    pub ddl_isolation: bool,
    /// A client that holds a full store while another is far ahead leaves the shared window (to
    /// be served from a catch-up stream); false keeps plain back-pressure for everyone.
    pub detach_laggards: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            max_entries: 16384,
            max_bytes: 16 * 1024 * 1024,
            batch_mode: BatchMode::Memsize,
            mem_unit: 1024,
            ddl_isolation: false,
            detach_laggards: true,
        }
    }
}

/// Decides whether batches may be handed out now (HA: this server holds the running node in a
/// live session). While it says no, gets wait (or return empty when non-blocking).
pub type Gate = Arc<dyn Fn() -> bool + Send + Sync>;
