//! RaspiSMS's TestAdapter: every send succeeds and is written to `sent.jsonl`; inbound SMS are
//! injected by appending JSON lines to `inbox.jsonl` (polled by [`TestChannel::read`]) or through
//! the reception callback.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use pigeon_core::secret::random_hex;
use pigeon_core::time::{Ts, parse_local, zone};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use crate::{ConfigError, Context, Inbound, Outgoing, Report, SendError, Sent};

const SENT: &str = "sent.jsonl";
const INBOX: &str = "inbox.jsonl";
const TAKEN_PREFIX: &str = "inbox.";
const TAKEN_SUFFIX: &str = ".reading";

#[derive(Debug)]
pub struct TestChannel {
    data_dir: PathBuf,
    /// Appends are single writes, but two of them must still not interleave.
    sent_lock: Mutex<()>,
    /// Two reads at once would both pick up the same taken files.
    read_lock: Mutex<()>,
}

impl TestChannel {
    pub fn open(ctx: Context) -> Result<TestChannel, ConfigError> {
        Ok(TestChannel {
            data_dir: ctx.data_dir,
            sent_lock: Mutex::new(()),
            read_lock: Mutex::new(()),
        })
    }

    /// Always succeeds (unless the disk fails): appends the message to `sent.jsonl`.
    pub async fn send(&self, m: &Outgoing) -> Result<Sent, SendError> {
        let uid = raspisms_uid()?;
        let entry = json!({
            "uid": uid,
            "at": Ts::now().0,
            "destination": m.destination,
            "text": m.text,
            "flash": m.flash,
            "medias": m.media_urls,
            "idempotency_key": m.idempotency_key,
        });
        let mut line = entry.to_string();
        line.push('\n');
        let io = |e: std::io::Error| {
            SendError::Transient(format!("test channel: cannot write {SENT}: {e}"))
        };
        let _guard = self.sent_lock.lock().await;
        tokio::fs::create_dir_all(&self.data_dir)
            .await
            .map_err(io)?;
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.join(SENT))
            .await
            .map_err(io)?;
        file.write_all(line.as_bytes()).await.map_err(io)?;
        // tokio's File finishes writes in the background: flush so the line is there on return.
        file.flush().await.map_err(io)?;
        Ok(Sent { provider_id: uid })
    }

    /// Consumes `inbox.jsonl`. The file is renamed before it is read so that a line appended
    /// meanwhile goes to a new inbox instead of being truncated away; taken files a crash left
    /// behind are read too.
    pub async fn read(&self) -> Result<Vec<Inbound>, SendError> {
        let io = |e: std::io::Error| {
            SendError::Transient(format!("test channel: cannot read {INBOX}: {e}"))
        };
        let _guard = self.read_lock.lock().await;
        let inbox = self.data_dir.join(INBOX);
        let taken = self
            .data_dir
            .join(format!("{TAKEN_PREFIX}{}{TAKEN_SUFFIX}", raspisms_uid()?));
        match tokio::fs::rename(&inbox, &taken).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let mut files = taken_files(&self.data_dir).await.map_err(io)?;
        // Names start with the unix time: oldest first.
        files.sort();
        let mut smss = Vec::new();
        for file in files {
            let bytes = tokio::fs::read(&file).await.map_err(io)?;
            smss.extend(parse_inbox(&bytes));
            tokio::fs::remove_file(&file).await.map_err(io)?;
        }
        // RaspiSMS truncates the inbox rather than deleting it: leave an empty one to append to
        // (without truncating: a writer may have created it since the rename).
        if tokio::fs::metadata(&self.data_dir).await.is_ok() {
            tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&inbox)
                .await
                .map_err(io)?;
        }
        Ok(smss)
    }
}

async fn taken_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(TAKEN_PREFIX) && name.ends_with(TAKEN_SUFFIX) {
            files.push(entry.path());
        }
    }
    Ok(files)
}

/// Inbox lines `{origin, text, at?}`; a bad line is skipped (and logged) rather than blocking
/// the others.
fn parse_inbox(bytes: &[u8]) -> Vec<Inbound> {
    let mut smss = Vec::new();
    for (index, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse_inbox_line(line) {
            Ok(sms) => smss.push(sms),
            Err(reason) => {
                tracing::warn!(line = index + 1, %reason, "test channel: skipping a bad {INBOX} line")
            }
        }
    }
    smss
}

fn parse_inbox_line(line: &[u8]) -> Result<Inbound, String> {
    let value: Value = serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
    let origin = match value.get("origin") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        _ => return Err("`origin` must be a non-empty string".into()),
    };
    let text = match value.get("text") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err("`text` must be a string".into()),
    };
    let at = match value.get("at") {
        None | Some(Value::Null) => Ts::now(),
        Some(Value::Number(n)) => Ts(n.as_i64().ok_or("`at` must be epoch milliseconds")?),
        Some(Value::String(s)) => parse_at(s)?,
        Some(_) => return Err("`at` must be a date or epoch milliseconds".into()),
    };
    Ok(Inbound { origin, text, at })
}

/// `Y-m-d H:i:s` in UTC or epoch milliseconds; empty means now.
fn parse_at(text: &str) -> Result<Ts, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Ts::now());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map(Ts)
            .map_err(|_| "`at`: epoch milliseconds out of range".to_string());
    }
    parse_utc(text)
        .ok_or_else(|| format!("`at`: `{text}` is neither \"Y-m-d H:i:s\" nor epoch milliseconds"))
}

/// A strict `Y-m-d H:i:s` in UTC.
pub(crate) fn parse_utc(text: &str) -> Option<Ts> {
    let utc = zone("UTC").ok()?;
    parse_local(text.trim(), &utc).ok()
}

/// RaspiSMS's own message uid, `<unix seconds>-<32 hex>`, for channels whose provider gives none.
pub(crate) fn raspisms_uid() -> Result<String, SendError> {
    let hex = random_hex(16).map_err(|e| SendError::Transient(e.to_string()))?;
    Ok(format!("{}-{hex}", Ts::now().0.div_euclid(1000)))
}

/// The first value of a parameter.
pub(crate) fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `uid` and `status` (`delivered`, `undelivered`, `failed`; anything else is no change).
pub fn parse_status(params: &[(String, String)]) -> Option<(String, Report)> {
    let uid = param(params, "uid")?.trim();
    let status = param(params, "status")?.trim();
    if uid.is_empty() || status.is_empty() {
        return None;
    }
    let report = match status.to_ascii_lowercase().as_str() {
        "delivered" => Report::Delivered,
        "undelivered" => Report::Undelivered,
        "failed" => Report::Failed,
        _ => Report::Pending,
    };
    Some((uid.to_string(), report))
}

/// Reception injection: `origin`, `text` and an optional `at`.
pub fn parse_reception(params: &[(String, String)]) -> Result<Inbound, String> {
    let origin = param(params, "origin")
        .map(str::trim)
        .filter(|o| !o.is_empty());
    let origin = origin.ok_or("missing parameter `origin`")?;
    let text = param(params, "text").ok_or("missing parameter `text`")?;
    let at = match param(params, "at") {
        Some(at) => parse_at(at)?,
        None => Ts::now(),
    };
    Ok(Inbound {
        origin: origin.to_string(),
        text: text.to_string(),
        at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::params;

    #[test]
    fn status_maps_raspisms_values() {
        let p = params(&[("api_key", "k"), ("uid", "u1"), ("status", "delivered")]);
        assert_eq!(parse_status(&p), Some(("u1".into(), Report::Delivered)));
        let p = params(&[("uid", "u1"), ("status", "FAILED")]);
        assert_eq!(parse_status(&p), Some(("u1".into(), Report::Failed)));
        let p = params(&[("uid", "u1"), ("status", "undelivered")]);
        assert_eq!(parse_status(&p), Some(("u1".into(), Report::Undelivered)));
        let p = params(&[("uid", "u1"), ("status", "unknown")]);
        assert_eq!(parse_status(&p), Some(("u1".into(), Report::Pending)));
        let p = params(&[("uid", "u1"), ("status", "whatever")]);
        assert_eq!(parse_status(&p), Some(("u1".into(), Report::Pending)));
    }

    #[test]
    fn status_without_uid_or_status_is_not_a_report() {
        assert_eq!(parse_status(&params(&[("status", "delivered")])), None);
        assert_eq!(parse_status(&params(&[("uid", "u1")])), None);
        assert_eq!(
            parse_status(&params(&[("uid", " "), ("status", "delivered")])),
            None
        );
        assert_eq!(
            parse_status(&params(&[("uid", "u1"), ("status", "")])),
            None
        );
    }

    #[test]
    fn reception_reads_origin_text_and_at() {
        let p = params(&[
            ("origin", "+33612345678"),
            ("text", "hi"),
            ("at", "2024-02-03 04:05:06"),
        ]);
        let sms = parse_reception(&p).expect("valid reception");
        assert_eq!(sms.origin, "+33612345678");
        assert_eq!(sms.text, "hi");
        assert_eq!(sms.at, Ts(1_706_933_106_000));
        let p = params(&[
            ("origin", "+33612345678"),
            ("text", ""),
            ("at", "1706933106000"),
        ]);
        assert_eq!(parse_reception(&p).map(|s| s.at), Ok(Ts(1_706_933_106_000)));
    }

    #[test]
    fn reception_without_at_is_now() {
        let before = Ts::now();
        let sms =
            parse_reception(&params(&[("origin", "+1"), ("text", "x")])).expect("valid reception");
        assert!(sms.at >= before && sms.at <= Ts::now());
    }

    #[test]
    fn reception_rejects_missing_fields_and_bad_dates() {
        assert!(parse_reception(&params(&[("text", "hi")])).is_err());
        assert!(parse_reception(&params(&[("origin", " "), ("text", "hi")])).is_err());
        assert!(parse_reception(&params(&[("origin", "+1")])).is_err());
        let bad = params(&[
            ("origin", "+1"),
            ("text", "hi"),
            ("at", "2024-02-03T04:05:06"),
        ]);
        assert!(parse_reception(&bad).is_err());
    }

    #[test]
    fn inbox_skips_bad_lines() {
        let inbox = concat!(
            "{\"origin\":\"+33611111111\",\"text\":\"one\",\"at\":\"2024-02-03 04:05:06\"}\n",
            "not json\n",
            "\n",
            "{\"origin\":\"\",\"text\":\"no origin\"}\n",
            "{\"origin\":\"+33622222222\",\"text\":\"two\",\"at\":1706933106000}\n",
            "{\"origin\":\"+33633333333\",\"text\":\"bad at\",\"at\":\"yesterday\"}\n",
            "{\"origin\":\"+33644444444\",\"text\":\"three\"}",
        );
        let smss = parse_inbox(inbox.as_bytes());
        let texts: Vec<&str> = smss.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(texts, ["one", "two", "three"]);
        assert_eq!(smss[0].at, Ts(1_706_933_106_000));
        assert_eq!(smss[1].at, Ts(1_706_933_106_000));
    }

    #[test]
    fn uid_has_raspisms_shape() {
        let uid = raspisms_uid().expect("uid");
        let (secs, hex) = uid.split_once('-').expect("a dash");
        assert!(secs.parse::<i64>().is_ok_and(|s| s > 1_600_000_000));
        assert_eq!(hex.len(), 32);
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(raspisms_uid().ok(), Some(uid));
    }
}
