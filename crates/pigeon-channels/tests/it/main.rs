//! Integration tests: the channels against real files and fake Kannel and Reach servers over
//! real HTTP.

mod helpers;
mod http_client;
mod kannel;
mod reach;
mod simulator;
mod test_channel;
