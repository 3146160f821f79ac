use pigeon_channels::{Context, Event, Outgoing};
use serde_json::{Map, Value};
use tempfile::TempDir;
use tokio::sync::mpsc;

pub const PHONE_ID: i64 = 42;
pub const STATUS_CALLBACK: &str = "http://pigeon.test/callback/status/kannel_adapter/?api_key=k3y";

/// A phone's context in its own temporary directory, and the receiving end of its events.
pub struct Phone {
    pub dir: TempDir,
    pub events: mpsc::Receiver<Event>,
    sender: mpsc::Sender<Event>,
}

impl Phone {
    pub fn new() -> Phone {
        let (sender, events) = mpsc::channel(1024);
        Phone {
            dir: TempDir::new().expect("temp dir"),
            events,
            sender,
        }
    }

    pub fn ctx(&self) -> Context {
        Context {
            phone_id: PHONE_ID,
            data_dir: self.dir.path().join("phone"),
            status_callback_url: STATUS_CALLBACK.to_string(),
            events: self.sender.clone(),
            http: pigeon_channels::loopback_client().expect("client"),
        }
    }
}

pub fn data(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("adapter data must be an object, not {other}"),
    }
}

pub fn outgoing(message_id: i64, destination: &str, text: &str) -> Outgoing {
    Outgoing {
        message_id,
        destination: destination.to_string(),
        text: text.to_string(),
        flash: false,
        ucs2: false,
        media_urls: Vec::new(),
        idempotency_key: format!("key-{message_id}"),
        attempt: 1,
        sender: None,
    }
}
