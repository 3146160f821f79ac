//! Devices (Astandes API): creation with the `agent` phone behind them, 7-digit pairing codes,
//! and messages sent through one device or a random attached one.

use std::collections::HashMap;

use pigeon_core::numbers::parse_e164;
use pigeon_core::secret::sha256_hex;
use pigeon_core::signature;
use pigeon_core::text;
use pigeon_core::time::Ts;
use pigeon_store::devices::{self, Device, DeviceFields, Filter};
use pigeon_store::queue::{self, Single};

use super::{Result, ServiceError, check_len, notifications};
use crate::app::App;

/// A pairing code is valid this long (the Astandes document: 15 minutes).
pub const CODE_VALIDITY_MS: i64 = 15 * 60 * 1000;
/// Default message lifetime when no `ttl` is given: 24 hours.
pub const DEFAULT_TTL_SECS: i64 = 24 * 3600;

fn check(f: &DeviceFields) -> Result<()> {
    for (name, value) in [
        ("firstname", &f.firstname),
        ("lastname", &f.lastname),
        ("phone", &f.number),
        ("email", &f.email),
        ("description", &f.description),
        ("notification", &f.notification),
    ] {
        if let Some(value) = value {
            check_len(name, value, 1000)?;
        }
    }
    if let Some(url) = f.notification.as_deref().filter(|u| !u.is_empty()) {
        super::webhooks::check_url(url)?;
    }
    Ok(())
}

pub async fn create(app: &App, user_id: i64, f: &DeviceFields) -> Result<Device> {
    check(f)?;
    let mut random = [0u8; 24];
    getrandom::fill(&mut random).map_err(|e| ServiceError::Internal(e.to_string()))?;
    let secret = app.key.seal(&signature::new_secret(random))?;
    let data = app.key.seal("{}")?;
    let id = devices::create(&app.store, user_id, f, &data, &secret).await?;
    devices::get(&app.store, user_id, id)
        .await?
        .ok_or(ServiceError::NotFound)
}

pub async fn update(app: &App, user_id: i64, id: i64, f: &DeviceFields) -> Result<Device> {
    check(f)?;
    devices::update(&app.store, user_id, id, f).await?;
    app.recent_devices.forget(&(user_id, id));
    devices::get(&app.store, user_id, id)
        .await?
        .ok_or(ServiceError::NotFound)
}

pub async fn delete(app: &App, user_id: i64, id: i64) -> Result<()> {
    devices::delete(&app.store, user_id, id).await?;
    app.recent_devices.forget(&(user_id, id));
    Ok(())
}

pub async fn get(app: &App, user_id: i64, id: i64) -> Result<Device> {
    devices::get(&app.store, user_id, id)
        .await?
        .ok_or(ServiceError::NotFound)
}

/// [`get`], from memory when it was read within the last second: messages sent through a
/// device read it each, and it changes through this module, which forgets it then.
async fn get_recent(app: &App, user_id: i64, id: i64) -> Result<Device> {
    app.recent_devices
        .get_or_load((user_id, id), get(app, user_id, id))
        .await
}

pub async fn list(app: &App, user_id: i64, f: &Filter) -> Result<(Vec<Device>, i64)> {
    Ok(devices::list(&app.store, user_id, f).await?)
}

/// A new 7-digit pairing code for a device (only its digest is stored), with its creation and
/// expiry times.
pub async fn attach(app: &App, user_id: i64, id: i64) -> Result<(Device, i64, String, Ts, Ts)> {
    let device = get(app, user_id, id).await?;
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| ServiceError::Internal(e.to_string()))?;
    let code = format!("{:07}", u64::from_le_bytes(bytes) % 10_000_000);
    let created = Ts::now();
    let expires = Ts(created.0 + CODE_VALIDITY_MS);
    let code_id =
        devices::add_code(&app.store, device.id, &sha256_hex(&code), created, expires).await?;
    Ok((device, code_id, code, created, expires))
}

/// Which device a message goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Through {
    Device(i64),
    /// `{"distribute": "random"}`: any attached device of the account.
    Random,
}

#[derive(Debug, Clone)]
pub struct MessageInput {
    pub through: Through,
    pub phone: String,
    pub text: String,
    pub ttl_secs: Option<i64>,
    pub identifier: Option<String>,
    pub maxtries: Option<i64>,
    pub notification: Option<String>,
}

/// A message queued through a device, as stored, with that device.
#[derive(Debug, Clone)]
pub struct Queued {
    pub message: pigeon_store::messages::Detailed,
    pub device: Device,
}

/// Queues one message through a device.
pub async fn send(app: &App, user_id: i64, m: &MessageInput) -> Result<Queued> {
    Ok(send_all(app, user_id, std::slice::from_ref(m))
        .await?
        .remove(0))
}

/// Queues messages all or none: every one is checked (and its device chosen) before any is
/// stored, then all are stored in one transaction. Returns them in order.
pub async fn send_all(app: &App, user_id: i64, messages: &[MessageInput]) -> Result<Vec<Queued>> {
    let mut checked = Vec::with_capacity(messages.len());
    // Messages of this batch already given to each phone, so random picks spread the batch.
    let mut planned: HashMap<i64, i64> = HashMap::new();
    for (i, m) in messages.iter().enumerate() {
        let which = |e: ServiceError| match e {
            ServiceError::Invalid(d) if messages.len() > 1 => {
                ServiceError::Invalid(format!("messages[{i}]: {d}"))
            }
            ServiceError::Missing(d) if messages.len() > 1 => {
                ServiceError::Missing(format!("messages[{i}]: {d}"))
            }
            other => other,
        };
        let (single, device) = check_message(app, user_id, m, &planned)
            .await
            .map_err(which)?;
        *planned.entry(device.phone_id).or_default() += 1;
        checked.push((single, device));
    }
    let singles: Vec<Single> = checked.iter().map(|(single, _)| single.clone()).collect();
    let stored = queue::enqueue_all(&app.store, &singles, |_, _, _| Vec::new()).await?;
    // Each has its device's phone already: only that sender has work, not the router.
    app.routed.notify_waiters();
    Ok(checked
        .into_iter()
        .zip(stored)
        .map(|((single, device), stored)| Queued {
            message: single.detailed(stored),
            device,
        })
        .collect())
}

async fn check_message(
    app: &App,
    user_id: i64,
    m: &MessageInput,
    planned: &HashMap<i64, i64>,
) -> Result<(Single, Device)> {
    let destination = parse_e164(&m.phone).map_err(|_| {
        ServiceError::Invalid(format!(
            "phone : \"{}\" is not a valid international phone number.",
            m.phone
        ))
    })?;
    if m.text.is_empty() {
        return Err(ServiceError::Missing("text".into()));
    }
    check_len("text", &m.text, 1600)?;
    let ttl = m.ttl_secs.unwrap_or(DEFAULT_TTL_SECS);
    if ttl <= 0 {
        return Err(ServiceError::Invalid(
            "ttl must be a positive number of seconds.".into(),
        ));
    }
    let max_tries = m.maxtries.unwrap_or(1);
    if !(1..=100).contains(&max_tries) {
        return Err(ServiceError::Invalid(
            "maxtries must be between 1 and 100.".into(),
        ));
    }
    if let Some(url) = m.notification.as_deref().filter(|u| !u.is_empty()) {
        super::webhooks::check_url(url)?;
    }
    let device = match m.through {
        Through::Device(id) => get_recent(app, user_id, id).await?,
        Through::Random => pick_random(app, user_id, planned).await?,
    };
    let analysis = text::analyse(&m.text);
    let single = Single {
        user_id,
        api: "astandes",
        phone_id: Some(device.phone_id),
        phone_fixed: false,
        flash: false,
        origin: None,
        destination,
        text: m.text.clone(),
        encoding: analysis.encoding.as_str(),
        segments: analysis.segments as i64,
        max_tries,
        valid_until: Ts(Ts::now().0.saturating_add(ttl.saturating_mul(1000))),
        client_ref: m.identifier.clone().filter(|i| !i.is_empty()),
        callback_url: m.notification.clone().filter(|u| !u.is_empty()),
        tag: None,
        scheduled: None,
        error: None,
    };
    Ok((single, device))
}

/// `{"distribute": "random"}`: one of the attached, connected devices with the most spare
/// capacity (the fewest messages waiting or in flight), at random among equals.
async fn pick_random(app: &App, user_id: i64, planned: &HashMap<i64, i64>) -> Result<Device> {
    let mut loaded = Vec::new();
    for device in devices::online(&app.store, user_id).await? {
        let load = queue::load(&app.store, device.phone_id).await?
            + planned.get(&device.phone_id).copied().unwrap_or(0);
        loaded.push((load, device));
    }
    let Some(least) = loaded.iter().map(|(load, _)| *load).min() else {
        return Err(ServiceError::State(
            "no attached and connected device to distribute the message to.".into(),
        ));
    };
    let mut candidates: Vec<Device> = loaded
        .into_iter()
        .filter(|(load, _)| *load == least)
        .map(|(_, d)| d)
        .collect();
    let index =
        ((rand::random::<f64>() * candidates.len() as f64) as usize).min(candidates.len() - 1);
    Ok(candidates.swap_remove(index))
}

/// Cancels a message not handed to its device yet.
pub async fn cancel(app: &App, user_id: i64, id: i64) -> Result<()> {
    let notice = notifications::prepare(app, user_id, id).await?;
    let deliveries = notice
        .map(|n| n.render("canceled", false))
        .unwrap_or_default();
    if queue::cancel(
        &app.store,
        user_id,
        id,
        "deleted through the API",
        &deliveries,
    )
    .await?
    {
        Ok(())
    } else {
        Err(ServiceError::State(
            "the message was already handed to its device.".into(),
        ))
    }
}

/// Failed pairing attempts allowed per client address, and overall, in one window: with at
/// most `GLOBAL_FAILURES` guesses per 15 minutes, guessing one of 10^7 codes that live 15
/// minutes is out of reach.
pub const CLIENT_FAILURES: u32 = 10;
pub const GLOBAL_FAILURES: u32 = 100;
pub const GUARD_WINDOW: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Counts failed pairing attempts per client address and overall, per window.
#[derive(Debug, Default)]
pub struct PairingGuard {
    state: std::sync::Mutex<GuardState>,
}

#[derive(Debug, Default)]
struct GuardState {
    window_start: Option<std::time::Instant>,
    global: u32,
    clients: std::collections::HashMap<std::net::IpAddr, u32>,
}

impl PairingGuard {
    /// `Err(wait)` when this client (or everyone) used up its attempts for this window.
    pub fn check(&self, client: std::net::IpAddr) -> std::result::Result<(), std::time::Duration> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        let start = *state.window_start.get_or_insert(now);
        if now.duration_since(start) >= GUARD_WINDOW {
            *state = GuardState {
                window_start: Some(now),
                ..GuardState::default()
            };
        }
        let used = state.clients.get(&client).copied().unwrap_or(0);
        if used >= CLIENT_FAILURES || state.global >= GLOBAL_FAILURES {
            let start = state.window_start.unwrap_or(now);
            return Err(GUARD_WINDOW.saturating_sub(now.duration_since(start)));
        }
        Ok(())
    }

    pub fn failed(&self, client: std::net::IpAddr) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.global = state.global.saturating_add(1);
        *state.clients.entry(client).or_default() += 1;
    }
}

/// What pairing gives the agent: its token (shown once, stored as a digest) and its device.
pub struct Paired {
    pub token: String,
    pub device: Device,
}

/// Why pairing failed.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    #[error("too many failed pairing attempts")]
    Throttled(std::time::Duration),
    #[error("the code is 7 digits")]
    Malformed,
    #[error("invalid, used or expired code")]
    Unknown,
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// Redeems a pairing code: a 7-digit code, unused and unexpired, makes its device attached and
/// gives the agent a new token (a device paired again loses its previous token).
pub async fn pair(
    app: &App,
    code: &str,
    client: std::net::IpAddr,
) -> std::result::Result<Paired, PairError> {
    app.pairing.check(client).map_err(PairError::Throttled)?;
    let code = code.trim();
    if code.len() != 7 || !code.chars().all(|c| c.is_ascii_digit()) {
        app.pairing.failed(client);
        return Err(PairError::Malformed);
    }
    let token = format!(
        "pgd_{}",
        pigeon_core::secret::random_hex(32).map_err(ServiceError::from)?
    );
    let redeemed = devices::redeem(
        &app.store,
        &sha256_hex(code),
        &sha256_hex(&token),
        Ts::now(),
    )
    .await
    .map_err(ServiceError::from)?;
    app.recent_devices.clear();
    match redeemed {
        Some(device) => Ok(Paired { token, device }),
        None => {
            app.pairing.failed(client);
            Err(PairError::Unknown)
        }
    }
}
