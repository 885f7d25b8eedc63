//! The native edgeq host (placeholder while the server is written).
#![warn(missing_docs)]

pub mod redb_store;
