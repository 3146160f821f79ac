//! The OVH SMS API's use cases (reference `provider-apis.md` §2): credentials and request
//! signatures, the account as an OVH SMS service, jobs (with the STOP mention and the window
//! for commercial messages), outgoing and incoming SMS, the STOP list, senders and estimates.

use pigeon_core::numbers::{parse_e164, parse_sender};
use pigeon_core::secret::{generate_api_key, random_hex, sha256_hex};
use pigeon_core::signature;
use pigeon_core::text;
use pigeon_core::time::Ts;
use pigeon_core::time::window::Window;
use pigeon_store::credentials::{self, NewOvhCredentials};
use pigeon_store::messages::{self, Item, ItemFilter};
use pigeon_store::queue::{self, Single};
use pigeon_store::senders::{self, Sender};
use pigeon_store::stop_list::{self, Entry};
use pigeon_store::users::{self, User};
use pigeon_store::{phones, quotas};
use serde_json::{Map, Value};

use super::{Result, ServiceError, accounts, check_len, conflict_as, webhooks};
use crate::app::App;

/// What `creditsLeft` shows for an account without a quota: it may send without limit.
pub const UNLIMITED_CREDITS: i64 = i32::MAX as i64;
/// How long a job may wait to be sent when the client does not say, in minutes (OVH's 48 h).
pub const DEFAULT_VALIDITY_MINUTES: i64 = 2880;
pub const PENDING: &[&str] = &["scheduled", "queued", "sending"];
pub const OUTGOING: &[&str] = &[
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "expired",
    "canceled",
];
const FINAL_OUTGOING: &[&str] = &[
    "delivered",
    "undelivered",
    "failed",
    "expired",
    "canceled",
    "sent",
];

/// An application key, its secret and a consumer key, shown once.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub application_key: String,
    pub application_secret: String,
    pub consumer_key: String,
}

pub async fn create_credentials(app: &App, user_id: i64) -> Result<Credentials> {
    // Keys are random words of the API key's alphabet, as long as OVH's (16 and 32).
    let word = |n: usize| -> Result<String> {
        Ok(generate_api_key()?
            .chars()
            .chain(random_hex(32)?.chars())
            .take(n)
            .collect())
    };
    let c = Credentials {
        application_key: word(16)?,
        application_secret: word(32)?,
        consumer_key: word(32)?,
    };
    credentials::create_ovh(
        &app.store,
        &NewOvhCredentials {
            user_id,
            application_key: c.application_key.clone(),
            application_secret_sealed: app.key.seal(&c.application_secret)?,
            consumer_key_digest: sha256_hex(&c.consumer_key),
            consumer_key_sealed: app.key.seal(&c.consumer_key)?,
        },
    )
    .await
    .map_err(conflict_as("these credentials already exist; try again"))?;
    Ok(c)
}

pub async fn create_credentials_for(app: &App, email: &str) -> Result<Credentials> {
    let user = users::by_email(&app.store, email)
        .await?
        .ok_or(ServiceError::NotFound)?;
    create_credentials(app, user.id).await
}

/// What a signed request carries, as it arrived.
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
    pub application_key: Option<&'a str>,
    pub consumer_key: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub method: &'a str,
    /// The request target (path and query) exactly as sent.
    pub target: &'a str,
    pub body: &'a [u8],
}

/// Why a request is refused; each has OVH's status, message and error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    NotGranted,
    InvalidKey,
    InvalidCredential(&'static str),
    OutOfTime,
    Suspended,
}

/// The URLs a client may have signed for `target`: the public base as configured, without its
/// port, and `https://` without the port (the Node client always signs that).
fn signed_urls(public_base: &str, target: &str) -> Vec<String> {
    let (scheme, rest) = public_base
        .split_once("://")
        .unwrap_or(("http", public_base));
    let host_port = rest.split('/').next().unwrap_or(rest);
    let path = &rest[host_port.len()..];
    let host = match host_port.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => host_port,
    };
    let mut urls = vec![
        format!("{public_base}{target}"),
        format!("{scheme}://{host}{path}{target}"),
        format!("https://{host}{path}{target}"),
    ];
    urls.dedup();
    urls
}

/// The account a signed request comes from.
pub async fn authenticate(app: &App, r: &Signed<'_>) -> std::result::Result<User, Refused> {
    let internal = |e: ServiceError| {
        tracing::error!(error = %e, "ovh credentials could not be read");
        Refused::InvalidCredential("This credential does not exist")
    };
    let application_key = r.application_key.ok_or(Refused::NotGranted)?;
    let c = credentials::ovh_by_application(&app.store, application_key)
        .await
        .map_err(|e| internal(e.into()))?
        .ok_or(Refused::InvalidKey)?;
    let consumer_key = r
        .consumer_key
        .filter(|ck| sha256_hex(ck) == c.consumer_key_digest)
        .ok_or(Refused::InvalidCredential("This credential does not exist"))?;
    let timestamp: i64 = r
        .timestamp
        .and_then(|t| t.trim().parse().ok())
        .ok_or(Refused::InvalidCredential("Invalid signature"))?;
    if (timestamp - Ts::now().0 / 1000).abs() > app.config.ovh_time_skew_secs {
        return Err(Refused::OutOfTime);
    }
    let secret = app
        .key
        .open(&c.application_secret_sealed)
        .map_err(|e| internal(e.into()))?;
    let signature = r.signature.unwrap_or_default();
    let valid = signed_urls(&app.public_base, r.target).iter().any(|url| {
        signature::ovh_valid(
            &secret,
            consumer_key,
            r.method,
            url,
            r.body,
            timestamp,
            signature,
        )
    });
    if !valid {
        return Err(Refused::InvalidCredential("Invalid signature"));
    }
    let user = users::get(&app.store, c.user_id)
        .await
        .map_err(|e| internal(e.into()))?
        .ok_or(Refused::InvalidKey)?;
    if !user.is_active() {
        return Err(Refused::Suspended);
    }
    Ok(user)
}

/// The account's one SMS service: `sms-<login>-1`, the login being the email's local part.
pub fn service_name(user: &User) -> String {
    let login: String = user
        .email
        .split('@')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    format!("sms-{login}-1")
}

#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub description: String,
    pub credits_left: i64,
    pub callback: String,
    pub stop_callback: String,
}

pub async fn account(app: &App, user: &User) -> Result<Account> {
    let settings = accounts::settings(app, user.id).await?;
    let credits_left = quotas::get(&app.store, user.id)
        .await?
        .and_then(|q| q.remaining(Ts::now()))
        .unwrap_or(UNLIMITED_CREDITS)
        .max(0);
    Ok(Account {
        name: service_name(user),
        description: settings.get("ovh_description").to_string(),
        credits_left,
        callback: settings.get("ovh_callback").to_string(),
        stop_callback: settings.get("ovh_stop_callback").to_string(),
    })
}

/// Changes the account's callback URLs and description (an empty URL removes it).
pub async fn update_account(
    app: &App,
    user: &User,
    fields: &[(&str, Option<String>)],
) -> Result<()> {
    for (name, value) in fields {
        let Some(value) = value else { continue };
        let setting = match *name {
            "callBack" => "ovh_callback",
            "stopCallBack" => "ovh_stop_callback",
            "description" => "ovh_description",
            _ => continue,
        };
        if setting != "ovh_description" && !value.is_empty() {
            webhooks::check_url(value)?;
        }
        check_len(name, value, 250)?;
        accounts::set_setting(app, &user.email, setting, value).await?;
    }
    Ok(())
}

/// A job as the client asked for it.
#[derive(Debug, Clone, Default)]
pub struct JobInput {
    pub message: String,
    pub receivers: Vec<String>,
    pub sender: Option<String>,
    pub no_stop_clause: bool,
    pub differed_minutes: Option<i64>,
    pub validity_minutes: Option<i64>,
    pub tag: Option<String>,
    pub flash: bool,
    /// A virtual number's phone: the job goes through it only.
    pub phone_id: Option<i64>,
}

/// OVH's `SmsSendingReport`.
#[derive(Debug, Clone)]
pub struct Report {
    pub credits: i64,
    pub invalid: Vec<String>,
    pub ids: Vec<i64>,
    pub valid: Vec<String>,
    pub tag: Option<String>,
}

/// A receiver as E.164: `+33…`, or OVH's `0033…`.
fn receiver(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let international = match raw.strip_prefix("00") {
        Some(rest) => format!("+{rest}"),
        None => raw.to_string(),
    };
    parse_e164(&international).ok()
}

/// The text a job sends: with the STOP mention on its own line unless `no_stop_clause`.
pub fn with_stop_clause(message: &str, no_stop_clause: bool, clause: &str) -> String {
    if no_stop_clause || clause.trim().is_empty() {
        message.to_string()
    } else {
        format!("{message}\n{}", clause.trim())
    }
}

/// When a job may start: after its differed period, and for a commercial one (with the STOP
/// mention) not before the account's window opens.
async fn start_of(app: &App, user_id: i64, input: &JobInput) -> Result<Option<Ts>> {
    let minutes = input.differed_minutes.unwrap_or(0);
    if !(0..=525_600).contains(&minutes) {
        return Err(ServiceError::Invalid(
            "differedPeriod must be between 0 and 525600 minutes".into(),
        ));
    }
    let now = Ts::now();
    let mut start = (minutes > 0).then(|| Ts(now.0 + minutes * 60_000));
    if !input.no_stop_clause && input.phone_id.is_none() {
        let settings = accounts::settings(app, user_id).await?;
        let window = Window::parse(
            settings.get("commercial_days"),
            settings.get("commercial_hours"),
        )
        .map_err(|_| ServiceError::Internal("the account's commercial window is invalid".into()))?;
        if let Some(opening) = window.next_opening(start.unwrap_or(now), &settings.time_zone()) {
            start = Some(opening);
        }
    }
    Ok(start)
}

/// Queues one message per valid receiver; invalid and STOP-listed receivers are reported, not
/// refused.
pub async fn send(app: &App, user: &User, input: &JobInput) -> Result<Report> {
    if input.message.trim().is_empty() {
        return Err(ServiceError::Missing("message is mandatory".into()));
    }
    check_len("message", &input.message, 5000)?;
    if input.receivers.is_empty() {
        return Err(ServiceError::Missing("receivers is mandatory".into()));
    }
    // Without a sender the phone's own number shows, to which recipients can reply: what
    // `senderForResponse` asks of OVH.
    let origin = match &input.sender {
        Some(sender) => Some(
            senders::get(&app.store, user.id, sender.trim())
                .await?
                .ok_or_else(|| ServiceError::Invalid(format!("Sender {sender} does not exist")))?
                .sender,
        ),
        None => None,
    };
    let settings = accounts::settings(app, user.id).await?;
    let text = with_stop_clause(
        &input.message,
        input.no_stop_clause,
        settings.get("ovh_stop_clause"),
    );
    let analysis = text::analyse(&text);
    let start = start_of(app, user.id, input).await?;
    let validity = input.validity_minutes.unwrap_or(DEFAULT_VALIDITY_MINUTES);
    if !(1..=2880 * 7).contains(&validity) {
        return Err(ServiceError::Invalid(
            "validityPeriod must be between 1 and 20160 minutes".into(),
        ));
    }
    let stopped = accounts::stop_list(app, user.id).await?;
    let callback = Some(settings.get("ovh_callback").to_string()).filter(|c| !c.is_empty());
    let (mut valid, mut invalid, mut singles) = (Vec::new(), Vec::new(), Vec::new());
    for raw in &input.receivers {
        match receiver(raw).filter(|n| !stopped.contains(n)) {
            Some(number) => {
                valid.push(number.clone());
                singles.push(Single {
                    user_id: user.id,
                    api: "ovh",
                    phone_id: input.phone_id,
                    phone_fixed: input.phone_id.is_some(),
                    flash: input.flash,
                    origin: origin.clone(),
                    destination: number,
                    text: text.clone(),
                    encoding: analysis.encoding.as_str(),
                    segments: analysis.segments as i64,
                    max_tries: app.config.max_tries.max(1),
                    valid_until: Ts(start.unwrap_or_else(Ts::now).0 + validity * 60_000),
                    client_ref: None,
                    callback_url: callback.clone(),
                    tag: input.tag.clone().filter(|t| !t.is_empty()),
                    scheduled: start,
                    error: None,
                });
            }
            None => invalid.push(raw.clone()),
        }
    }
    let ids: Vec<i64> = queue::enqueue_all(&app.store, &singles, |_, _, _| Vec::new())
        .await?
        .iter()
        .map(|m| m.id)
        .collect();
    match input.phone_id {
        Some(_) => app.queued(),
        None => app.wake.notify_waiters(),
    }
    Ok(Report {
        credits: analysis.segments as i64 * ids.len() as i64,
        invalid,
        ids,
        valid,
        tag: input.tag.clone(),
    })
}

/// Ids of the account's messages that `filter` selects.
pub async fn ids(app: &App, user_id: i64, filter: ItemFilter) -> Result<Vec<Item>> {
    let all = ItemFilter {
        offset: 0,
        limit: i64::MAX,
        ..filter
    };
    Ok(messages::items(&app.store, user_id, &all).await?.0)
}

/// One of the account's messages in a direction and one of `statuses`.
pub async fn message(
    app: &App,
    user_id: i64,
    id: i64,
    direction: &str,
    statuses: &[&str],
) -> Result<Item> {
    messages::item(&app.store, user_id, id)
        .await?
        .filter(|m| {
            m.direction == direction
                && (statuses.is_empty() || statuses.contains(&m.status.as_str()))
        })
        .ok_or(ServiceError::NotFound)
}

/// Stops a job not sent yet.
pub async fn cancel_job(app: &App, user_id: i64, id: i64) -> Result<()> {
    message(app, user_id, id, "outbound", PENDING).await?;
    if queue::cancel(&app.store, user_id, id, "deleted through the OVH API", &[]).await? {
        Ok(())
    } else {
        Err(ServiceError::NotFound)
    }
}

/// Deletes an outgoing (past its sending) or incoming message.
pub async fn delete_message(app: &App, user_id: i64, id: i64, direction: &str) -> Result<()> {
    let statuses: &[&str] = if direction == "inbound" {
        &["received"]
    } else {
        FINAL_OUTGOING
    };
    message(app, user_id, id, direction, statuses).await?;
    if messages::delete_final(&app.store, user_id, id, statuses).await? {
        Ok(())
    } else {
        Err(ServiceError::NotFound)
    }
}

pub async fn blacklist(app: &App, user_id: i64) -> Result<Vec<Entry>> {
    Ok(stop_list::entries(&app.store, user_id).await?)
}

pub async fn blacklisted(app: &App, user_id: i64, number: &str) -> Result<Entry> {
    let number = receiver(number).ok_or(ServiceError::NotFound)?;
    blacklist(app, user_id)
        .await?
        .into_iter()
        .find(|e| e.number == number)
        .ok_or(ServiceError::NotFound)
}

pub async fn unblacklist(app: &App, user_id: i64, number: &str) -> Result<()> {
    let entry = blacklisted(app, user_id, number).await?;
    stop_list::remove(&app.store, user_id, &entry.number).await?;
    app.recent_stop_lists.forget(&user_id);
    Ok(())
}

pub async fn senders_of(app: &App, user_id: i64) -> Result<Vec<Sender>> {
    Ok(senders::all(&app.store, user_id).await?)
}

pub async fn sender(app: &App, user_id: i64, name: &str) -> Result<Sender> {
    senders::get(&app.store, user_id, name.trim())
        .await?
        .ok_or(ServiceError::NotFound)
}

/// Adds a sender name, usable at once (Pigeon has no one to validate it).
pub async fn create_sender(
    app: &App,
    user_id: i64,
    name: &str,
    description: &str,
    reason: &str,
) -> Result<()> {
    let name = parse_sender(name).map_err(|_| {
        ServiceError::Invalid(
            "sender must be a phone number in E.164 or at most 11 letters, digits and spaces"
                .into(),
        )
    })?;
    check_len("description", description, 250)?;
    check_len("reason", reason, 1000)?;
    senders::create(&app.store, user_id, &name, description, reason)
        .await
        .map_err(|e| match conflict_as("This sender already exists")(e) {
            ServiceError::Conflict(m) => ServiceError::State(m),
            other => other,
        })?;
    Ok(())
}

/// The account's phones that have a number of their own (their adapter data's `number`).
pub async fn virtual_numbers(app: &App, user_id: i64) -> Result<Vec<(i64, String)>> {
    let mut out = Vec::new();
    for phone in phones::all(&app.store, user_id).await? {
        let data: Map<String, Value> =
            serde_json::from_str(&app.key.open(&phone.adapter_data_sealed)?).unwrap_or_default();
        if let Some(number) = data
            .get("number")
            .and_then(Value::as_str)
            .and_then(receiver)
        {
            out.push((phone.id, number));
        }
    }
    Ok(out)
}

/// The phone of one of the account's virtual numbers.
pub async fn virtual_number(app: &App, user_id: i64, number: &str) -> Result<i64> {
    let wanted = receiver(number).ok_or(ServiceError::NotFound)?;
    virtual_numbers(app, user_id)
        .await?
        .into_iter()
        .find(|(_, n)| *n == wanted)
        .map(|(id, _)| id)
        .ok_or(ServiceError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_urls_cover_the_port_variants() {
        assert_eq!(
            signed_urls("http://127.0.0.1:8080", "/1.0/sms/"),
            [
                "http://127.0.0.1:8080/1.0/sms/",
                "http://127.0.0.1/1.0/sms/",
                "https://127.0.0.1/1.0/sms/"
            ]
        );
        assert_eq!(
            signed_urls("https://sms.example.com/gw", "/1.0/sms"),
            ["https://sms.example.com/gw/1.0/sms"]
        );
    }

    #[test]
    fn receivers_take_ovh_international_forms() {
        assert_eq!(receiver("+33612345678").as_deref(), Some("+33612345678"));
        assert_eq!(receiver("0033612345678").as_deref(), Some("+33612345678"));
        assert_eq!(receiver("0612345678"), None);
        assert_eq!(receiver("not-a-number"), None);
    }

    #[test]
    fn the_stop_clause_is_a_line_of_its_own() {
        assert_eq!(
            with_stop_clause("Promo", false, "STOP au 36111"),
            "Promo\nSTOP au 36111"
        );
        assert_eq!(
            with_stop_clause("Code 1234", true, "STOP au 36111"),
            "Code 1234"
        );
        assert_eq!(with_stop_clause("Promo", false, " "), "Promo");
    }
}
