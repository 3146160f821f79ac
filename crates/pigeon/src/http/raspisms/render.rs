//! Rows as RaspiSMS shows them: its field names, `Y-m-d H:i:s` dates in the account's time
//! zone, ids and counts as JSON numbers, flags as booleans, JSON data as a string.

use jiff::tz::TimeZone;
use pigeon_core::time::{Ts, format_local};
use pigeon_store::campaigns::{Campaign, CampaignNumber};
use pigeon_store::conditional_groups::ConditionalGroup;
use pigeon_store::contacts::Contact;
use pigeon_store::groups::Group;
use pigeon_store::media::Media;
use pigeon_store::messages::Message;
use pigeon_store::phones::{Limit, Phone};
use pigeon_store::webhooks::Webhook;
use serde_json::{Value, json};

pub struct Dates(pub TimeZone);

impl Dates {
    pub fn at(&self, ms: i64) -> String {
        format_local(Ts(ms), &self.0)
    }
}

pub use crate::services::events::raspisms_status as sended_status;

pub fn contact(c: &Contact, d: &Dates) -> Value {
    json!({
        "id": c.id,
        "id_user": c.user_id,
        "name": c.name,
        "number": c.number,
        "data": c.data,
        "created_at": d.at(c.created_at),
        "updated_at": d.at(c.updated_at),
    })
}

pub fn group(g: &Group, d: &Dates) -> Value {
    json!({
        "id": g.id,
        "id_user": g.user_id,
        "name": g.name,
        "created_at": d.at(g.created_at),
        "updated_at": d.at(g.updated_at),
    })
}

pub fn conditional_group(g: &ConditionalGroup, d: &Dates) -> Value {
    json!({
        "id": g.id,
        "id_user": g.user_id,
        "name": g.name,
        "condition": g.expression,
        "created_at": d.at(g.created_at),
        "updated_at": d.at(g.updated_at),
    })
}

/// A phone without its adapter data, which never leaves Pigeon.
pub fn phone(p: &Phone, limits: &[&Limit], d: &Dates) -> Value {
    json!({
        "id": p.id,
        "id_user": p.user_id,
        "name": p.name,
        "adapter": p.adapter,
        "priority": p.priority,
        "status": p.status,
        "limits": limits.iter().map(|l| json!({"volume": l.volume, "startpoint": l.startpoint})).collect::<Vec<_>>(),
        "created_at": d.at(p.created_at),
        "updated_at": d.at(p.updated_at),
    })
}

pub fn media(m: &Media, d: &Dates) -> Value {
    json!({
        "id": m.id,
        "id_user": m.user_id,
        "path": m.path,
        "created_at": d.at(m.created_at),
        "updated_at": d.at(m.updated_at),
    })
}

pub fn webhook(w: &Webhook, d: &Dates) -> Value {
    json!({
        "id": w.id,
        "id_user": w.user_id,
        "url": w.url,
        "type": w.kind,
        "status": if w.disabled_at.is_some() { "disabled" } else { "enabled" },
        "disabled_at": w.disabled_at.map(|t| d.at(t)),
        "failing_since": w.failing_since.map(|t| d.at(t)),
        "created_at": d.at(w.created_at),
        "updated_at": d.at(w.updated_at),
    })
}

pub fn campaign(c: &Campaign, d: &Dates) -> Value {
    json!({
        "id": c.id,
        "id_user": c.user_id,
        "id_phone": c.phone_id,
        "id_phone_group": c.phone_group_id,
        "at": d.at(c.at),
        "text": c.text,
        "flash": c.flash,
        "mms": c.mms,
        "tag": c.tag,
        "created_at": d.at(c.created_at),
        "updated_at": d.at(c.updated_at),
    })
}

pub fn campaign_number(n: &CampaignNumber, d: &Dates) -> Value {
    json!({
        "id": n.id,
        "id_scheduled": n.campaign_id,
        "number": n.number,
        "data": n.data,
        "created_at": d.at(n.created_at),
        "updated_at": d.at(n.updated_at),
    })
}

pub fn sended(m: &Message, d: &Dates) -> Value {
    json!({
        "id": m.id,
        "id_user": m.user_id,
        "id_phone": m.phone_id,
        "at": d.at(m.at),
        "text": m.text,
        "destination": m.destination,
        "flash": m.flash,
        "mms": m.mms,
        "status": sended_status(&m.status),
        "uid": m.provider_id,
        "adapter": m.adapter,
        "tag": m.tag,
        "originating_scheduled": m.campaign_id,
        "created_at": d.at(m.created_at),
        "updated_at": d.at(m.updated_at),
    })
}

pub fn received(m: &Message, d: &Dates) -> Value {
    json!({
        "id": m.id,
        "id_user": m.user_id,
        "id_phone": m.phone_id,
        "at": d.at(m.at),
        "text": m.text,
        "origin": m.origin,
        "command": m.command,
        "status": if m.is_read { "read" } else { "unread" },
        "mms": m.mms,
        "created_at": d.at(m.created_at),
        "updated_at": d.at(m.updated_at),
    })
}
