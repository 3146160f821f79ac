//! `pigeon agent`: pairs with a server once, then keeps one WebSocket to it and sends the SMS it
//! pushes through a [`Backend`].
//!
//! - **Pairing.** Without a token in the state file, the PIN is redeemed at
//!   `POST /device/v1/pair`; the server, token and device id are written to the state file (mode
//!   0600). With a token, the PIN is not used, so the same command line can be run again.
//! - **Session.** `GET /device/v1/ws` with `Authorization: Bearer <token>`; the agent sends
//!   `hello` first, then acks each job: 202 on receipt, 302 when the backend starts, then 203 and
//!   maybe 205, or an error status. A heartbeat (with a WebSocket ping) goes out whenever nothing
//!   was sent for the heartbeat interval; a server silent for three intervals (not even a pong) is
//!   taken as gone.
//! - **Jobs** run concurrently up to the capacity announced in `hello`; more are queued. A job
//!   already running is not started twice, and a job this agent already sent (203) is answered
//!   with its acks again instead of being sent again. A job is never retried by the agent: a
//!   failure is reported and the server decides.
//! - **Disconnects.** Jobs keep running, but a job's acks go only to the connection it was
//!   pushed on: once that connection is gone the server has taken the job back and decides, so
//!   the agent neither sends the SMS again nor reports it late. If the job is pushed again, its
//!   acks follow it to the new connection (and it is not sent twice). Inbound SMS, and other frames
//!   whose write failed, wait for the next connection. Reconnection uses exponential backoff from
//!   1 s to 30 s with jitter. A 401 on the upgrade means the token was revoked (paired again
//!   elsewhere): the agent stops with an error.
//! - **Stopping** (the cancellation token: SIGINT/SIGTERM): no new job is started, jobs being
//!   sent finish and their acks are flushed, then the socket is closed.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{Sink, SinkExt, StreamExt};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

use super::backend::{self, Backend, CommandBackend, SendOutcome};
use super::protocol::{FromAgent, HEARTBEAT_SECS, ToAgent};
use crate::cli::{AgentArgs, AgentBackend};

/// What the agent calls itself in `hello` and `User-Agent`.
pub const AGENT: &str = concat!("pigeon-agent/", env!("CARGO_PKG_VERSION"));

const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest `Retry-After` honoured while pairing: past it the code has expired anyway.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(15 * 60);
/// Inbound SMS read while disconnected wait here; when full, the receive command is paused.
const INBOUND_QUEUE: usize = 1000;
/// How many sent jobs are remembered so that a job pushed again is not sent twice.
const LEDGER_MAX: usize = 4096;
/// Status reported when the backend could not even try (the seed's "generic failure").
const STATUS_BACKEND_ERROR: u16 = 506;

/// The state file: where the agent is paired and its credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub server: String,
    pub token: Option<String>,
    pub device: Option<String>,
}

/// Reads the state file; `None` when there is none yet.
pub fn load_state(path: &Path) -> Result<Option<State>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let state = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a pigeon agent state file", path.display()))?;
            Ok(Some(state))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes the state file with mode 0600 (it holds the token), through a temporary file renamed
/// over it so a crash never leaves half a file.
pub fn save_state(path: &Path, state: &State) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let mut name = path
        .file_name()
        .context("the state file needs a file name")?
        .to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let write = || -> std::io::Result<()> {
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&serde_json::to_vec_pretty(state)?)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().with_context(|| format!("writing {}", path.display()))
}

/// The delay before reconnection attempt `attempt` (0 for the first), before jitter:
/// 1 s, 2 s, 4 s… up to 30 s.
pub fn backoff(attempt: u32) -> Duration {
    BACKOFF_FIRST
        .checked_mul(2u32.saturating_pow(attempt))
        .map_or(BACKOFF_MAX, |d| d.min(BACKOFF_MAX))
}

/// A random delay in [base/2, base], so that agents cut off together do not come back together.
pub fn jitter(base: Duration) -> Duration {
    base / 2 + base.mul_f64(rand::random::<f64>() / 2.0)
}

/// Everything `run` needs; [`main`] builds it from the command line.
pub struct Options {
    pub server: Option<String>,
    pub pin: Option<String>,
    pub state: PathBuf,
    pub backend: Backend,
    pub capacity: usize,
    pub receive_command: Option<String>,
    /// How long the agent may stay silent; [`HEARTBEAT_SECS`] except in tests.
    pub heartbeat: Duration,
}

/// `pigeon agent`.
pub async fn main(args: AgentArgs, shutdown: CancellationToken) -> Result<()> {
    let backend = match args.backend {
        AgentBackend::Simulator => {
            if args.send_command.is_some() {
                tracing::warn!("--send-command is only used with --backend command");
            }
            Backend::Simulator
        }
        AgentBackend::Command => {
            let template = args
                .send_command
                .context("--backend command needs --send-command")?;
            Backend::Command(CommandBackend::new(&template).context("--send-command")?)
        }
    };
    if args
        .receive_command
        .as_deref()
        .is_some_and(|c| c.trim().is_empty())
    {
        bail!("--receive-command is empty");
    }
    let options = Options {
        server: args.server,
        pin: args.pin,
        state: args.state,
        backend,
        capacity: args.capacity,
        receive_command: args.receive_command,
        heartbeat: Duration::from_secs(HEARTBEAT_SECS),
    };
    run(options, shutdown).await
}

/// Pairs if needed, then serves until `shutdown` or a revoked token.
pub async fn run(options: Options, shutdown: CancellationToken) -> Result<()> {
    let Some(state) = ensure_paired(&options, &shutdown).await? else {
        return Ok(());
    };
    let token = state.token.context("not paired")?;
    let url = ws_url(&state.server)?;
    let authorization = HeaderValue::from_str(&format!("Bearer {token}"))
        .with_context(|| format!("the token in {} is malformed", options.state.display()))?;
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (in_tx, in_rx) = mpsc::channel(INBOUND_QUEUE);
    let in_open = options.receive_command.is_some();
    if let Some(command) = options.receive_command {
        tokio::spawn(backend::receive(command, in_tx, shutdown.clone()));
    }
    let mut agent = Agent {
        backend: Arc::new(options.backend),
        capacity: options.capacity.max(1),
        slots: Arc::new(Semaphore::new(options.capacity.max(1))),
        heartbeat: options.heartbeat,
        shutdown,
        ledger: Arc::default(),
        out_tx,
        out_rx,
        in_rx,
        in_open,
        unsent: VecDeque::new(),
        connection: 0,
        jobs: JoinSet::new(),
        device: state.device,
    };
    tracing::info!(server = %state.server, device = agent.device.as_deref().unwrap_or("?"), "agent started");
    let mut attempt = 0;
    while !agent.shutdown.is_cancelled() {
        let started = Instant::now();
        match agent.session(&url, &authorization).await {
            End::Stopped => return Ok(()),
            End::Revoked => {
                agent.finish_jobs().await;
                bail!(
                    "the server refused this device's token (it was paired again or deleted): \
                     remove {} and run `pigeon agent --pin CODE` with a new code",
                    options.state.display()
                );
            }
            End::Lost(error) => {
                // A connection that lived a while was not the server refusing us: start over.
                if started.elapsed() >= agent.heartbeat {
                    attempt = 0;
                }
                let delay = jitter(backoff(attempt));
                attempt = attempt.saturating_add(1);
                tracing::warn!(error = format!("{error:#}"), retry_in = ?delay, "disconnected");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = agent.shutdown.cancelled() => {}
                }
            }
        }
    }
    // Stopped while disconnected: let jobs being sent finish; their acks cannot be delivered.
    agent.finish_jobs().await;
    Ok(())
}

/// The state with a token, pairing first when needed; `None` if stopped while pairing.
async fn ensure_paired(options: &Options, shutdown: &CancellationToken) -> Result<Option<State>> {
    let path = &options.state;
    let server = options
        .server
        .as_deref()
        .map(normalize_server)
        .transpose()?;
    let saved = load_state(path)?;
    if let Some(state) = saved.as_ref().filter(|s| s.token.is_some()) {
        if let Some(server) = server.as_ref().filter(|&s| *s != state.server) {
            bail!(
                "{} is paired with {}, not {server}: use another --state file",
                path.display(),
                state.server
            );
        }
        if options.pin.is_some() {
            tracing::info!(state = %path.display(), "already paired; the PIN is not used");
        }
        return Ok(Some(state.clone()));
    }
    let server = match (server, saved) {
        (Some(server), _) => server,
        (None, Some(saved)) => normalize_server(&saved.server)?,
        (None, None) => bail!("not paired yet: give --server URL and --pin CODE"),
    };
    let pin = options
        .pin
        .as_deref()
        .context("not paired yet: give --pin CODE (from POST /api/v1/attach)")?;
    let pin: String = pin
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    if pin.len() != 7 || !pin.bytes().all(|b| b.is_ascii_digit()) {
        bail!("the pairing code is 7 digits");
    }
    // Written before pairing so that an unwritable path fails before the code is spent.
    save_state(
        path,
        &State {
            server: server.clone(),
            token: None,
            device: None,
        },
    )?;
    let http = reqwest::Client::builder()
        .user_agent(AGENT)
        .timeout(HTTP_TIMEOUT)
        .build()?;
    let mut attempt = 0;
    let (token, device) = loop {
        let wait = match pair(&http, &server, &pin).await {
            Ok(paired) => break paired,
            Err(Pairing::Refused(e)) => return Err(e),
            Err(Pairing::Retry { error, after }) => {
                let wait = after.unwrap_or_else(|| jitter(backoff(attempt)));
                tracing::warn!(error = format!("{error:#}"), retry_in = ?wait, "pairing failed");
                wait
            }
        };
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return Ok(None),
        }
    };
    let state = State {
        server,
        token: Some(token),
        device: Some(device),
    };
    save_state(path, &state)
        .context("paired, but the token could not be saved: pair again with a new code")?;
    tracing::info!(device = state.device.as_deref().unwrap_or_default(), state = %path.display(), "paired");
    Ok(Some(state))
}

enum Pairing {
    Refused(anyhow::Error),
    Retry {
        error: anyhow::Error,
        after: Option<Duration>,
    },
}

#[derive(Deserialize)]
struct Paired {
    token: String,
    device: PairedDevice,
}

#[derive(Deserialize)]
struct PairedDevice {
    #[serde(rename = "_id")]
    id: String,
}

/// Redeems the code: (token, device id).
async fn pair(
    http: &reqwest::Client,
    server: &str,
    pin: &str,
) -> Result<(String, String), Pairing> {
    let url = endpoint(server, "/device/v1/pair").map_err(Pairing::Refused)?;
    let retry = |error: anyhow::Error| Pairing::Retry { error, after: None };
    let response = http
        .post(url)
        .json(&serde_json::json!({ "code": pin }))
        .send()
        .await
        .map_err(|e| retry(e.into()))?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s).min(RETRY_AFTER_MAX));
    let body = response.bytes().await.map_err(|e| retry(e.into()))?;
    let message = || {
        serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| status.to_string())
    };
    match status {
        StatusCode::CREATED | StatusCode::OK => {
            let paired: Paired = serde_json::from_slice(&body)
                .map_err(|e| Pairing::Refused(anyhow!("unexpected pairing answer: {e}")))?;
            Ok((paired.token, paired.device.id))
        }
        StatusCode::UNAUTHORIZED => Err(Pairing::Refused(anyhow!(
            "the server refused the code ({}): codes are single use and last 15 minutes; get a new one",
            message()
        ))),
        StatusCode::TOO_MANY_REQUESTS => Err(Pairing::Retry {
            error: anyhow!("{}", message()),
            after: Some(retry_after.unwrap_or(BACKOFF_MAX)),
        }),
        s if s.is_server_error() => Err(retry(anyhow!("{}", message()))),
        _ => Err(Pairing::Refused(anyhow!("pairing refused: {}", message()))),
    }
}

/// Checks that the server is an http(s) URL and drops a trailing `/`.
fn normalize_server(server: &str) -> Result<String> {
    let server = server.trim().trim_end_matches('/');
    let url = Url::parse(server).with_context(|| format!("--server {server}"))?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        bail!("--server must be an http:// or https:// URL, not {server}");
    }
    Ok(server.to_owned())
}

/// `path` under the server's URL (which may itself have a path prefix).
fn endpoint(server: &str, path: &str) -> Result<Url> {
    let mut url = Url::parse(server).with_context(|| format!("server URL {server}"))?;
    let full = format!("{}{path}", url.path().trim_end_matches('/'));
    url.set_path(&full);
    Ok(url)
}

/// The WebSocket URL: http → ws, https → wss.
fn ws_url(server: &str) -> Result<Url> {
    let mut url = endpoint(server, "/device/v1/ws")?;
    let scheme = match url.scheme() {
        "http" => "ws",
        "https" => "wss",
        other => bail!("unsupported server scheme {other}"),
    };
    url.set_scheme(scheme)
        .map_err(|()| anyhow!("cannot make a WebSocket URL from {server}"))?;
    Ok(url)
}

/// How a session ended.
enum End {
    /// Shut down cleanly: jobs finished, acks flushed.
    Stopped,
    /// The token is no longer valid.
    Revoked,
    /// Anything else: reconnect.
    Lost(anyhow::Error),
}

/// A job's progress, and the connection it was last pushed on: only there are its acks sent.
struct JobState {
    sent: bool,
    delivered: bool,
    connection: Arc<AtomicU64>,
}

/// Jobs running or recently sent, by id.
#[derive(Default)]
struct Ledger {
    jobs: HashMap<String, JobState>,
    sent: VecDeque<String>,
}

impl Ledger {
    fn mark_sent(&mut self, job: &str) {
        let Some(state) = self.jobs.get_mut(job) else {
            return;
        };
        state.sent = true;
        self.sent.push_back(job.to_owned());
        while self.sent.len() > LEDGER_MAX {
            if let Some(old) = self.sent.pop_front() {
                self.jobs.remove(&old);
            }
        }
    }

    fn mark_delivered(&mut self, job: &str) {
        if let Some(state) = self.jobs.get_mut(job) {
            state.delivered = true;
        }
    }
}

type SharedLedger = Arc<Mutex<Ledger>>;

fn lock(ledger: &SharedLedger) -> std::sync::MutexGuard<'_, Ledger> {
    // The ledger stays consistent even if a job task panicked while holding it.
    ledger.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A frame to write; for an ack, the connection its job belongs to.
struct Outgoing {
    frame: FromAgent,
    connection: Option<Arc<AtomicU64>>,
}

impl Outgoing {
    fn any(frame: FromAgent) -> Self {
        Self {
            frame,
            connection: None,
        }
    }

    /// An ack for a job pushed on an earlier connection: that connection's jobs were handed
    /// back to the queue when it ended, and the server would misread the ack.
    fn stale(&self, connection: u64) -> bool {
        self.connection
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed) != connection)
    }
}

fn ack(job: &str, status: u16) -> FromAgent {
    FromAgent::Ack {
        job: job.to_owned(),
        status,
        code: None,
        detail: None,
    }
}

struct Agent {
    backend: Arc<Backend>,
    capacity: usize,
    slots: Arc<Semaphore>,
    heartbeat: Duration,
    shutdown: CancellationToken,
    ledger: SharedLedger,
    /// Acks from job tasks; outlives connections.
    out_tx: mpsc::UnboundedSender<Outgoing>,
    out_rx: mpsc::UnboundedReceiver<Outgoing>,
    /// Inbound SMS from the receive command.
    in_rx: mpsc::Receiver<FromAgent>,
    in_open: bool,
    /// Frames taken from the channels but not written yet (or whose write failed), in order.
    unsent: VecDeque<Outgoing>,
    /// Counts connections, to tell which one a job came on.
    connection: u64,
    jobs: JoinSet<()>,
    device: Option<String>,
}

impl Agent {
    async fn session(&mut self, url: &Url, authorization: &HeaderValue) -> End {
        let mut request = match url.as_str().into_client_request() {
            Ok(request) => request,
            Err(e) => return End::Lost(e.into()),
        };
        request
            .headers_mut()
            .insert(header::AUTHORIZATION, authorization.clone());
        request
            .headers_mut()
            .insert(header::USER_AGENT, HeaderValue::from_static(AGENT));
        let connect = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio_tungstenite::connect_async_with_config(request, None, true),
        );
        let connected = tokio::select! {
            connected = connect => connected,
            _ = self.shutdown.cancelled() => return End::Lost(anyhow!("stopping")),
        };
        match connected {
            Ok(Ok((ws, _))) => {
                tracing::info!(url = %url, "connected");
                self.serve(ws).await
            }
            Ok(Err(tungstenite::Error::Http(response)))
                if matches!(
                    response.status(),
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                ) =>
            {
                End::Revoked
            }
            Ok(Err(tungstenite::Error::Http(response))) => End::Lost(anyhow!(
                "the server answered {} to the upgrade",
                response.status()
            )),
            Ok(Err(e)) => End::Lost(e.into()),
            Err(_) => End::Lost(anyhow!(
                "no connection after {}s",
                CONNECT_TIMEOUT.as_secs()
            )),
        }
    }

    async fn serve<S>(&mut self, ws: tokio_tungstenite::WebSocketStream<S>) -> End
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.connection += 1;
        let (mut sink, mut stream) = ws.split();
        let hello = FromAgent::Hello {
            agent: AGENT.into(),
            capacity: Some(self.capacity),
        };
        // `hello` goes first, before any frame left from the last connection.
        if let Err(e) = write(&mut sink, &hello).await {
            return End::Lost(e);
        }
        let mut last_sent = Instant::now();
        let mut last_heard = Instant::now();
        let mut stopping = self.shutdown.is_cancelled();
        loop {
            while let Some(out) = self.unsent.pop_front() {
                if out.stale(self.connection) {
                    tracing::debug!(frame = ?out.frame, "ack of a previous connection dropped");
                    continue;
                }
                if let Err(e) = write(&mut sink, &out.frame).await {
                    self.unsent.push_front(out);
                    return End::Lost(e);
                }
                last_sent = Instant::now();
            }
            if stopping && self.jobs.is_empty() && self.out_rx.is_empty() {
                // A polite close; the server may already be gone.
                let _ = sink.send(Message::Close(None)).await;
                let _ = sink.close().await;
                tracing::info!("stopped");
                return End::Stopped;
            }
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled(), if !stopping => {
                    stopping = true;
                    tracing::info!(jobs = self.jobs.len(), "stopping once the jobs being sent are done");
                }
                Some(frame) = self.out_rx.recv() => self.unsent.push_back(frame),
                frame = self.in_rx.recv(), if self.in_open => match frame {
                    Some(frame) => self.unsent.push_back(Outgoing::any(frame)),
                    None => self.in_open = false,
                },
                message = stream.next() => {
                    last_heard = Instant::now();
                    match message {
                        Some(Ok(Message::Text(text))) => self.on_frame(text.as_str(), stopping),
                        Some(Ok(Message::Close(frame))) => {
                            let reason = frame.map(|f| format!("{} {}", f.code, f.reason)).unwrap_or_default();
                            return End::Lost(anyhow!("closed by the server {reason}"));
                        }
                        // Pings are answered by tungstenite; pongs only prove the server is alive.
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return End::Lost(e.into()),
                        None => return End::Lost(anyhow!("the server closed the connection")),
                    }
                }
                _ = tokio::time::sleep_until(last_sent + self.heartbeat) => {
                    // The ping makes the server answer, so a dead connection is noticed below.
                    if let Err(e) = sink.send(Message::Ping(Default::default())).await {
                        return End::Lost(e.into());
                    }
                    self.unsent.push_back(Outgoing::any(FromAgent::Heartbeat));
                }
                _ = tokio::time::sleep_until(last_heard + self.heartbeat * 3) => {
                    return End::Lost(anyhow!("nothing from the server for {}s", (self.heartbeat * 3).as_secs()));
                }
                Some(_) = self.jobs.join_next(), if !self.jobs.is_empty() => {}
            }
        }
    }

    fn on_frame(&mut self, text: &str, stopping: bool) {
        match serde_json::from_str::<ToAgent>(text) {
            Ok(ToAgent::Welcome { device }) => {
                if self.device.as_deref().is_some_and(|d| d != device) {
                    tracing::warn!(%device, "the server knows this agent as another device");
                }
                tracing::debug!(%device, "welcome");
            }
            Ok(ToAgent::Job {
                job,
                to,
                text,
                attempt,
            }) => {
                if stopping {
                    // Not acknowledged: the server gives it to another device.
                    tracing::info!(%job, "stopping: job left to the server");
                    return;
                }
                self.take_job(job, to, text, attempt);
            }
            // A newer server may speak frames this agent does not know.
            Err(e) => tracing::warn!(error = %e, "unknown frame from the server"),
        }
    }

    fn take_job(&mut self, job: String, to: String, text: String, attempt: i64) {
        let connection = Arc::new(AtomicU64::new(self.connection));
        {
            let mut ledger = lock(&self.ledger);
            if let Some(state) = ledger.jobs.get(&job) {
                // Pushed again (its acks were lost with a connection): the job's acks now go to
                // this connection, and a job already sent is never sent twice.
                state.connection.store(self.connection, Ordering::Relaxed);
                let acks: &[u16] = match (state.sent, state.delivered) {
                    (false, _) => &[202],
                    (true, false) => &[202, 203],
                    (true, true) => &[202, 203, 205],
                };
                tracing::info!(%job, attempt, "job pushed again; not sending it twice");
                for &status in acks {
                    self.unsent.push_back(Outgoing::any(ack(&job, status)));
                }
                return;
            }
            let state = JobState {
                sent: false,
                delivered: false,
                connection: connection.clone(),
            };
            ledger.jobs.insert(job.clone(), state);
        }
        tracing::info!(%job, attempt, "job");
        let task = JobTask {
            job,
            to,
            text,
            backend: self.backend.clone(),
            slots: self.slots.clone(),
            out: self.out_tx.clone(),
            connection,
            ledger: self.ledger.clone(),
            shutdown: self.shutdown.clone(),
        };
        self.jobs.spawn(task.run());
    }

    async fn finish_jobs(&mut self) {
        while self.jobs.join_next().await.is_some() {}
    }
}

async fn write<S>(sink: &mut S, frame: &FromAgent) -> Result<()>
where
    S: Sink<Message, Error = tungstenite::Error> + Unpin,
{
    let text = serde_json::to_string(frame)?;
    sink.send(Message::text(text)).await?;
    Ok(())
}

/// One job, from receipt to its last ack.
struct JobTask {
    job: String,
    to: String,
    text: String,
    backend: Arc<Backend>,
    slots: Arc<Semaphore>,
    out: mpsc::UnboundedSender<Outgoing>,
    connection: Arc<AtomicU64>,
    ledger: SharedLedger,
    shutdown: CancellationToken,
}

impl JobTask {
    async fn run(self) {
        let job = self.job.as_str();
        // The receiver lives as long as the agent: a failed send means it is exiting anyway.
        let send = |frame| {
            let connection = Some(self.connection.clone());
            let _ = self.out.send(Outgoing { frame, connection });
        };
        send(ack(job, 202));
        let permit = tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => None,
            permit = self.slots.clone().acquire_owned() => permit.ok(),
        };
        let Some(permit) = permit else {
            // Never started: the server will give it to someone else.
            lock(&self.ledger).jobs.remove(job);
            return;
        };
        send(ack(job, 302));
        let outcome = self.backend.send(&self.to, &self.text).await;
        drop(permit);
        match outcome {
            Ok(SendOutcome::Sent { delivery }) => {
                lock(&self.ledger).mark_sent(job);
                send(ack(job, 203));
                tracing::info!(%job, "sent");
                if let Some(delivery) = delivery {
                    tokio::select! {
                        _ = delivery => {
                            lock(&self.ledger).mark_delivered(job);
                            send(ack(job, 205));
                        }
                        // Delivery reports can take hours; not worth delaying a stop.
                        _ = self.shutdown.cancelled() => {}
                    }
                }
            }
            Ok(SendOutcome::Failed {
                status,
                code,
                detail,
            }) => {
                lock(&self.ledger).jobs.remove(job);
                tracing::warn!(%job, status, %code, %detail, "not sent");
                send(FromAgent::Ack {
                    job: job.to_owned(),
                    status,
                    code: Some(code),
                    detail: Some(detail),
                });
            }
            Err(e) => {
                lock(&self.ledger).jobs.remove(job);
                let detail = format!("{e:#}");
                tracing::error!(%job, error = %detail, "backend");
                send(FromAgent::Ack {
                    job: job.to_owned(),
                    status: STATUS_BACKEND_ERROR,
                    code: Some("backend".into()),
                    detail: Some(detail),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
