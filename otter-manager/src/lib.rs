//! otter-manager: configures, controls and monitors Otter channels, pipelines and nodes.
#![deny(missing_docs)]
