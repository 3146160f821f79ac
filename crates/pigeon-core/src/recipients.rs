//! Recipient resolution (RaspiSMS §5.1 steps 3–6): the targets of a campaign in order (raw
//! numbers first, then contacts, group members and conditional-group matches), deduplicated by
//! number, filtered by the STOP list, each with its own rendered text.

use std::collections::HashSet;

use serde_json::Value;

use crate::template::{Template, TemplateError};

/// One candidate recipient: its number, the data its text is rendered with (`contact`), and
/// its metas (`contact_metas`: name, number, id, dates for a contact; only number for a raw one).
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub number: String,
    pub data: Value,
    pub metas: Value,
}

/// What happened to one candidate.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Will be sent this text.
    Send(String),
    /// On the user's STOP list.
    Stopped,
    /// Its text did not render (RaspiSMS skips it silently; Pigeon says why).
    TemplateError(String),
    /// The rendered text is empty.
    Empty,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Recipient {
    pub target: Target,
    pub outcome: Outcome,
}

/// How a campaign's candidates are turned into recipients.
pub struct Rules<'a> {
    pub text: &'a str,
    /// The user's `templating` setting.
    pub templating: bool,
    /// Numbers that asked not to receive messages; ignored when `filter_stop` is false.
    pub stop_list: &'a HashSet<String>,
    /// The `smsstop` setting, unless the campaign's tag is `SMS_STOP` (see [`stop_applies`]).
    pub filter_stop: bool,
    /// Whether the campaign carries media, so an empty text is still worth sending.
    pub has_media: bool,
}

/// The reserved tag of STOP acknowledgements, which bypass the STOP list.
pub const STOP_TAG: &str = "SMS_STOP";

pub fn stop_applies(smsstop_setting: bool, tag: Option<&str>) -> bool {
    smsstop_setting && tag != Some(STOP_TAG)
}

/// Deduplicates by exact number (the first occurrence wins) and decides each recipient's fate.
pub fn resolve(candidates: impl IntoIterator<Item = Target>, rules: &Rules<'_>) -> Vec<Recipient> {
    // Compiled once for every recipient.
    let compiled = rules.templating.then(|| Template::new(rules.text));
    let mut seen = HashSet::new();
    candidates
        .into_iter()
        .filter(|t| seen.insert(t.number.clone()))
        .map(|target| {
            let outcome = outcome_for(&target, rules, compiled.as_ref());
            Recipient { target, outcome }
        })
        .collect()
}

fn outcome_for(
    target: &Target,
    rules: &Rules<'_>,
    compiled: Option<&Result<Template, TemplateError>>,
) -> Outcome {
    if rules.filter_stop && rules.stop_list.contains(&target.number) {
        return Outcome::Stopped;
    }
    let rendered = match compiled {
        None => Ok(rules.text.to_string()),
        Some(Ok(template)) => template.render(&target.data, &target.metas),
        Some(Err(e)) => Err(e.clone()),
    };
    let text = match rendered {
        Ok(text) => text,
        Err(e) => return Outcome::TemplateError(e.to_string()),
    };
    if text.trim().is_empty() && !rules.has_media {
        Outcome::Empty
    } else {
        Outcome::Send(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn target(number: &str, first: &str) -> Target {
        Target {
            number: number.into(),
            data: json!({ "firstname": first }),
            metas: json!({ "number": number, "name": first }),
        }
    }

    fn rules<'a>(text: &'a str, stop: &'a HashSet<String>) -> Rules<'a> {
        Rules {
            text,
            templating: true,
            stop_list: stop,
            filter_stop: true,
            has_media: false,
        }
    }

    #[test]
    fn dedupes_first_wins_and_renders() {
        let stop = HashSet::new();
        let out = resolve(
            [
                target("+33612345678", "Raw"),
                target("+33612345679", "Jane"),
                target("+33612345678", "John"),
            ],
            &rules("Bonjour {{ contact.firstname }}", &stop),
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].outcome, Outcome::Send("Bonjour Raw".into()));
        assert_eq!(out[1].outcome, Outcome::Send("Bonjour Jane".into()));
    }

    #[test]
    fn stop_list_filters_unless_disabled() {
        let stop: HashSet<String> = ["+33612345678".to_string()].into();
        let mut r = rules("hi", &stop);
        let out = resolve([target("+33612345678", "A")], &r);
        assert_eq!(out[0].outcome, Outcome::Stopped);
        r.filter_stop = stop_applies(true, Some(STOP_TAG));
        let out = resolve([target("+33612345678", "A")], &r);
        assert_eq!(out[0].outcome, Outcome::Send("hi".into()));
        assert!(!stop_applies(false, None));
        assert!(stop_applies(true, Some("newsletter")));
    }

    #[test]
    fn templating_off_sends_text_verbatim_and_empty_is_reported() {
        let stop = HashSet::new();
        let mut r = rules("{{ contact.firstname }}", &stop);
        r.templating = false;
        let out = resolve([target("+33612345678", "A")], &r);
        assert_eq!(
            out[0].outcome,
            Outcome::Send("{{ contact.firstname }}".into())
        );
        let r = rules("{{ contact.missing }} ", &stop);
        assert_eq!(
            resolve([target("+33612345678", "A")], &r)[0].outcome,
            Outcome::Empty
        );
    }

    #[test]
    fn template_errors_are_reported_per_recipient() {
        let stop = HashSet::new();
        let r = rules("{% if %}", &stop);
        assert!(matches!(
            resolve([target("+33612345678", "A")], &r)[0].outcome,
            Outcome::TemplateError(_)
        ));
    }
}
