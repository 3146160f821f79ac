//! Pigeon's channels: the adapters a phone sends and receives through.
//!
//! Each adapter is known by Pigeon's own name (`test`) and by the RaspiSMS class name its users
//! already have in scripts (`adapters\TestAdapter`), and declares the configuration fields its
//! `adapter_data` must carry and what it can do.

pub mod registry;

pub use registry::{Adapter, Capabilities, DataField, find};
