//! The test channel: what it sends lands in `sent.jsonl`, what is put in `inbox.jsonl` is read once.

use pigeon_channels::{Channel, Report, find, parse_reception_callback, parse_status_callback};
use pigeon_core::time::Ts;
use serde_json::{Map, Value};

use crate::helpers::{Phone, outgoing};

fn open(phone: &Phone) -> Channel {
    Channel::open("\\adapters\\TestAdapter", &Map::new(), phone.ctx())
        .expect("the test channel opens")
}

#[tokio::test]
async fn send_appends_one_json_line_per_message() {
    let phone = Phone::new();
    let channel = open(&phone);
    let mut first = outgoing(1, "+33611111111", "hello");
    first.flash = true;
    first.media_urls = vec!["https://pigeon.test/media/1.jpg".into()];
    let sent_first = channel.send(&first).await.expect("always accepted");
    let sent_second = channel
        .send(&outgoing(2, "+33622222222", "second"))
        .await
        .expect("always accepted");
    assert_ne!(sent_first, sent_second);

    let text =
        std::fs::read_to_string(phone.dir.path().join("phone/sent.jsonl")).expect("sent.jsonl");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 2);
    let line = &lines[0];
    assert_eq!(line["uid"], sent_first.provider_id.as_str());
    assert_eq!(line["destination"], "+33611111111");
    assert_eq!(line["text"], "hello");
    assert_eq!(line["flash"], true);
    assert_eq!(
        line["medias"],
        serde_json::json!(["https://pigeon.test/media/1.jpg"])
    );
    assert_eq!(line["idempotency_key"], "key-1");
    assert!(
        line["at"]
            .as_i64()
            .is_some_and(|at| (at - Ts::now().0).abs() < 60_000)
    );
    assert_eq!(lines[1]["uid"], sent_second.provider_id.as_str());
    assert_eq!(lines[1]["flash"], false);
}

#[tokio::test]
async fn read_consumes_the_inbox() {
    let phone = Phone::new();
    let channel = open(&phone);
    let dir = phone.dir.path().join("phone");
    std::fs::create_dir_all(&dir).expect("dir");
    let inbox = dir.join("inbox.jsonl");
    std::fs::write(
        &inbox,
        concat!(
            "{\"origin\":\"+33611111111\",\"text\":\"one\",\"at\":\"2024-02-03 04:05:06\"}\n",
            "garbage\n",
            "{\"origin\":\"+33622222222\",\"text\":\"two\"}\n",
        ),
    )
    .expect("inbox");

    let smss = channel.read().await.expect("read");
    let got: Vec<(&str, &str)> = smss
        .iter()
        .map(|s| (s.origin.as_str(), s.text.as_str()))
        .collect();
    assert_eq!(got, [("+33611111111", "one"), ("+33622222222", "two")]);
    assert_eq!(smss[0].at, Ts(1_706_933_106_000));
    assert_eq!(
        std::fs::read(&inbox)
            .expect("the inbox is still there")
            .len(),
        0
    );
    assert!(channel.read().await.expect("read").is_empty());

    // What arrives later is read next time, and only that.
    std::fs::write(
        &inbox,
        "{\"origin\":\"+33633333333\",\"text\":\"three\",\"at\":1706933106000}\n",
    )
    .expect("inbox");
    let texts: Vec<String> = channel
        .read()
        .await
        .expect("read")
        .into_iter()
        .map(|s| s.text)
        .collect();
    assert_eq!(texts, ["three"]);
    // Nothing taken is left behind.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["inbox.jsonl"]);
}

#[tokio::test]
async fn read_picks_up_an_inbox_taken_before_a_crash() {
    let phone = Phone::new();
    let channel = open(&phone);
    let dir = phone.dir.path().join("phone");
    std::fs::create_dir_all(&dir).expect("dir");
    let taken = dir.join("inbox.1700000000-00000000000000000000000000000000.reading");
    std::fs::write(&taken, "{\"origin\":\"+1\",\"text\":\"left over\"}\n").expect("taken inbox");
    std::fs::write(
        dir.join("inbox.jsonl"),
        "{\"origin\":\"+2\",\"text\":\"new\"}\n",
    )
    .expect("inbox");

    let texts: Vec<String> = channel
        .read()
        .await
        .expect("read")
        .into_iter()
        .map(|s| s.text)
        .collect();
    assert_eq!(texts, ["left over", "new"]);
    assert!(!taken.exists());
}

#[tokio::test]
async fn read_without_an_inbox_is_empty() {
    let phone = Phone::new();
    assert!(open(&phone).read().await.expect("read").is_empty());
}

#[test]
fn callbacks_reach_the_test_parsers() {
    let adapter = find("test_adapter").expect("test adapter");
    let params = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let status = params(&[("api_key", "k"), ("uid", "u1"), ("status", "failed")]);
    assert_eq!(
        parse_status_callback(adapter, &status),
        Some(("u1".into(), Report::Failed))
    );
    let reception = params(&[("origin", "+33611111111"), ("text", "hi")]);
    let sms = parse_reception_callback(adapter, &[], &reception, b"").expect("valid reception");
    assert_eq!(
        (sms.origin.as_str(), sms.text.as_str()),
        ("+33611111111", "hi")
    );
    assert!(parse_reception_callback(adapter, &[], &params(&[("text", "hi")]), b"").is_err());
}
