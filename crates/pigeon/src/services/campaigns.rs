//! Campaigns (RaspiSMS "scheduled" SMS): creation with every recipient form, deletion while
//! pending, and the preview of resolved recipients and rendered texts.

use std::collections::HashSet;
use std::path::Path;

use jiff::tz::TimeZone;

use pigeon_core::condition::Condition;
use pigeon_core::numbers::parse_e164;
use pigeon_core::recipients::{self, Recipient, Rules, Target};
use pigeon_core::time::{self, Ts};
use pigeon_core::{secret, template};
use pigeon_store::campaigns::{self, Campaign, Links, NewCampaign};
use pigeon_store::contacts::Contact;
use pigeon_store::groups::{self, CONTACT_GROUPS, PHONE_GROUPS};
use pigeon_store::{conditional_groups, contacts, media, phones, stop_list};
use serde_json::{Map, Value, json};

use super::{Result, ServiceError, accounts, check_len};
use crate::app::App;

pub const MAX_TEXT_CHARS: usize = 1000;
pub const MAX_TAG_CHARS: usize = 255;

/// One number as given, with its optional template data (JSON text).
#[derive(Debug, Clone, Default)]
pub struct NumberInput {
    pub number: String,
    pub data: Option<String>,
}

/// An uploaded file.
#[derive(Debug, Clone)]
pub struct Upload {
    pub filename: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct CampaignInput {
    pub text: Option<String>,
    pub at: Option<String>,
    pub numbers: Vec<NumberInput>,
    pub contacts: Vec<i64>,
    pub groups: Vec<i64>,
    pub conditional_groups: Vec<i64>,
    pub id_phone: Option<i64>,
    pub id_phone_group: Option<i64>,
    pub flash: bool,
    pub mms: bool,
    pub tag: Option<String>,
    pub media: Vec<Upload>,
    pub numbers_csv: Option<Vec<u8>>,
}

/// Validates and stores a campaign with its recipients and media in one transaction.
pub async fn create(app: &App, user_id: i64, input: CampaignInput) -> Result<i64> {
    let settings = accounts::settings(app, user_id).await?;
    let text = input.text.clone().unwrap_or_default();
    // RaspiSMS reads text with PHP truthiness: "" and "0" are missing.
    if text.is_empty() || text == "0" {
        return Err(ServiceError::Missing("text".into()));
    }
    check_len("text", &text, MAX_TEXT_CHARS)?;
    if settings.is_on("templating") {
        template::validate(&text).map_err(|e| ServiceError::Invalid(format!("text : {e}")))?;
    }
    let at = match input.at.as_deref() {
        None | Some("") => Ts::now(),
        Some(at) => time::parse_local(at, &settings.time_zone()).map_err(|_| {
            ServiceError::Invalid("at must be a date of format \"Y-m-d H:i:s\".".into())
        })?,
    };
    let mut numbers = valid_numbers(&input.numbers)?;
    if let Some(csv) = &input.numbers_csv {
        numbers.extend(csv_numbers(csv)?);
    }
    check_phone_choice(app, user_id, input.id_phone, input.id_phone_group).await?;
    if input.mms && !settings.is_on("mms") {
        return Err(ServiceError::Invalid(
            "mms is set to true, but mms are disabled in settings.".into(),
        ));
    }
    if let Some(tag) = &input.tag {
        check_len("tag", tag, MAX_TAG_CHARS)?;
    }
    let contacts = contacts::by_ids(&app.store, user_id, &input.contacts).await?;
    let groups = groups::by_ids(&app.store, CONTACT_GROUPS, user_id, &input.groups).await?;
    let conditional =
        conditional_groups::by_ids(&app.store, user_id, &input.conditional_groups).await?;
    if numbers.is_empty() && contacts.is_empty() && groups.is_empty() && conditional.is_empty() {
        return Err(ServiceError::Missing(
            "You must specify at least one valid number, contact, group or conditional_group."
                .into(),
        ));
    }
    let media = if input.mms {
        save_media(app, user_id, &input.media).await?
    } else {
        Vec::new()
    };
    let campaign = NewCampaign {
        text,
        at,
        phone_id: input.id_phone,
        phone_group_id: input.id_phone_group,
        flash: input.flash,
        mms: input.mms,
        tag: input.tag.filter(|t| !t.is_empty()),
        numbers,
        contacts: contacts.iter().map(|c| c.id).collect(),
        groups: groups.iter().map(|g| g.id).collect(),
        conditional_groups: conditional.iter().map(|g| g.id).collect(),
        media,
    };
    let id = campaigns::create(&app.store, user_id, &campaign).await?;
    app.wake.notify_waiters();
    Ok(id)
}

/// Invalid numbers are dropped, as RaspiSMS does; bad data is an error.
fn valid_numbers(given: &[NumberInput]) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for n in given {
        let data = match n.data.as_deref().map(str::trim) {
            None | Some("") => "[]".to_string(),
            Some(text) => {
                serde_json::from_str::<Value>(text).map_err(|_| {
                    ServiceError::Invalid(
                        "number data must be a valid json or leave not set.".into(),
                    )
                })?;
                text.to_string()
            }
        };
        if let Ok(number) = parse_e164(&n.number) {
            out.push((number, data));
        }
    }
    Ok(out)
}

/// A CSV with a header row: the number in column 1, template data in the others (keys keep
/// only word characters, empty values are skipped).
fn csv_numbers(bytes: &[u8]) -> Result<Vec<(String, String)>> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
    let keys: Vec<String> = reader
        .headers()
        .map_err(|_| ServiceError::Invalid("csv : no valid number in csv file.".into()))?
        .iter()
        .map(|h| {
            h.chars()
                .filter(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        })
        .collect();
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let bad = || {
            ServiceError::Invalid(format!(
                "csv : Erreur à la ligne {line} colonne 1, numéro de téléphone invalide."
            ))
        };
        let record = record.map_err(|_| bad())?;
        let number = parse_e164(record.get(0).unwrap_or_default()).map_err(|_| bad())?;
        let data: Map<String, Value> = keys
            .iter()
            .zip(record.iter())
            .skip(1)
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            .map(|(k, v)| (k.clone(), Value::String(v.to_string())))
            .collect();
        out.push((number, Value::Object(data).to_string()));
    }
    if out.is_empty() {
        return Err(ServiceError::Invalid(
            "csv : no valid number in csv file.".into(),
        ));
    }
    Ok(out)
}

async fn check_phone_choice(
    app: &App,
    user_id: i64,
    phone: Option<i64>,
    group: Option<i64>,
) -> Result<()> {
    match (phone, group) {
        (Some(_), Some(_)) => Err(ServiceError::Invalid(
            "id_phone, id_phone_group : You must specify at most one of id_phone or id_phone_group.".into(),
        )),
        (Some(id), None) if phones::get(&app.store, user_id, id).await?.is_none() => Err(ServiceError::Invalid(
            "id_phone : You must specify the id of one of your phones.".into(),
        )),
        (None, Some(id)) if groups::get(&app.store, PHONE_GROUPS, user_id, id).await?.is_none() => Err(
            ServiceError::Invalid("id_phone_group : You must specify the id of one of your phone groups.".into()),
        ),
        _ => Ok(()),
    }
}

/// Stores uploaded files as `DATA_DIR/media/<user>/<unix>-<32 hex>.<ext>`.
async fn save_media(app: &App, user_id: i64, uploads: &[Upload]) -> Result<Vec<i64>> {
    let dir = app.config.data_dir.join("media").join(user_id.to_string());
    let mut ids = Vec::new();
    for upload in uploads {
        let failed = |e: std::io::Error| {
            ServiceError::Internal(format!(
                "Cannot upload and create media file {} : {e}",
                upload.filename
            ))
        };
        tokio::fs::create_dir_all(&dir).await.map_err(failed)?;
        let name = format!(
            "{}-{}{}",
            Ts::now().0 / 1000,
            secret::random_hex(16)?,
            extension(&upload.filename)
        );
        tokio::fs::write(dir.join(&name), &upload.bytes)
            .await
            .map_err(failed)?;
        ids.push(media::create(&app.store, user_id, &format!("{user_id}/{name}")).await?);
    }
    Ok(ids)
}

/// `.ext` from an uploaded name, kept only when short and alphanumeric.
fn extension(filename: &str) -> String {
    Path::new(filename)
        .extension()
        .and_then(|e| e.to_str())
        .filter(|e| e.len() <= 10 && e.chars().all(|c| c.is_ascii_alphanumeric()))
        .map(|e| format!(".{}", e.to_ascii_lowercase()))
        .unwrap_or_default()
}

pub async fn delete(app: &App, user_id: i64, id: i64) -> Result<()> {
    Ok(campaigns::delete_pending(&app.store, user_id, id).await?)
}

/// The campaign and who it goes to, in order, with each recipient's text or why it is skipped.
pub async fn recipients(app: &App, user_id: i64, id: i64) -> Result<(Campaign, Vec<Recipient>)> {
    let campaign = campaigns::get(&app.store, user_id, id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    let links = campaigns::links(&app.store, &[id]).await?;
    let stop = stop_list::numbers(&app.store, user_id).await?;
    let resolved = resolve(app, &campaign, &links, &stop).await?;
    Ok((campaign, resolved))
}

/// [`recipients`] of a campaign whose links (among others') and owner's STOP list were read
/// already: the scheduler reads those once for all the campaigns due.
pub async fn resolve(
    app: &App,
    campaign: &Campaign,
    links: &Links,
    stop: &HashSet<String>,
) -> Result<Vec<Recipient>> {
    let settings = accounts::settings(app, campaign.user_id).await?;
    let targets = targets(app, campaign, links, &settings.time_zone()).await?;
    let rules = Rules {
        text: &campaign.text,
        templating: settings.is_on("templating"),
        stop_list: stop,
        filter_stop: recipients::stop_applies(settings.is_on("smsstop"), campaign.tag.as_deref()),
        has_media: campaign.mms,
    };
    Ok(recipients::resolve(targets, &rules))
}

/// Candidates in RaspiSMS's order: raw numbers, contacts, group members, conditional-group
/// matches.
async fn targets(
    app: &App,
    campaign: &Campaign,
    links: &Links,
    tz: &TimeZone,
) -> Result<Vec<Target>> {
    let (user_id, id) = (campaign.user_id, campaign.id);
    let contact_target = |c: &Contact| contact_target(c, tz);
    let mut out: Vec<Target> = links
        .numbers
        .get(&id)
        .into_iter()
        .flatten()
        .map(|n| Target {
            number: n.number.clone(),
            data: data_object(&n.data),
            metas: json!({ "number": n.number }),
        })
        .collect();
    let direct = links.contacts.get(&id).cloned().unwrap_or_default();
    out.extend(
        contacts::by_ids(&app.store, user_id, &direct)
            .await?
            .iter()
            .map(contact_target),
    );
    let group_ids = links.groups.get(&id).cloned().unwrap_or_default();
    let members = groups::members(&app.store, CONTACT_GROUPS, &group_ids).await?;
    for member_ids in members.values() {
        out.extend(
            contacts::by_ids(&app.store, user_id, member_ids)
                .await?
                .iter()
                .map(contact_target),
        );
    }
    let conditional_ids = links
        .conditional_groups
        .get(&id)
        .cloned()
        .unwrap_or_default();
    let conditional = conditional_groups::by_ids(&app.store, user_id, &conditional_ids).await?;
    if !conditional.is_empty() {
        let everyone = contacts::all(&app.store, user_id).await?;
        for group in conditional {
            // A condition that no longer parses matches nobody, like an evaluation error.
            let Ok(condition) = Condition::parse(&group.expression) else {
                continue;
            };
            out.extend(
                everyone
                    .iter()
                    .map(contact_target)
                    .filter(|t| condition.matches(&t.data, &t.metas)),
            );
        }
    }
    Ok(out)
}

fn contact_target(c: &Contact, tz: &TimeZone) -> Target {
    Target {
        number: c.number.clone(),
        data: data_object(&c.data),
        metas: json!({
            "id": c.id,
            "name": c.name,
            "number": c.number,
            "created_at": time::format_local(Ts(c.created_at), tz),
            "updated_at": time::format_local(Ts(c.updated_at), tz),
        }),
    }
}

/// Stored data as the template sees it; RaspiSMS's empty `[]` is an empty array, which makes
/// property access fail in conditions, as it does there.
fn data_object(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Object(Map::new()))
}
