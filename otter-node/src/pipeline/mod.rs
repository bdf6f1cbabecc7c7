//! The stages of a pipeline, one module each: [`select`] (the mainstem's embedded canal
//! destination feeding the process window), [`extract`] and [`transform`] (run by the
//! stage workers), and [`load`] (into the target MySQL, strictly in process order).
//! Batches move between stages through the process window in ZooKeeper ([`crate::process`]).

mod context;
pub mod extract;
pub mod load;
pub mod select;
pub(crate) mod stage_worker;
pub mod transform;

pub(crate) use context::StageContext;
