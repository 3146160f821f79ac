//! Pigeon's pure domain rules. Nothing here does I/O: no tokio, no SQL, no HTTP.

pub mod condition;
pub mod numbers;
pub mod recipients;
pub mod retry;
pub mod routing;
pub mod secret;
pub mod settings;
pub mod signature;
pub mod status;
pub mod template;
pub mod text;
pub mod time;
