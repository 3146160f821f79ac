//! Configuration, in order of precedence: command-line flags, `PIGEON_*` environment variables,
//! the config file, defaults.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::cli::{CommonArgs, ServeArgs};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Config {
    pub listen: String,
    pub database_url: String,
    /// Base of the links Pigeon builds (pagination, callbacks); `http://LISTEN` when unset.
    pub public_url: Option<String>,
    pub data_dir: PathBuf,
    /// The server key (64 hex characters); read from `DATA_DIR/server.key` (created at first
    /// start) when unset.
    pub secret_key: Option<String>,
    /// Run the scheduler, sender and maintenance workers (off only for tests that step them).
    pub workers: bool,
    /// Send attempts per message before it fails.
    pub max_tries: i64,
    /// Waits before each retry of a transiently failed send, in milliseconds (±20 % jitter;
    /// the last one repeats).
    pub retry_ms: Vec<u64>,
    /// How long a message may wait to be sent before it expires, in seconds.
    pub validity_secs: i64,
    /// How long a claimed send belongs to its sender before it goes back to the queue, in seconds.
    pub lease_secs: i64,
    /// How often the workers look for work when nothing wakes them, in milliseconds.
    pub tick_ms: u64,
    /// How often polled phones are read for inbound SMS, in seconds.
    pub read_interval_secs: u64,
    /// How often the phone reliability check runs, in seconds.
    pub reliability_interval_secs: u64,
    /// A device that says nothing for this long is offline, in seconds.
    pub device_silence_secs: u64,
    /// Networks outgoing requests (webhooks, providers) may reach although they are private,
    /// loopback or link-local, e.g. `["192.168.1.0/24"]`.
    pub allow_outbound_cidr: Vec<String>,
    /// Webhook requests: connect and total timeouts, in milliseconds.
    pub webhook_connect_timeout_ms: u64,
    pub webhook_timeout_ms: u64,
    /// Waits before each retry of a failed webhook delivery, in milliseconds (±20 % jitter);
    /// a delivery is attempted once more than there are entries.
    pub webhook_retry_ms: Vec<u64>,
    /// The least wait after a 429 or a timeout, in milliseconds.
    pub webhook_throttle_ms: u64,
    /// A webhook failing for this long without a success is disabled, in seconds.
    pub webhook_disable_after_secs: u64,
    /// Webhook requests in flight at once, overall and per webhook.
    pub webhook_concurrency: usize,
    pub webhook_endpoint_concurrency: usize,
    /// Reach API requests allowed per second and per API key (0: no limit), and the burst
    /// above that rate; past them the answer is 429 with `Retry-After`.
    pub reach_rate_per_sec: u32,
    pub reach_rate_burst: u32,
    /// How far an OVH request's `X-Ovh-Timestamp` may be from the server's clock, in seconds.
    pub ovh_time_skew_secs: i64,
    /// `full`: a success answer means the data is fsync'd (survives a power cut); `normal`:
    /// it survives the process being killed, not a power cut.
    pub durability: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            database_url: "sqlite://pigeon.db".into(),
            public_url: None,
            data_dir: PathBuf::from("pigeon-data"),
            secret_key: None,
            workers: true,
            max_tries: 3,
            retry_ms: pigeon_core::retry::SEND_SCHEDULE
                .iter()
                .map(|d| d.as_millis() as u64)
                .collect(),
            validity_secs: 2 * 24 * 3600,
            lease_secs: 300,
            tick_ms: 1000,
            read_interval_secs: 20,
            reliability_interval_secs: 15 * 60,
            device_silence_secs: crate::agent::protocol::SILENCE_SECS,
            allow_outbound_cidr: Vec::new(),
            webhook_connect_timeout_ms: 5_000,
            webhook_timeout_ms: 15_000,
            webhook_retry_ms: [5, 300, 1_800, 7_200, 18_000, 36_000, 36_000]
                .iter()
                .map(|s| s * 1000)
                .collect(),
            webhook_throttle_ms: 60_000,
            webhook_disable_after_secs: 5 * 24 * 3600,
            webhook_concurrency: 64,
            webhook_endpoint_concurrency: 16,
            reach_rate_per_sec: 100,
            reach_rate_burst: 200,
            ovh_time_skew_secs: 300,
            durability: "full".into(),
        }
    }
}

/// Flags given on the command line; `None` leaves the value to the other sources.
#[derive(Debug, Default, Serialize)]
struct Flags<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    database_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    public_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<&'a Path>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    allow_outbound_cidr: &'a [String],
}

impl Config {
    pub fn load(
        file: Option<&Path>,
        common: &CommonArgs,
        serve: Option<&ServeArgs>,
    ) -> anyhow::Result<Config> {
        let file = file.unwrap_or(Path::new("pigeon.toml"));
        let flags = Flags {
            listen: serve.and_then(|s| s.listen.as_deref()),
            public_url: serve.and_then(|s| s.public_url.as_deref()),
            database_url: common.database_url.as_deref(),
            data_dir: common.data_dir.as_deref(),
            allow_outbound_cidr: serve.map_or(&[], |s| s.allow_outbound_cidr.as_slice()),
        };
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(file))
            .merge(Env::prefixed("PIGEON_").ignore(&["config"]))
            .merge(Serialized::defaults(flags))
            .extract()?;
        Ok(config)
    }

    /// The public base URL without a trailing slash.
    pub fn public_base(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.listen),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    // figment's own error type is large; this is its test harness's signature.
    #[allow(clippy::result_large_err)]
    fn flags_beat_env_beat_file_beat_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "pigeon.toml",
                "listen = \"127.0.0.1:9000\"\ndatabase_url = \"sqlite://file.db\"\ndata_dir = \"from-file\"",
            )?;
            jail.set_env("PIGEON_DATABASE_URL", "sqlite://env.db");
            let common = CommonArgs {
                database_url: None,
                data_dir: Some("from-flag".into()),
            };
            let c = Config::load(None, &common, None).map_err(|e| e.to_string())?;
            assert_eq!(c.listen, "127.0.0.1:9000");
            assert_eq!(c.database_url, "sqlite://env.db");
            assert_eq!(c.data_dir, PathBuf::from("from-flag"));
            assert_eq!(c.public_base(), "http://127.0.0.1:9000");
            let serve = ServeArgs {
                listen: None,
                public_url: Some("https://sms.example.com/".into()),
                allow_outbound_cidr: vec!["10.0.0.0/8".into()],
            };
            let c = Config::load(None, &common, Some(&serve)).map_err(|e| e.to_string())?;
            assert_eq!(c.public_base(), "https://sms.example.com");
            assert_eq!(c.allow_outbound_cidr, ["10.0.0.0/8"]);
            jail.set_env("PIGEON_ALLOW_OUTBOUND_CIDR", "[\"127.0.0.1/32\"]");
            let c = Config::load(None, &common, None).map_err(|e| e.to_string())?;
            assert_eq!(c.allow_outbound_cidr, ["127.0.0.1/32"]);
            Ok(())
        });
    }
}
