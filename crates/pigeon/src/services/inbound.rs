//! What comes back from phones: inbound SMS (with STOP / START), delivery reports, calls.

use std::sync::Arc;

use pigeon_channels::{Inbound, Report};
use pigeon_core::status::Status;
use pigeon_core::time::Ts;
use pigeon_store::calls::{self, NewCall};
use pigeon_store::messages::{self, NewMessage};
use pigeon_store::phones::{self, Phone};
use pigeon_store::reports::{self, Moved, ReportTarget, Reported};
use pigeon_store::stop_list;
use serde_json::json;

use super::campaigns::{self as campaign_service, CampaignInput, NumberInput};
use super::{Result, ServiceError, accounts, events, notifications};
use crate::app::App;

/// What an inbound text asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    Stop,
    Start,
}

/// RaspiSMS only knows `stop` and `stop sms` exactly; Pigeon ignores case, spaces, punctuation
/// and accents, and knows the usual words for both directions.
pub fn keyword(text: &str) -> Option<Keyword> {
    let folded: String = text
        .chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'à' | 'â' | 'ä' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'î' | 'ï' => 'i',
            'ô' | 'ö' => 'o',
            'ù' | 'û' | 'ü' => 'u',
            other => other,
        })
        .filter(|c| c.is_alphanumeric())
        .collect();
    match folded.as_str() {
        "stop" | "stopsms" | "arret" | "unsubscribe" | "stopall" => Some(Keyword::Stop),
        "start" | "unstop" => Some(Keyword::Start),
        _ => None,
    }
}

/// Stores an SMS that arrived on a phone (firing `receive_sms`) and applies STOP / START.
pub async fn receive(app: &App, phone_id: i64, sms: &Inbound) -> Result<i64> {
    let phone = phones::get_any(&app.store, phone_id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    let hooks = events::targets(app, phone.user_id, "receive_sms").await?;
    let device_notice = notifications::inbound(app, phone.user_id, phone.id).await?;
    let word = keyword(&sms.text);
    let stop_notice = match word {
        Some(Keyword::Stop) => notifications::ovh_stop(app, phone.user_id).await?,
        _ => None,
    };
    // RaspiSMS puts the phone's id in `destination` here.
    let (sms_for_hooks, phone_id) = (sms.clone(), phone.id);
    let render = move |id: i64| {
        let sms = &sms_for_hooks;
        let mut deliveries = hooks.render(&json!({
            "id": id,
            "at": hooks.at(sms.at.0),
            "text": sms.text,
            "destination": phone_id,
            "origin": sms.origin,
            "command": false,
            "mms": false,
            "medias": [],
        }));
        if let Some(notice) = &device_notice {
            deliveries.extend(notice(id, &sms.origin, &sms.text, sms.at.0));
        }
        if let Some(notice) = &stop_notice {
            deliveries.extend(notice(id, &sms.origin, &sms.text));
        }
        deliveries
    };
    let message = NewMessage {
        user_id: phone.user_id,
        phone_id: Some(phone.id),
        direction: "inbound",
        origin: Some(sms.origin.clone()),
        text: sms.text.clone(),
        status: Status::Received.as_str().to_string(),
        at: sms.at,
        ..Default::default()
    };
    let id = messages::insert_with(&app.store, &message, render).await?;
    match word {
        Some(Keyword::Stop) => stop(app, &phone, &sms.origin).await?,
        Some(Keyword::Start) => {
            stop_list::remove(&app.store, phone.user_id, &sms.origin).await?;
            app.recent_stop_lists.forget(&phone.user_id);
        }
        None => {}
    }
    Ok(id)
}

/// Adds the sender to the STOP list (even when the `smsstop` setting is off, as RaspiSMS does)
/// and, the first time, acknowledges through the same phone.
async fn stop(app: &App, phone: &Phone, origin: &str) -> Result<()> {
    let added = stop_list::add(&app.store, phone.user_id, origin).await?;
    app.recent_stop_lists.forget(&phone.user_id);
    let settings = accounts::settings(app, phone.user_id).await?;
    if added && settings.is_on("smsstop_respond") {
        let input = CampaignInput {
            text: Some(settings.get("smsstop_response").to_string()),
            numbers: vec![NumberInput {
                number: origin.to_string(),
                data: None,
            }],
            id_phone: Some(phone.id),
            tag: Some(pigeon_core::recipients::STOP_TAG.to_string()),
            ..Default::default()
        };
        campaign_service::create(app, phone.user_id, input).await?;
        app.wake.notify_waiters();
    }
    Ok(())
}

/// Applies a delivery report; `None` when no message in a state it may move from matches
/// (unknown id, duplicate or late report). A change fires `send_sms_status_change`.
pub async fn report(
    app: &App,
    target: ReportTarget<'_>,
    provider_id: &str,
    report: Report,
) -> Result<Option<Moved>> {
    let to = match report {
        Report::Delivered => Status::Delivered,
        Report::Undelivered => Status::Undelivered,
        Report::Failed => Status::Failed,
        Report::Pending => return Ok(None),
    };
    let user_id = match target {
        ReportTarget::UserAdapter(user, _) => user,
        ReportTarget::Phone(phone) => match phone_owner(app, phone).await? {
            Some(user_id) => user_id,
            None => return Ok(None),
        },
    };
    let hooks = Arc::new(events::targets(app, user_id, "send_sms_status_change").await?);
    let from: Vec<&str> = Status::ALL
        .iter()
        .filter(|s| s.can_become(to))
        .map(|s| s.as_str())
        .collect();
    // Most messages ask for no notifications: the report goes without looking. One that does
    // comes back unwritten with its id, to have them prepared (again only if another message
    // took the provider id meanwhile; past three rounds it is answered as unmatched, as a
    // report of no known message is).
    let mut notified = None;
    for _ in 0..3 {
        let notice = match notified {
            Some(id) => notifications::prepare(app, user_id, id).await?,
            None => None,
        };
        let hooks = hooks.clone();
        let render = move |moved: &Moved| {
            let body = json!({ "id": moved.id, "status": events::raspisms_status(&moved.status) });
            let mut deliveries = hooks.render(&body);
            if let Some(notice) = notice.as_ref().filter(|n| n.message_id() == moved.id) {
                deliveries.extend(notice.render(&moved.status, false));
            }
            deliveries
        };
        let reported = reports::report(
            &app.store,
            target,
            provider_id,
            &from,
            to.as_str(),
            notified,
            render,
        )
        .await?;
        match reported {
            Reported::Moved(moved) => return Ok(Some(moved)),
            Reported::Unmatched => return Ok(None),
            Reported::Unprepared(id) => notified = Some(id),
        }
    }
    Ok(None)
}

/// A phone's owner: kept for a moment, as a phone's reports come one per message.
async fn phone_owner(app: &App, phone_id: i64) -> Result<Option<i64>> {
    if let Some(user_id) = app.recent_phone_owners.get(&phone_id) {
        return Ok(Some(user_id));
    }
    let read_in = app.recent_phone_owners.generation();
    let user_id = phones::get_any(&app.store, phone_id)
        .await?
        .map(|p| p.user_id);
    if let Some(user_id) = user_id {
        app.recent_phone_owners.put(phone_id, user_id, read_in);
    }
    Ok(user_id)
}

/// Records an inbound call a phone reported, firing `inbound_call`.
pub async fn call(
    app: &App,
    phone: &Phone,
    uid: &str,
    start: Ts,
    end: Option<Ts>,
    origin: &str,
) -> Result<i64> {
    let hooks = events::targets(app, phone.user_id, "inbound_call").await?;
    // `id` comes first, as RaspiSMS sends it; it is set once the call is stored.
    let fields = json!({
        "id": 0,
        "id_user": phone.user_id,
        "id_phone": phone.id,
        "uid": uid,
        "start": hooks.at(start.0),
        "end": end.map(|e| hooks.at(e.0)),
        "direction": "inbound",
        "origin": origin,
        "destination": null,
    });
    let render = move |id: i64| {
        let mut body = fields.clone();
        body["id"] = id.into();
        hooks.render(&body)
    };
    let call = NewCall {
        user_id: phone.user_id,
        phone_id: phone.id,
        uid,
        start,
        end,
        origin,
    };
    Ok(calls::create_inbound(&app.store, &call, render).await?)
}

pub async fn end_call(app: &App, phone: &Phone, uid: &str, end: Ts) -> Result<()> {
    if calls::end(&app.store, phone.user_id, phone.id, uid, end).await? {
        Ok(())
    } else {
        Err(ServiceError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_and_start_words_are_tolerant() {
        for stop_text in [
            "STOP",
            "stop",
            " Stop. ",
            "STOP SMS",
            "stop-sms",
            "Arrêt",
            "ARRET",
            "unsubscribe",
            "S.T.O.P",
        ] {
            assert_eq!(keyword(stop_text), Some(Keyword::Stop), "{stop_text}");
        }
        for start_text in ["START", "start!", " Start "] {
            assert_eq!(keyword(start_text), Some(Keyword::Start), "{start_text}");
        }
        for other in ["stop please", "Stop it now", "STOPPED", "", "hello"] {
            assert_eq!(keyword(other), None, "{other}");
        }
    }
}
