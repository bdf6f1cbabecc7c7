//! The JSON records of a process's life: [`Produced`] in its stage-done children and [`Termin`]
//! in `termin/{seq}`.

use serde::{Deserialize, Serialize};

use crate::process::Stage;

/// What a stage-done child (`selected`, `extracted`, `transformed`) says: who has the data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Produced {
    /// The node holding the data.
    pub node: u32,
    /// Where to pull it (`http://{address}/pipelines/{pid}/processes/{id}/{stage}`).
    pub url: String,
    /// Rows (or entries, for Select) in it.
    pub rows: usize,
}

impl Produced {
    /// The record for `stage`'s data of process `id` of pipeline `pid`, held by node `node` that
    /// serves HTTP at `http_address`.
    pub fn new(
        node: u32,
        http_address: &str,
        pid: u32,
        id: u64,
        stage: Stage,
        rows: usize,
    ) -> Self {
        Self {
            node,
            url: format!(
                "http://{http_address}/pipelines/{pid}/processes/{id}/{}",
                stage.name()
            ),
            rows,
        }
    }

    /// The record an inline process holds ([`crate::process::window::Opening::Inline`]), written
    /// before ZooKeeper numbers the process: its URL says [`PROCESS_ID`] where the id goes
    /// ([`Produced::url_of`]).
    pub fn inline(node: u32, http_address: &str, pid: u32, stage: Stage, rows: usize) -> Self {
        Self {
            node,
            url: format!(
                "http://{http_address}/pipelines/{pid}/processes/{PROCESS_ID}/{}",
                stage.name()
            ),
            rows,
        }
    }

    /// Where process `id`'s data is pulled from.
    pub fn url_of(&self, id: u64) -> String {
        self.url.replace(PROCESS_ID, &id.to_string())
    }

    /// The JSON written in the child.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// What stands for the process id in the URL of an inline process's record.
pub const PROCESS_ID: &str = "{process}";

/// What `termin/{id}` says: whether Load applied the batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Termin {
    /// The process id.
    pub process: u64,
    /// Whether the batch was applied (else Select rolls back and redoes everything in flight).
    pub ok: bool,
    /// Load's error when not `ok`.
    #[serde(default)]
    pub error: String,
}

impl Termin {
    /// Load applied process `process`.
    pub fn loaded(process: u64) -> Self {
        Self {
            process,
            ok: true,
            error: String::new(),
        }
    }

    /// Load failed process `process` with `error`.
    pub fn failed(process: u64, error: String) -> Self {
        Self {
            process,
            ok: false,
            error,
        }
    }

    /// The JSON written in the termin.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}
