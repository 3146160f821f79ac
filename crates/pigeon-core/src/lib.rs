//! Pigeon's pure domain rules. Nothing here does I/O: no tokio, no SQL, no HTTP.

pub mod condition;
pub mod numbers;
pub mod recipients;
pub mod secret;
pub mod settings;
pub mod template;
pub mod time;
