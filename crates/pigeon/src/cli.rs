//! The command line: `serve`, `migrate` and `user ...`. Every option may also come from a
//! `PIGEON_*` variable or the config file (see [`crate::config`]).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "pigeon", version, about = "Pigeon, a self-hosted SMS gateway")]
pub struct Cli {
    /// Config file (TOML); `pigeon.toml` in the working directory is read when present.
    #[arg(long, global = true, env = "PIGEON_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command: where the data lives.
#[derive(Debug, Args, Default)]
pub struct CommonArgs {
    /// Database URL [default: sqlite://pigeon.db] (PIGEON_DATABASE_URL).
    #[arg(long = "database", global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Directory for the server key and media [default: pigeon-data] (PIGEON_DATA_DIR).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (creates and migrates the database if needed).
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080] (PIGEON_LISTEN).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Public base URL used in links [default: http://LISTEN] (PIGEON_PUBLIC_URL).
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// A private network outgoing requests (webhooks, providers) may reach, e.g.
    /// 192.168.1.0/24; repeatable (PIGEON_ALLOW_OUTBOUND_CIDR='["..."]').
    #[arg(long = "allow-outbound-cidr", value_name = "CIDR")]
    pub allow_outbound_cidr: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account and print its API key.
    Add {
        email: String,
        /// Make the account an administrator.
        #[arg(long)]
        admin: bool,
        /// Password (a random one is generated and printed otherwise).
        #[arg(long)]
        password: Option<String>,
        /// Use this API key (16 characters or more) instead of a random one.
        #[arg(long)]
        api_key: Option<String>,
    },
    /// List accounts.
    List,
    /// Suspend an account: its API key is refused with error 16.
    Suspend { email: String },
    /// Re-activate a suspended account.
    Activate { email: String },
    /// Replace an account's API key with a new random one and print it.
    RotateKey { email: String },
    /// Give an account a quota of credits (one per SMS segment) starting now.
    Quota {
        email: String,
        /// Credits for each period.
        #[arg(long)]
        credit: i64,
        /// Extra credits for the first period.
        #[arg(long, default_value_t = 0)]
        additional: i64,
        /// Length of a period, as an ISO 8601 duration.
        #[arg(long, default_value = "P1M")]
        interval: String,
        /// Start a new period when one ends.
        #[arg(long)]
        auto_renew: bool,
        /// Carry unused credits over to the next period.
        #[arg(long)]
        report_unused: bool,
        /// Carry unused additional credits over to the next period.
        #[arg(long)]
        report_unused_additional: bool,
    },
    /// Change one of an account's settings (e.g. `timezone Europe/Paris`, `smsstop 0`).
    Set {
        email: String,
        name: String,
        value: String,
    },
}
