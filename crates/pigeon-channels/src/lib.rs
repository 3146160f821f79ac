//! Pigeon's channels: the adapters a phone sends and receives through.
//!
//! Each adapter is known by Pigeon's own name (`test`) and by the RaspiSMS class name its users
//! already have in scripts (`adapters\TestAdapter`), declares the configuration fields its
//! `adapter_data` must carry and what it can do (see [`registry`]). A [`Channel`] is one
//! phone's adapter opened with its data: it sends one message at a time and hands what arrives
//! later (delivery reports, inbound SMS) to the services as [`Event`]s.

mod data;
pub mod http_client;
pub mod kannel;
pub mod ovh;
pub mod reach;
pub mod registry;
pub mod simulator;
pub mod test;
mod upstream;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use pigeon_core::time::Ts;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

pub use registry::{Adapter, Capabilities, DataField, find};

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub message_id: i64,
    /// E.164.
    pub destination: String,
    /// The final text (media links already appended when the channel cannot send MMS).
    pub text: String,
    pub flash: bool,
    /// The text needs UCS-2 (it is not GSM-7).
    pub ucs2: bool,
    /// Public URLs of the media, for channels that send MMS.
    pub media_urls: Vec<String>,
    /// Stable across retries of the same message: channels that accept an idempotency key use
    /// it so that a send repeated after a crash is not delivered twice.
    pub idempotency_key: String,
    /// Which attempt this is (1 for the first): a channel whose provider may have taken an
    /// earlier attempt that timed out checks before sending again.
    pub attempt: u32,
    /// The sender the client asked for (a number or an alphanumeric name), for channels that
    /// can set one; the others send as their own number.
    pub sender: Option<String>,
}

/// A channel accepted the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The id the provider knows the message by; delivery reports refer to it.
    pub provider_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying later (timeout, 5xx, no network, provider busy).
    #[error("{0}")]
    Transient(String),
    /// Retrying will not help (rejected number, bad credentials, invalid message).
    #[error("{0}")]
    Permanent(String),
}

/// What a delivery report says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    Delivered,
    /// The network gave up (expired, rejected by the handset's network).
    Undelivered,
    /// Rejected by the provider or the SMSC.
    Failed,
    /// An intermediate notice (buffered, accepted by the SMSC): no status change.
    Pending,
}

/// An SMS that arrived on a phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    pub origin: String,
    pub text: String,
    pub at: Ts,
}

/// What a channel hands to the services, from its own tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `ack` is called once the report is recorded (or given up on), so a channel that must not
    /// lose reports can send again those that were never acknowledged.
    Status {
        phone_id: i64,
        provider_id: String,
        report: Report,
        ack: Ack,
    },
    Inbound {
        phone_id: i64,
        sms: Inbound,
    },
}

/// The acknowledgement of an event: the receiver learns the services are done with it.
#[derive(Clone, Default)]
pub struct Ack(Option<Arc<Mutex<Option<oneshot::Sender<()>>>>>);

impl Ack {
    pub fn new() -> (Ack, oneshot::Receiver<()>) {
        let (done, waiting) = oneshot::channel();
        (Ack(Some(Arc::new(Mutex::new(Some(done))))), waiting)
    }

    /// Acknowledges (once; later calls do nothing).
    pub fn done(&self) {
        let sender = self
            .0
            .as_ref()
            .and_then(|s| s.lock().unwrap_or_else(PoisonError::into_inner).take());
        if let Some(sender) = sender {
            let _ = sender.send(());
        }
    }
}

/// Acknowledgements never make two events different.
impl PartialEq for Ack {
    fn eq(&self, _: &Ack) -> bool {
        true
    }
}

impl Eq for Ack {}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ack")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown adapter `{0}`")]
    UnknownAdapter(String),
    #[error("adapter data field `{field}`: {reason}")]
    Field { field: String, reason: String },
    /// The adapter sends through a connection its device opens (the device protocol), not
    /// through a channel the server opens.
    #[error("the {0} adapter sends only through its paired device's connection")]
    NotConnected(String),
}

/// What a channel needs from the server around it.
#[derive(Debug, Clone)]
pub struct Context {
    pub phone_id: i64,
    /// A directory of the channel's own (the test channel's files, the simulator's log).
    pub data_dir: PathBuf,
    /// Pigeon's URL for this phone's delivery reports, authenticated
    /// (`…/callback/status/{adapter}/{phone_id}?api_key=…`).
    pub status_callback_url: String,
    pub events: mpsc::Sender<Event>,
    /// The one outgoing HTTP client (with the SSRF guard).
    pub http: http_client::HttpClient,
}

/// One phone's adapter, opened with its data.
#[derive(Debug)]
pub enum Channel {
    Test(test::TestChannel),
    Simulator(simulator::Simulator),
    Kannel(kannel::Kannel),
    Reach(reach::Reach),
    /// Both OVH adapters (virtual number and short code).
    Ovh(ovh::Ovh),
}

impl Channel {
    /// Opens the adapter `name` (Pigeon name or RaspiSMS class) with the phone's data.
    pub fn open(
        name: &str,
        data: &Map<String, Value>,
        ctx: Context,
    ) -> Result<Channel, ConfigError> {
        let adapter = find(name).ok_or_else(|| ConfigError::UnknownAdapter(name.to_string()))?;
        Ok(match adapter.name {
            "simulator" => Channel::Simulator(simulator::Simulator::open(data, ctx)?),
            "kannel" => Channel::Kannel(kannel::Kannel::open(data, ctx)?),
            "reach" => Channel::Reach(reach::Reach::open(data, ctx)?),
            "ovh_virtual_number" => Channel::Ovh(ovh::Ovh::open_virtual_number(data, ctx)?),
            "ovh_shortcode" => Channel::Ovh(ovh::Ovh::open_shortcode(data, ctx)?),
            "test" => Channel::Test(test::TestChannel::open(ctx)?),
            other => return Err(ConfigError::NotConnected(other.to_string())),
        })
    }

    pub async fn send(&self, message: &Outgoing) -> Result<Sent, SendError> {
        match self {
            Channel::Test(c) => c.send(message).await,
            Channel::Simulator(c) => c.send(message).await,
            Channel::Kannel(c) => c.send(message).await,
            Channel::Reach(c) => c.send(message).await,
            Channel::Ovh(c) => c.send(message).await,
        }
    }

    /// SMS that arrived since the last call, for adapters that are polled (the others deliver
    /// inbound SMS through callbacks or events).
    pub async fn read(&self) -> Result<Vec<Inbound>, SendError> {
        match self {
            Channel::Test(c) => c.read().await,
            Channel::Ovh(c) => c.read().await,
            Channel::Simulator(_) | Channel::Kannel(_) | Channel::Reach(_) => Ok(Vec::new()),
        }
    }

    pub fn adapter(&self) -> &'static Adapter {
        let name = match self {
            Channel::Test(_) => "test",
            Channel::Simulator(_) => "simulator",
            Channel::Kannel(_) => "kannel",
            Channel::Reach(_) => "reach",
            Channel::Ovh(c) => c.adapter_name(),
        };
        find(name).unwrap_or(&registry::TEST)
    }

    /// How many sends may be in flight at once on this phone.
    pub fn concurrency(&self) -> usize {
        match self {
            Channel::Simulator(c) => c.concurrency(),
            _ => self.adapter().capabilities.concurrency,
        }
    }
}

/// A client that may reach loopback, for tests whose fake providers listen on 127.0.0.1.
pub fn loopback_client() -> Result<http_client::HttpClient, String> {
    let allow = http_client::Allow::parse(&["127.0.0.0/8".to_string(), "::1/128".to_string()])?;
    let timeout = std::time::Duration::from_secs(30);
    http_client::HttpClient::new(allow, timeout, timeout)
}

/// Parses a provider's delivery-report callback (query and form parameters) into the provider
/// id and what it reports; `None` when the request is not a report this adapter understands.
pub fn parse_status_callback(
    adapter: &Adapter,
    params: &[(String, String)],
) -> Option<(String, Report)> {
    match adapter.name {
        "kannel" => kannel::parse_status(params),
        "reach" => reach::parse_status(params),
        "ovh_virtual_number" | "ovh_shortcode" => ovh::parse_status(params),
        "test" => test::parse_status(params),
        _ => None,
    }
}

/// Whether the adapter's provider signs its delivery reports: they are then accepted only on
/// the per-phone URL, where the phone's credentials check the signature.
pub fn signs_status_callbacks(adapter: &Adapter) -> bool {
    adapter.name == "reach"
}

/// Checks that a delivery-report callback for a phone comes from its provider, for adapters
/// whose providers sign their callbacks. `url` is the callback URL as the channel gave it to the
/// provider (scheme, host, path and query), `form` the parameters of a form body.
pub fn verify_status_callback(
    adapter: &Adapter,
    data: &Map<String, Value>,
    url: &str,
    headers: &[(String, String)],
    form: &[(String, String)],
) -> Result<(), String> {
    match adapter.name {
        "reach" => reach::verify(data, url, headers, form),
        // Kannel, OVH and the test adapter do not sign: the API key in the URL is their only
        // proof.
        _ => Ok(()),
    }
}

/// Parses a provider's reception callback (headers, query and form parameters, raw body).
pub fn parse_reception_callback(
    adapter: &Adapter,
    headers: &[(String, String)],
    params: &[(String, String)],
    body: &[u8],
) -> Result<Inbound, String> {
    match adapter.name {
        "kannel" => kannel::parse_reception(headers, body),
        "test" => test::parse_reception(params),
        other => Err(format!(
            "the {other} adapter does not receive SMS by callback"
        )),
    }
}
