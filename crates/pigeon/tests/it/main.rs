//! Integration tests: the real server on 127.0.0.1:0 with a fresh SQLite database, driven over
//! HTTP.

mod agent;
mod astandes;
mod binary;
mod callbacks;
mod cli;
mod crash;
mod helpers;
mod longpoll;
mod maintenance;
mod notifications;
mod ovh_channel;
mod pairing;
mod python;
mod raspisms_auth;
mod raspisms_list;
mod raspisms_phones;
mod raspisms_resources;
mod raspisms_scheduled;
mod raspisms_seed;
mod raspisms_stats;
mod reach;
mod reach_channel;
mod reach_client;
mod sending;
mod webhooks;
