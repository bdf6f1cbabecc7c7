//! Load: applies a batch to the target MySQL (being written).
