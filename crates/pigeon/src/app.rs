//! The application: its configuration, store and server key, and `run(listener, shutdown)`,
//! the one entry point the binary and the tests share.

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use pigeon_channels::Event;
use pigeon_channels::http_client::{Allow, HttpClient};
use pigeon_core::secret::ServerKey;
use pigeon_store::{Durability, Store};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::services::Recent;

/// What every request handler, service and worker works with.
#[derive(Debug)]
pub struct App {
    pub config: Config,
    pub store: Store,
    pub key: ServerKey,
    /// `config.public_base()`, computed once.
    pub public_base: String,
    /// The one outgoing HTTP client: timeouts, no redirects, the SSRF guard.
    pub outbound: HttpClient,
    /// Where channels hand delivery reports and inbound SMS; the events worker drains it.
    pub events: mpsc::Sender<Event>,
    events_rx: Mutex<Option<mpsc::Receiver<Event>>>,
    /// Wakes the scheduler and router, and the webhook worker, when there is new work (a
    /// campaign created, a message queued or routed).
    pub wake: Notify,
    /// Wakes the senders (phone workers, device links) when messages got their phone. Apart
    /// from `wake`: a campaign accepted is no work for them until it is dispatched and routed,
    /// and a sender woken for nothing still pays a claim.
    pub routed: Notify,
    /// Failed device pairing attempts, so pairing codes cannot be guessed.
    pub pairing: crate::services::devices::PairingGuard,
    /// The links of devices on the long-poll fallback.
    pub polled: crate::http::device::polled::Polled,
    /// Each API key's allowance of Reach API requests.
    pub reach_rate: crate::services::messaging::RateLimit,
    /// Accounts by API key digest, and settings by account, read on every request.
    pub recent_users: Recent<String, pigeon_store::users::User>,
    pub recent_settings: Recent<i64, crate::services::accounts::Settings>,
    /// Where each account's events of each type go (webhooks, signing key), read per event.
    pub recent_targets: Recent<(i64, &'static str), crate::services::events::Targets>,
    /// Phones' owners (which never change), read per delivery report.
    pub recent_phone_owners: Recent<i64, i64>,
    /// STOP lists by account, read per message (Reach) or scheduler pass.
    pub recent_stop_lists: Recent<i64, Arc<std::collections::HashSet<String>>>,
    /// Devices by (account, id), read per message sent through one.
    pub recent_devices: Recent<(i64, i64), pigeon_store::devices::Device>,
    /// Whether each account has a quota, read per send.
    pub recent_quotas: Recent<i64, bool>,
}

/// How long an account or its settings may be served from memory: what a change made by the
/// CLI (another process) takes to show.
const RECENT_TTL: Duration = Duration::from_secs(1);

pub type AppState = Arc<App>;

impl App {
    /// Messages joined the queue: the router looks at them, and the senders too, as some come
    /// with their phone.
    pub fn queued(&self) {
        self.wake.notify_waiters();
        self.routed.notify_waiters();
    }

    /// Opens the database (creating and migrating it as needed) and loads the server key
    /// (generating it into the data dir at first start unless one is configured).
    pub async fn open(config: Config) -> anyhow::Result<App> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
        let key = match &config.secret_key {
            Some(hex) => ServerKey::from_hex(hex).context("PIGEON_SECRET_KEY")?,
            None => load_or_create_key(&config.data_dir.join("server.key"))?,
        };
        let durability = match config.durability.trim().to_ascii_lowercase().as_str() {
            "full" => Durability::Full,
            "normal" => Durability::Normal,
            other => anyhow::bail!("durability must be `full` or `normal`, not `{other}`"),
        };
        let store = Store::connect_with(&config.database_url, durability).await?;
        store.migrate().await?;
        let public_base = config.public_base();
        let allow = Allow::parse(&config.allow_outbound_cidr).map_err(anyhow::Error::msg)?;
        let connect = Duration::from_millis(config.webhook_connect_timeout_ms);
        let outbound =
            HttpClient::new(allow, connect, Duration::from_secs(30)).map_err(anyhow::Error::msg)?;
        let (events, events_rx) = mpsc::channel(10_000);
        let reach_rate = crate::services::messaging::RateLimit::new(
            config.reach_rate_per_sec,
            config.reach_rate_burst,
        );
        Ok(App {
            config,
            store,
            key,
            public_base,
            outbound,
            events,
            events_rx: Mutex::new(Some(events_rx)),
            wake: Notify::new(),
            routed: Notify::new(),
            pairing: Default::default(),
            polled: Default::default(),
            reach_rate,
            recent_users: Recent::new(RECENT_TTL),
            recent_settings: Recent::new(RECENT_TTL),
            recent_targets: Recent::new(RECENT_TTL),
            recent_phone_owners: Recent::new(RECENT_TTL),
            recent_stop_lists: Recent::new(RECENT_TTL),
            recent_devices: Recent::new(RECENT_TTL),
            recent_quotas: Recent::new(RECENT_TTL),
        })
    }

    /// The events receiver, taken once by the events worker.
    pub fn take_events(&self) -> Option<mpsc::Receiver<Event>> {
        self.events_rx.lock().ok().and_then(|mut rx| rx.take())
    }
}

fn load_or_create_key(path: &Path) -> anyhow::Result<ServerKey> {
    if !path.exists() {
        let hex = ServerKey::generate_hex()?;
        write_private(path, &hex).with_context(|| format!("cannot write {}", path.display()))?;
        tracing::info!(path = %path.display(), "generated the server key");
    }
    let hex =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    ServerKey::from_hex(&hex).with_context(|| format!("bad server key in {}", path.display()))
}

/// Creates a file readable by its owner only; fails if it already exists, so two processes
/// starting together cannot overwrite each other's key.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// Serves the HTTP API on `listener` and runs the workers until `shutdown` completes, then
/// finishes the requests and sends under way.
pub async fn run(
    app: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stop = CancellationToken::new();
    let workers = app
        .config
        .workers
        .then(|| crate::workers::start(app.clone(), stop.clone()));
    let router = crate::http::router(app.clone());
    // Client addresses bound the pairing attempts of each client.
    let service = axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
        std::net::SocketAddr,
    >(router);
    let stopping = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopping.cancel();
    });
    axum::serve(listener, service)
        .with_graceful_shutdown(stop.clone().cancelled_owned())
        .await?;
    stop.cancel();
    if let Some(workers) = workers {
        workers.close();
        workers.wait().await;
    }
    app.store.close().await;
    Ok(())
}
