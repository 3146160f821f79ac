//! Pigeon, a self-hosted SMS gateway: the server, its services and its front doors.

pub mod agent;
pub mod app;
pub mod cli;
pub mod config;
pub mod formats;
pub mod http;
pub mod services;
pub mod workers;
