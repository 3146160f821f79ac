//! Integration tests: the channels against real files and fake Kannel, Reach and OVH servers over
//! real HTTP.

mod helpers;
mod http_client;
mod kannel;
mod ovh;
mod reach;
mod simulator;
mod test_channel;
