//! Integration tests: the channels against real files and a fake Kannel over real HTTP.

mod helpers;
mod http_client;
mod kannel;
mod simulator;
mod test_channel;
