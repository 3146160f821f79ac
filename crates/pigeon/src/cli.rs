//! The command line: `serve`, `migrate`, `user ...` and `agent`. Every server option may also
//! come from a `PIGEON_*` variable or the config file (see [`crate::config`]); the agent reads
//! neither.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// Manage the credentials of the OVH SMS API (`/1.0`).
    #[command(subcommand)]
    OvhCredentials(OvhCredentialsCommand),
    /// Run the device agent: pair with a server and send its SMS from this machine (a phone
    /// under Termux, a box with a USB modem). Uses no database and no server config.
    Agent(AgentArgs),
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The Pigeon server, e.g. https://sms.example.com; needed only to pair.
    #[arg(long, env = "PIGEON_AGENT_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// The 7-digit pairing code from `POST /api/v1/attach`; unused once paired.
    #[arg(long, value_name = "CODE")]
    pub pin: Option<String>,
    /// How SMS are sent.
    #[arg(long, value_enum, default_value_t = AgentBackend::Simulator)]
    pub backend: AgentBackend,
    /// With `--backend command`: the program run for each SMS, split on whitespace, with
    /// `{to}` and `{text}` replaced (never through a shell), e.g.
    /// 'termux-sms-send -n {to} {text}' or 'gammu sendsms TEXT {to} -text {text}'.
    #[arg(long, value_name = "TEMPLATE")]
    pub send_command: Option<String>,
    /// A program whose output lines are received SMS as JSON {"from", "text", "at"?}; kept
    /// running, started again 20 s after it exits.
    #[arg(long, value_name = "TEMPLATE")]
    pub receive_command: Option<String>,
    /// Where the pairing (server, token, device) is kept, with mode 0600.
    #[arg(long, value_name = "FILE", default_value = "pigeon-agent.json")]
    pub state: PathBuf,
    /// How many SMS the device sends at once (the server takes 1 to 64).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    pub capacity: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AgentBackend {
    /// Every SMS is sent, then delivered 50 ms later; nothing leaves the machine.
    Simulator,
    /// `--send-command` is run for every SMS.
    Command,
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
pub enum OvhCredentialsCommand {
    /// Create an application key, its secret and a consumer key for an account, and print them
    /// (`application_key=…`, `application_secret=…`, `consumer_key=…`; shown only once).
    Create { email: String },
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
