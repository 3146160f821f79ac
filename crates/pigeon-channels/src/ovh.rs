//! An OVH SMS account as an upstream, in RaspiSMS's two ways: through one of its virtual
//! numbers (`ovh_virtual_number`), or through the account's own jobs, sent from OVH's short code
//! or from a named sender (`ovh_shortcode`).
//!
//! Requests are signed as python-ovh signs them: `X-Ovh-Signature` over the application secret,
//! the consumer key, the method, the full URL, the compact JSON body and a timestamp in OVH's
//! clock, learnt once from `GET /auth/time` and learnt again (once per request) when OVH answers
//! "Query out of time" — it refuses such a request before processing it, so repeating it is safe.
//!
//! A job create is not idempotent at OVH. Every job carries the message's idempotency key as its
//! `tag`; after a create whose outcome is unknown, and before any create of a later attempt,
//! Pigeon looks for the job: first among the pending jobs (they have no tag: the receiver and
//! the text are compared, the oldest match taken, so two identical pending SMS to one person
//! may be mistaken for each other), then among the sent SMS listed by tag (tag, receiver and
//! text compared, so that another install's `pigeon-1` is not taken for ours). A job only ever moves
//! from the pending list to the sent one, so looking in that order cannot miss it. The consumer
//! key therefore needs `GET` on `…/jobs*` and `…/outgoing*` beside `POST …/jobs`; without them a
//! retry fails rather than risk sending twice.
//!
//! Replies are polled from `…/incoming`. OVH lists ids only, which only grow: the highest one
//! handed over is kept in a file of the phone's data directory, so nothing is read twice, and
//! the SMS are deleted at OVH afterwards only with `delete_incoming` (RaspiSMS always deletes
//! them, which loses OVH's copy).
//!
//! Delivery reports: OVH calls the URL pasted into the OVH manager (SMS service → options →
//! callback URL), with `id` (the job id) and `dlr`; it does not sign them.

use std::fmt;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use pigeon_core::time::{Ts, parse_lenient, zone};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::data::{bad, base_url, flag, optional, required, timeout};
use crate::http_client::HttpClient;
use crate::test::param;
use crate::upstream::{self, CallError, read_body, settle, snippet};
use crate::{ConfigError, Context, Inbound, Outgoing, Report, SendError, Sent};

const DEFAULT_ENDPOINT: &str = "https://eu.api.ovh.com/1.0";
const PROVIDER: &str = "OVH";
/// OVH's collections are bare arrays of every id (an account that keeps its incoming SMS may
/// list hundreds of thousands); anything larger is not OVH's answer.
const MAX_BODY_BYTES: usize = 16 << 20;
/// Idempotency keys are short (`pigeon-<id>`); a tag is cut to this all the same.
const MAX_TAG_CHARS: usize = 128;
/// Incoming SMS fetched per read: a backlog drains over several reads instead of one long one.
const READ_BATCH: usize = 100;
/// Records looked at per list when looking for a job: the newest (a job of this attempt's
/// message is minutes old at most).
const MAX_LOOKUPS: usize = 20;
/// The highest incoming id handed over, in the phone's data directory.
const SEEN_FILE: &str = "ovh-incoming.json";
/// OVH's own zone, for a date it would write without an offset.
const OVH_ZONE: &str = "Europe/Paris";

/// Which way the account sends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    /// A dedicated number: SMS leave from it and its replies arrive on it.
    VirtualNumber,
    /// The account's jobs: from OVH's short code (replies accepted) or from a named sender.
    Shortcode {
        sender: Option<String>,
        no_stop_clause: bool,
    },
}

pub struct Ovh {
    line: Line,
    endpoint: String,
    /// `/sms/{service}` or `/sms/{service}/virtualNumbers/{00number}`: jobs, outgoing and
    /// incoming are below it.
    base: String,
    app_key: String,
    app_secret: String,
    consumer_key: String,
    delete_incoming: bool,
    timeout: Duration,
    http: HttpClient,
    /// OVH's clock minus ours, in seconds, once learnt.
    delta: Mutex<Option<i64>>,
    seen_file: PathBuf,
    /// Two reads at once would hand over the same SMS.
    read_lock: tokio::sync::Mutex<()>,
}

// By hand: the application secret and the consumer key stay out of logs.
impl fmt::Debug for Ovh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ovh")
            .field("line", &self.line)
            .field("endpoint", &self.endpoint)
            .field("base", &self.base)
            .field("app_key", &self.app_key)
            .field("delete_incoming", &self.delete_incoming)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The body of `POST …/jobs`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Job<'a> {
    message: &'a str,
    receivers: [&'a str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    sender: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sender_for_response: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    no_stop_clause: Option<bool>,
    tag: &'a str,
}

/// `sms.SmsSendingReport`, the answer to a job create.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendingReport {
    #[serde(default)]
    invalid_receivers: Vec<String>,
    #[serde(default)]
    ids: Vec<i64>,
}

/// The fields of a pending job (`sms.Job`) or a sent SMS (`sms.Outgoing`) that identify it.
#[derive(Debug, Deserialize)]
struct Record {
    #[serde(default)]
    receiver: String,
    #[serde(default)]
    message: String,
    tag: Option<String>,
}

/// `sms.Incoming`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Incoming {
    creation_datetime: Option<String>,
    #[serde(default)]
    message: String,
    #[serde(default)]
    sender: String,
}

/// OVH's error body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    message: String,
    error_code: Option<String>,
}

/// What Pigeon remembers of the incoming SMS it handed over.
#[derive(Debug, Serialize, Deserialize)]
struct Seen {
    /// The list the ids belong to: another service or number starts afresh.
    list: String,
    last_id: i64,
}

/// An answer of OVH's.
struct Answer {
    status: StatusCode,
    body: Vec<u8>,
}

impl Answer {
    fn refusal(&self) -> SendError {
        upstream::refusal(PROVIDER, self.status, &error_text(&self.body))
    }

    /// OVH refused the timestamp: our clock moved against its own since the delta was learnt.
    fn out_of_time(&self) -> bool {
        self.status == StatusCode::BAD_REQUEST
            && serde_json::from_slice::<ErrorBody>(&self.body).is_ok_and(|e| {
                e.error_code.as_deref() == Some("QUERY_TIME_OUT")
                    || e.message.to_ascii_lowercase().contains("out of time")
            })
    }

    /// The parsed body of a 2xx answer.
    fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, SendError> {
        if !self.status.is_success() {
            return Err(self.refusal());
        }
        serde_json::from_slice(&self.body).map_err(|_| {
            SendError::Transient(format!(
                "OVH answered {what} with something Pigeon cannot read"
            ))
        })
    }
}

impl Ovh {
    /// `ovh_virtual_number`: `number` (E.164) beside the common fields (see [`Ovh::open`]).
    pub fn open_virtual_number(
        data: &Map<String, Value>,
        ctx: Context,
    ) -> Result<Ovh, ConfigError> {
        let number = path_number(&required(data, "number")?)?;
        let base = format!("/sms/{}/virtualNumbers/{number}", service_name(data)?);
        Ovh::open(data, ctx, Line::VirtualNumber, base)
    }

    /// `ovh_shortcode`: an optional `sender` (3 to 11 characters, as RaspiSMS requires) and
    /// `no_stop_clause` beside the common fields (see [`Ovh::open`]).
    pub fn open_shortcode(data: &Map<String, Value>, ctx: Context) -> Result<Ovh, ConfigError> {
        let sender = optional(data, "sender")?;
        if sender
            .as_ref()
            .is_some_and(|s| !(3..=11).contains(&s.chars().count()))
        {
            return Err(bad("sender", "must be 3 to 11 characters long"));
        }
        let line = Line::Shortcode {
            sender,
            no_stop_clause: flag(data, "no_stop_clause")?.unwrap_or(false),
        };
        let base = format!("/sms/{}", service_name(data)?);
        Ovh::open(data, ctx, line, base)
    }

    /// The common fields: `app_key`, `app_secret`, `consumer_key` (required), `endpoint`
    /// (default OVH Europe's), `delete_incoming` (default no), and `timeout_ms` (not in the
    /// registry: for tests and slow links; default 30 s).
    fn open(
        data: &Map<String, Value>,
        ctx: Context,
        line: Line,
        base: String,
    ) -> Result<Ovh, ConfigError> {
        Ok(Ovh {
            line,
            endpoint: base_url(data, "endpoint", DEFAULT_ENDPOINT)?,
            base,
            app_key: required(data, "app_key")?,
            app_secret: required(data, "app_secret")?,
            consumer_key: required(data, "consumer_key")?,
            delete_incoming: flag(data, "delete_incoming")?.unwrap_or(false),
            timeout: timeout(data)?,
            http: ctx.http,
            delta: Mutex::new(None),
            seen_file: ctx.data_dir.join(SEEN_FILE),
            read_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The registry name of the adapter this channel was opened as.
    pub fn adapter_name(&self) -> &'static str {
        match self.line {
            Line::VirtualNumber => "ovh_virtual_number",
            Line::Shortcode { .. } => "ovh_shortcode",
        }
    }

    pub async fn send(&self, m: &Outgoing) -> Result<Sent, SendError> {
        if m.destination.trim().is_empty() {
            return Err(SendError::Permanent(
                "the message has no destination".into(),
            ));
        }
        let tag = tag(&m.idempotency_key);
        // An earlier attempt may have been taken by OVH without Pigeon learning it.
        if m.attempt > 1
            && let Some(sent) = self.find(m, tag).await?
        {
            return Ok(sent);
        }
        match self.create(m, tag).await {
            Ok(sent) => Ok(sent),
            Err(CallError::Refused(e)) => Err(e),
            Err(CallError::Unknown(why)) => {
                settle(PROVIDER, tag, &why, self.find(m, tag).await, Ok)
            }
        }
    }

    async fn create(&self, m: &Outgoing, tag: &str) -> Result<Sent, CallError> {
        let body = serde_json::to_vec(&self.job(m, tag)).map_err(|e| {
            CallError::Refused(SendError::Permanent(format!("cannot write the job: {e}")))
        })?;
        let answer = self.call(Method::POST, "/jobs", &[], Some(&body)).await?;
        if !answer.status.is_success() {
            return Err(CallError::Refused(answer.refusal()));
        }
        match serde_json::from_slice::<SendingReport>(&answer.body) {
            Ok(report) => taken(report).map_err(CallError::Refused),
            Err(_) => Err(CallError::Unknown(format!(
                "OVH accepted the job (HTTP {}) with an answer Pigeon cannot read",
                answer.status.as_u16()
            ))),
        }
    }

    /// The job for `m`, as RaspiSMS builds it, with its tag. On the short code, the client's
    /// sender wins over the configured one; a named sender cannot take replies.
    fn job<'a>(&'a self, m: &'a Outgoing, tag: &'a str) -> Job<'a> {
        let mut job = Job {
            message: &m.text,
            receivers: [m.destination.trim()],
            sender: None,
            sender_for_response: None,
            no_stop_clause: None,
            tag,
        };
        if let Line::Shortcode {
            sender,
            no_stop_clause,
        } = &self.line
        {
            let requested = m.sender.as_deref().map(str::trim).filter(|s| !s.is_empty());
            job.sender = requested.or(sender.as_deref());
            job.sender_for_response = Some(job.sender.is_none());
            job.no_stop_clause = Some(*no_stop_clause);
        }
        job
    }

    /// The job OVH holds for `m`, if any: pending first, then sent (see the module's doc).
    async fn find(&self, m: &Outgoing, tag: &str) -> Result<Option<Sent>, SendError> {
        if let Some(sent) = self.find_in("/jobs", &[], m, None).await? {
            return Ok(Some(sent));
        }
        self.find_in("/outgoing", &[("tag", tag)], m, Some(tag))
            .await
    }

    /// Looks through the newest records of `list` for `m`, with `tag` when the records carry
    /// one. Oldest first: pending jobs have no tag, and a message being retried is older than a
    /// later one with the same text and receiver.
    async fn find_in(
        &self,
        list: &str,
        query: &[(&str, &str)],
        m: &Outgoing,
        tag: Option<&str>,
    ) -> Result<Option<Sent>, SendError> {
        let mut ids: Vec<i64> = self.get(list, query).await?.json(list)?;
        ids.sort_unstable();
        for id in &ids[ids.len().saturating_sub(MAX_LOOKUPS)..] {
            let path = format!("{list}/{id}");
            let answer = self.get(&path, &[]).await?;
            // Sent (or deleted) between the list and now.
            if answer.status == StatusCode::NOT_FOUND {
                continue;
            }
            if answer.json::<Record>(&path)?.is_for(m, tag) {
                return Ok(Some(Sent {
                    provider_id: id.to_string(),
                }));
            }
        }
        Ok(None)
    }

    /// SMS that arrived since the last read (see the module's doc).
    pub async fn read(&self) -> Result<Vec<Inbound>, SendError> {
        let _guard = self.read_lock.lock().await;
        let mut read = Vec::new();
        let mut last = None;
        for id in self.unseen_ids().await? {
            match self.incoming(id).await {
                Ok(sms) => {
                    read.extend(sms.map(|sms| (id, sms)));
                    last = Some(id);
                }
                // Those read so far are handed over; the rest waits for the next read.
                Err(e) if last.is_some() => {
                    tracing::warn!(error = %e, "OVH: reading an incoming SMS failed");
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(last) = last {
            self.remember(last).await?;
        }
        if self.delete_incoming {
            self.delete_incoming(read.iter().map(|(id, _)| *id)).await;
        }
        Ok(read.into_iter().map(|(_, sms)| sms).collect())
    }

    /// The incoming ids not handed over yet, oldest first, a batch at most.
    async fn unseen_ids(&self) -> Result<Vec<i64>, SendError> {
        let last = self.last_seen().await?;
        let mut ids: Vec<i64> = self.get("/incoming", &[]).await?.json("/incoming")?;
        ids.retain(|id| last.is_none_or(|last| *id > last));
        ids.sort_unstable();
        ids.dedup();
        ids.truncate(READ_BATCH);
        Ok(ids)
    }

    /// Incoming SMS `id`; `None` when it is gone or unreadable, so that it does not hold up
    /// the others.
    async fn incoming(&self, id: i64) -> Result<Option<Inbound>, SendError> {
        let path = format!("/incoming/{id}");
        let answer = self.get(&path, &[]).await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let sms = match answer.json::<Incoming>(&path) {
            Ok(sms) => sms,
            Err(SendError::Transient(e)) if answer.status.is_success() => {
                tracing::warn!(id, error = %e, "OVH: skipping an unreadable incoming SMS");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let origin = sms.sender.trim();
        if origin.is_empty() {
            tracing::warn!(id, "OVH: skipping an incoming SMS without a sender");
            return Ok(None);
        }
        Ok(Some(Inbound {
            origin: origin.to_string(),
            text: sms.message,
            at: sms
                .creation_datetime
                .as_deref()
                .map_or_else(Ts::now, ovh_time),
        }))
    }

    /// Deletes incoming SMS at OVH; a failure leaves them there, and they are not read again.
    async fn delete_incoming(&self, ids: impl Iterator<Item = i64>) {
        for id in ids {
            let path = format!("/incoming/{id}");
            let result = self.call(Method::DELETE, &path, &[], None).await;
            let failure = match result {
                Ok(answer) if answer.status.is_success() => continue,
                Ok(answer) => answer.refusal(),
                Err(e) => e.into_send_error(),
            };
            tracing::warn!(id, error = %failure, "OVH: deleting an incoming SMS failed");
        }
    }

    /// The highest incoming id handed over from this list, if any.
    async fn last_seen(&self) -> Result<Option<i64>, SendError> {
        let bytes = match tokio::fs::read(&self.seen_file).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.seen_error(&e.to_string())),
        };
        // Written atomically: anything else is damage, and guessing would read SMS twice.
        let seen: Seen = serde_json::from_slice(&bytes).map_err(|e| {
            self.seen_error(&format!("{e}; delete it to read again what OVH holds"))
        })?;
        Ok((seen.list == self.incoming_list()).then_some(seen.last_id))
    }

    /// Records `last_id`, atomically (a new file renamed over the old one).
    async fn remember(&self, last_id: i64) -> Result<(), SendError> {
        let seen = Seen {
            list: self.incoming_list(),
            last_id,
        };
        let io = |e: std::io::Error| self.seen_error(&e.to_string());
        let bytes = serde_json::to_vec(&seen).map_err(|e| self.seen_error(&e.to_string()))?;
        let temporary = self.seen_file.with_extension("json.new");
        if let Some(dir) = self.seen_file.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io)?;
        }
        tokio::fs::write(&temporary, bytes).await.map_err(io)?;
        tokio::fs::rename(&temporary, &self.seen_file)
            .await
            .map_err(io)
    }

    fn seen_error(&self, why: &str) -> SendError {
        SendError::Transient(format!("OVH: {}: {why}", self.seen_file.display()))
    }

    /// The incoming list's URL (ids are OVH's per list).
    fn incoming_list(&self) -> String {
        format!("{}{}/incoming", self.endpoint, self.base)
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Answer, SendError> {
        self.call(Method::GET, path, query, None)
            .await
            .map_err(CallError::into_send_error)
    }

    /// A signed request to `path` below the account (or number); learns OVH's clock again
    /// and repeats the request once if OVH finds its timestamp out of time.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Answer, CallError> {
        let mut url = Url::parse(&format!("{}{}{path}", self.endpoint, self.base))
            .map_err(|e| CallError::Refused(SendError::Permanent(format!("bad OVH URL: {e}"))))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let answer = self.call_once(&method, &url, body).await?;
        if !answer.out_of_time() {
            return Ok(answer);
        }
        *lock(&self.delta) = None;
        self.call_once(&method, &url, body).await
    }

    async fn call_once(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&[u8]>,
    ) -> Result<Answer, CallError> {
        let timestamp = self.now().await?;
        let signature = pigeon_core::signature::ovh(
            &self.app_secret,
            &self.consumer_key,
            method.as_str(),
            url.as_str(),
            body.unwrap_or_default(),
            timestamp,
        );
        let mut request = self
            .request(method.clone(), url.as_str())?
            .header("X-Ovh-Consumer", &self.consumer_key)
            .header("X-Ovh-Timestamp", timestamp.to_string())
            .header("X-Ovh-Signature", signature);
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        self.exchange(request).await
    }

    /// Now in OVH's clock (Unix seconds), learning the difference on first use.
    async fn now(&self) -> Result<i64, CallError> {
        let known = *lock(&self.delta);
        let delta = match known {
            Some(delta) => delta,
            None => {
                let delta = self.learn_delta().await.map_err(CallError::Refused)?;
                *lock(&self.delta) = Some(delta);
                delta
            }
        };
        Ok(unix_now() + delta)
    }

    /// `GET /auth/time` (unsigned, as python-ovh asks it): OVH's clock minus ours.
    async fn learn_delta(&self) -> Result<i64, SendError> {
        let url = format!("{}/auth/time", self.endpoint);
        let request = self
            .request(Method::GET, &url)
            .map_err(CallError::into_send_error)?;
        let answer = self
            .exchange(request)
            .await
            .map_err(CallError::into_send_error)?;
        let server: i64 = answer.json("/auth/time")?;
        Ok(server - unix_now())
    }

    /// A request with the application key and the adapter's timeout.
    fn request(&self, method: Method, url: &str) -> Result<RequestBuilder, CallError> {
        let request = self.http.request(method, url).map_err(CallError::blocked)?;
        Ok(request
            .header("X-Ovh-Application", &self.app_key)
            // The shared client may have no timeout of its own.
            .timeout(self.timeout))
    }

    async fn exchange(&self, request: RequestBuilder) -> Result<Answer, CallError> {
        let failed = |e: reqwest::Error| CallError::request(PROVIDER, self.timeout, &e);
        let response = request.send().await.map_err(failed)?;
        let status = response.status();
        let body = match read_body(response, MAX_BODY_BYTES).await {
            Ok(body) => body,
            // A refusal is a refusal even without its reason.
            Err(_) if !status.is_success() => Vec::new(),
            Err(e) => return Err(failed(e)),
        };
        Ok(Answer { status, body })
    }
}

impl Record {
    /// Whether this job or sent SMS is `m`'s: same receiver, a text that starts with `m`'s
    /// (OVH may append its STOP mention), and the tag when the record has one.
    fn is_for(&self, m: &Outgoing, tag: Option<&str>) -> bool {
        tag.is_none_or(|tag| self.tag.as_deref() == Some(tag))
            && same_number(&self.receiver, &m.destination)
            && self.message.starts_with(&m.text)
    }
}

/// What a create's report says: the first id, unless OVH found the receiver invalid.
fn taken(report: SendingReport) -> Result<Sent, SendError> {
    if !report.invalid_receivers.is_empty() {
        return Err(SendError::Permanent(format!(
            "OVH found the receiver invalid: {}",
            report.invalid_receivers.join(", ")
        )));
    }
    match report.ids.first() {
        Some(id) => Ok(Sent {
            provider_id: id.to_string(),
        }),
        None => Err(SendError::Permanent(
            "OVH accepted the job without a job id".into(),
        )),
    }
}

/// OVH's `message` (with its `errorCode`), or the start of whatever else the body is.
fn error_text(body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody {
            message,
            error_code: Some(code),
        }) => format!("{message} ({code})"),
        Ok(ErrorBody { message, .. }) => message,
        Err(_) => snippet(body),
    }
}

/// The idempotency key as a job tag.
fn tag(key: &str) -> &str {
    key.char_indices()
        .nth(MAX_TAG_CHARS)
        .map_or(key, |(end, _)| &key[..end])
}

/// `+33612345678` as OVH's paths write it: `0033612345678`.
fn path_number(number: &str) -> Result<String, ConfigError> {
    number
        .strip_prefix('+')
        .filter(|digits| (6..=15).contains(&digits.len()))
        .filter(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
        .map(|digits| format!("00{digits}"))
        .ok_or_else(|| bad("number", "must be an E.164 number such as +33612345678"))
}

/// `service_name` (`sms-ab12345-1`), safe as a path segment.
fn service_name(data: &Map<String, Value>) -> Result<String, ConfigError> {
    let name = required(data, "service_name")?;
    if name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        Ok(name)
    } else {
        Err(bad(
            "service_name",
            "must be the SMS account's name, such as sms-ab12345-1",
        ))
    }
}

/// Whether two numbers are the same, written `+33…` or `0033…`.
fn same_number(a: &str, b: &str) -> bool {
    let international = |n: &str| {
        let n = n.trim();
        n.strip_prefix("00")
            .map_or_else(|| n.to_string(), |rest| format!("+{rest}"))
    };
    international(a) == international(b)
}

/// OVH's ISO dates carry their offset; one without is Paris time. Unreadable is now.
fn ovh_time(text: &str) -> Ts {
    let now = Ts::now();
    zone(OVH_ZONE)
        .ok()
        .and_then(|tz| parse_lenient(text, &tz, now).ok())
        .unwrap_or(now)
}

fn unix_now() -> i64 {
    Ts::now().0.div_euclid(1000)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// OVH's delivery report: `id` (the job id) and `dlr`, read as RaspiSMS reads them: 1
/// delivered, 2 undelivered, 16 failed (rejected by the SMSC), anything else (4 buffered, 8
/// accepted by the SMSC) no change.
pub fn parse_status(params: &[(String, String)]) -> Option<(String, Report)> {
    let id = param(params, "id")?.trim();
    if id.is_empty() {
        return None;
    }
    let report = match param(params, "dlr")?.trim() {
        "1" => Report::Delivered,
        "2" => Report::Undelivered,
        "16" => Report::Failed,
        _ => Report::Pending,
    };
    Some((id.to_string(), report))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::data::{failing_field, params, test_context};

    fn context() -> Context {
        test_context("http://pigeon.test/callback/status/ovh_shortcode/1")
    }

    fn map(data: Value) -> Map<String, Value> {
        match data {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn shortcode(extra: Value) -> Result<Ovh, ConfigError> {
        let mut data = map(json!({
            "service_name": "sms-ab12345-1", "app_key": "ak", "app_secret": "as-s3cret",
            "consumer_key": "ck-s3cret",
        }));
        data.extend(map(extra));
        Ovh::open_shortcode(&data, context())
    }

    fn virtual_number(number: &str) -> Result<Ovh, ConfigError> {
        let data = map(json!({
            "service_name": "sms-ab12345-1", "number": number, "app_key": "ak",
            "app_secret": "as", "consumer_key": "ck",
        }));
        Ovh::open_virtual_number(&data, context())
    }

    fn outgoing(sender: Option<&str>) -> Outgoing {
        Outgoing {
            message_id: 7,
            destination: "+33611111111".into(),
            text: "Bonjour à vous".into(),
            flash: false,
            ucs2: false,
            media_urls: Vec::new(),
            idempotency_key: "pigeon-7".into(),
            attempt: 1,
            sender: sender.map(str::to_string),
        }
    }

    fn job_json(ovh: &Ovh, m: &Outgoing) -> String {
        serde_json::to_string(&ovh.job(m, &m.idempotency_key)).expect("json")
    }

    #[test]
    fn opens_with_defaults_and_hides_secrets() {
        let ovh = shortcode(json!({})).expect("valid data");
        assert_eq!(ovh.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(ovh.base, "/sms/sms-ab12345-1");
        assert_eq!(ovh.adapter_name(), "ovh_shortcode");
        assert!(!ovh.delete_incoming);
        assert_eq!(ovh.timeout, Duration::from_secs(30));
        let debug = format!("{ovh:?}");
        assert!(!debug.contains("s3cret"), "{debug}");

        let ovh = virtual_number("+33612345678").expect("valid data");
        assert_eq!(ovh.base, "/sms/sms-ab12345-1/virtualNumbers/0033612345678");
        assert_eq!(ovh.adapter_name(), "ovh_virtual_number");
    }

    #[test]
    fn reads_optional_fields() {
        let ovh = shortcode(json!({
            "endpoint": "http://127.0.0.1:9/1.0/", "delete_incoming": "1", "sender": " Pigeon ",
            "no_stop_clause": true, "timeout_ms": 250,
        }))
        .expect("valid data");
        assert_eq!(ovh.endpoint, "http://127.0.0.1:9/1.0");
        assert!(ovh.delete_incoming);
        assert_eq!(ovh.timeout, Duration::from_millis(250));
        assert_eq!(
            ovh.line,
            Line::Shortcode {
                sender: Some("Pigeon".into()),
                no_stop_clause: true
            }
        );
    }

    #[test]
    fn rejects_missing_and_invalid_fields() {
        for field in ["service_name", "app_key", "app_secret", "consumer_key"] {
            let result = shortcode(json!({ field: " " }));
            assert_eq!(failing_field(result).as_deref(), Some(field));
        }
        let cases = [
            ("sender", json!("AB")),
            ("sender", json!("ABCDEFGHIJKL")),
            ("service_name", json!("sms/../me")),
            ("endpoint", json!("eu.api.ovh.com")),
            ("no_stop_clause", json!("maybe")),
            ("delete_incoming", json!(2)),
            ("timeout_ms", json!(0)),
        ];
        for (field, value) in cases {
            let result = shortcode(json!({ field: value }));
            assert_eq!(failing_field(result).as_deref(), Some(field), "{value}");
        }
        for number in ["0612345678", "+33 6 12", "+3361234567890123", "+12345", ""] {
            assert_eq!(
                failing_field(virtual_number(number)).as_deref(),
                Some("number"),
                "{number}"
            );
        }
    }

    #[test]
    fn jobs_are_raspisms_jobs_with_a_tag() {
        let ovh = virtual_number("+33612345678").expect("valid data");
        assert_eq!(
            job_json(&ovh, &outgoing(Some("Ignored"))),
            r#"{"message":"Bonjour à vous","receivers":["+33611111111"],"tag":"pigeon-7"}"#
        );
        let ovh = shortcode(json!({})).expect("valid data");
        assert_eq!(
            job_json(&ovh, &outgoing(None)),
            r#"{"message":"Bonjour à vous","receivers":["+33611111111"],"senderForResponse":true,"noStopClause":false,"tag":"pigeon-7"}"#
        );
        let named = shortcode(json!({"sender": "Pigeon", "no_stop_clause": "on"})).expect("valid");
        assert_eq!(
            job_json(&named, &outgoing(None)),
            r#"{"message":"Bonjour à vous","receivers":["+33611111111"],"sender":"Pigeon","senderForResponse":false,"noStopClause":true,"tag":"pigeon-7"}"#
        );
        assert!(job_json(&named, &outgoing(Some("Client"))).contains(r#""sender":"Client""#));
        assert!(job_json(&ovh, &outgoing(Some(" "))).contains(r#""senderForResponse":true"#));
    }

    #[test]
    fn sending_reports_give_the_first_id_or_a_permanent_error() {
        let report = |body: &str| taken(serde_json::from_str(body).expect("report"));
        assert_eq!(
            report(
                r#"{"totalCreditsRemoved":1,"invalidReceivers":[],"ids":[26929925,2],"validReceivers":["+33611111111"]}"#
            ),
            Ok(Sent {
                provider_id: "26929925".into()
            })
        );
        match report(r#"{"invalidReceivers":["+1"],"ids":[],"validReceivers":[]}"#) {
            Err(SendError::Permanent(m)) => assert!(m.contains("invalid: +1"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            report(r#"{"totalCreditsRemoved":0}"#),
            Err(SendError::Permanent(_))
        ));
    }

    fn answer(status: StatusCode, body: &str) -> Answer {
        Answer {
            status,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn errors_quote_ovh_and_spot_a_refused_timestamp() {
        let invalid =
            r#"{"errorCode":"INVALID_CREDENTIAL","message":"This credential is not valid"}"#;
        assert_eq!(
            error_text(invalid.as_bytes()),
            "This credential is not valid (INVALID_CREDENTIAL)"
        );
        assert_eq!(error_text(br#"{"message":"Not found"}"#), "Not found");
        assert_eq!(error_text(b"<html>"), "<html>");
        match answer(StatusCode::FORBIDDEN, invalid).refusal() {
            SendError::Permanent(m) => {
                assert!(m.contains("403") && m.contains("INVALID_CREDENTIAL"))
            }
            other => panic!("{other:?}"),
        }
        let late = r#"{"errorCode":"QUERY_TIME_OUT","httpCode":"400 Bad Request","message":"Query out of time"}"#;
        assert!(answer(StatusCode::BAD_REQUEST, late).out_of_time());
        assert!(
            answer(
                StatusCode::BAD_REQUEST,
                r#"{"message":"Query out of time"}"#
            )
            .out_of_time()
        );
        assert!(!answer(StatusCode::FORBIDDEN, late).out_of_time());
        assert!(
            !answer(StatusCode::BAD_REQUEST, r#"{"message":"Invalid receiver"}"#).out_of_time()
        );
    }

    #[test]
    fn records_match_on_receiver_text_and_tag() {
        let m = outgoing(None);
        let record = |receiver: &str, message: &str, tag: Option<&str>| Record {
            receiver: receiver.into(),
            message: message.into(),
            tag: tag.map(str::to_string),
        };
        let with_stop = format!("{}\nSTOP au 36180", m.text);
        assert!(record("+33611111111", &m.text, None).is_for(&m, None));
        assert!(record("0033611111111", &with_stop, None).is_for(&m, None));
        assert!(record("+33611111111", &m.text, Some("pigeon-7")).is_for(&m, Some("pigeon-7")));
        assert!(!record("+33611111111", &m.text, Some("pigeon-70")).is_for(&m, Some("pigeon-7")));
        assert!(!record("+33611111111", &m.text, None).is_for(&m, Some("pigeon-7")));
        assert!(!record("+33622222222", &m.text, None).is_for(&m, None));
        assert!(!record("+33611111111", "Bonjour", None).is_for(&m, None));
    }

    #[test]
    fn tags_are_cut_on_a_character_boundary() {
        assert_eq!(tag("pigeon-7"), "pigeon-7");
        let long = "é".repeat(MAX_TAG_CHARS + 3);
        assert_eq!(tag(&long), "é".repeat(MAX_TAG_CHARS));
    }

    #[test]
    fn incoming_dates_keep_their_offset() {
        assert_eq!(ovh_time("2024-01-15T10:20:30+01:00"), Ts(1_705_310_430_000));
        // Without an offset: Paris time (UTC+1 in January).
        assert_eq!(ovh_time("2024-01-15T10:20:30"), Ts(1_705_310_430_000));
        let before = Ts::now();
        assert!(ovh_time("yesterday-ish") >= before);
    }

    #[test]
    fn delivery_reports_map_dlr_codes() {
        let report = |dlr: &str| parse_status(&params(&[("id", "123"), ("dlr", dlr)]));
        assert_eq!(report("1"), Some(("123".into(), Report::Delivered)));
        assert_eq!(report("2"), Some(("123".into(), Report::Undelivered)));
        assert_eq!(report("16"), Some(("123".into(), Report::Failed)));
        for pending in ["4", "8", "0", "x", ""] {
            assert_eq!(report(pending), Some(("123".into(), Report::Pending)));
        }
        assert_eq!(parse_status(&params(&[("dlr", "1")])), None);
        assert_eq!(parse_status(&params(&[("id", " "), ("dlr", "1")])), None);
        assert_eq!(parse_status(&params(&[("id", "123")])), None);
    }
}
