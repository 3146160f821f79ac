//! The device side: the protocol both ends speak, and `pigeon agent`, the client that pairs with
//! a 7-digit code and sends SMS for the server through a backend.

pub mod backend;
pub mod client;
pub mod protocol;
