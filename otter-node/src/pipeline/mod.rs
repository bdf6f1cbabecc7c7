//! The stages of a pipeline, one module each: [`select`] (the mainstem's embedded canal
//! destination feeding the process window), [`extract`] and [`transform`] (run by the
//! stage workers), and [`load`] (into the target MySQL, strictly in process order).
//! Batches move between stages through the process window in ZooKeeper ([`crate::process`]).
//! [`loopback`] is how two-way and multi-site sync never echo: Load marks, Select drops.
//! `handoff` is the in-site shortcut: a small batch on a node that may run every stage is
//! extracted and transformed by Select itself, its stage children written at once; `preclaim`
//! lets Select claim such a batch for this node's Load in the same write.

mod context;
pub mod extract;
pub(crate) mod handoff;
pub mod heartbeat;
pub mod load;
pub mod loopback;
pub(crate) mod preclaim;
pub mod select;
pub mod snapshot_request;
pub(crate) mod stage_worker;
pub mod transform;

pub(crate) use context::StageContext;
