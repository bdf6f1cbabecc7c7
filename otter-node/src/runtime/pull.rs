//! Getting the data a stage-done child points at: from this node's [`Registry`], else pulled
//! over HTTP from the node that produced it.

use zk_coord::otter_paths;
use zookeeper_client::Client;

use crate::process::{Process, Produced, Stage};
use crate::runtime::error::RuntimeError;
use crate::runtime::options::NodeOptions;
use crate::runtime::registry::{Registry, StageData};

/// Whether the puller holds the claim of the process for its stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// It does: data gone means its stage-done child is deleted so the stage is redone.
    Held,
    /// Not yet (a pull made while the claim is being made): nothing in ZooKeeper is changed.
    Pending,
}

/// The data `stage` produced for `process`. With [`Claim::Held`], when the producing node is gone
/// (not registered any more) or no longer has the data, its stage-done child is deleted so the
/// stage is redone; the error says so.
pub(crate) async fn pull(
    opts: &NodeOptions,
    zk: &Client,
    http: &reqwest::Client,
    registry: &Registry,
    process: &Process,
    stage: Stage,
    claim: Claim,
) -> Result<StageData, RuntimeError> {
    // An inline process holds its `transformed` record itself; it has no stage children to
    // delete, so data gone means the batch cannot be loaded (Load fails it and Select redoes it).
    let inline = process.is_inline();
    // Only the holder of the claim may delete a stage-done child.
    let redo = claim == Claim::Held && !inline;
    let child = if inline && stage == Stage::Transformed {
        process.path()
    } else {
        process.child(stage)
    };
    let (data, _) = crate::process::read_seen(zk, &child)
        .await
        .map_err(RuntimeError::zk("get_data", child.clone()))?;
    let produced: Produced =
        serde_json::from_slice(&data).map_err(|source| RuntimeError::Json {
            what: stage.name(),
            source,
        })?;
    if produced.node == opts.id {
        if let Some(d) = registry.get(process.pid, process.id, stage) {
            return Ok(d);
        }
    }
    let url = produced.url_of(process.id);
    match fetch(http, &url).await {
        Ok(d) => Ok(StageData::decode(stage, &d)?),
        // The producer is up but answers that it has no such data (it forgot it, or it is a
        // batch of an earlier window that had the same number): nothing will bring it back, so
        // the stage is redone instead of asked again forever.
        Err(FetchError::Status(reqwest::StatusCode::NOT_FOUND)) if stage != Stage::Selected => {
            if redo {
                let _ = zk.delete(&child, None).await;
            }
            Err(RuntimeError::DataGone {
                node: produced.node,
                stage: stage.name(),
                url,
            })
        }
        Err(source) => {
            let gone = matches!(
                zk.check_stat(&otter_paths::node(produced.node)).await,
                Ok(None)
            ) || produced.node == opts.id;
            if gone && stage != Stage::Selected {
                // Its data died with the node: the stage runs again.
                if redo {
                    let _ = zk.delete(&child, None).await;
                }
                return Err(RuntimeError::ProducerGone {
                    node: produced.node,
                    stage: stage.name(),
                    source,
                });
            }
            Err(RuntimeError::Pull { url, source })
        }
    }
}

/// Why a GET of stage data failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No response (connection refused, timeout, …) or the body was cut.
    #[error("{0}")]
    Request(#[from] reqwest::Error),
    /// A response that is not a success (404 once the data is forgotten).
    #[error("HTTP {0}")]
    Status(reqwest::StatusCode),
}

/// GETs `url`.
async fn fetch(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, FetchError> {
    let r = http.get(url).send().await?;
    if !r.status().is_success() {
        return Err(FetchError::Status(r.status()));
    }
    Ok(r.bytes().await?.to_vec())
}
