#![expect(
    clippy::result_large_err,
    reason = "tungstenite's handshake callback returns its ErrorResponse by value"
)]

use super::*;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

const TOKEN: &str = "pgd_test";
const JOB: &str = "00000000000000000000000a";

#[test]
fn state_file_round_trip() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("agent.json");
    assert_eq!(load_state(&path).expect("missing is fine"), None);
    let state = State {
        server: "http://127.0.0.1:8080".into(),
        token: Some("pgd_x".into()),
        device: Some("0123456789abcdef01234567".into()),
    };
    save_state(&path, &state).expect("save");
    assert_eq!(load_state(&path).expect("load"), Some(state.clone()));
    let mode = std::fs::metadata(&path)
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let newer = State {
        token: Some("pgd_y".into()),
        ..state
    };
    save_state(&path, &newer).expect("overwrite");
    assert_eq!(load_state(&path).expect("load"), Some(newer));
    std::fs::write(&path, "{").expect("write");
    assert!(load_state(&path).is_err());
}

#[test]
fn backoff_doubles_up_to_30s() {
    let secs: Vec<u64> = (0..8).map(|a| backoff(a).as_secs()).collect();
    assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
    assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    for attempt in 0..8 {
        let base = backoff(attempt);
        let delay = jitter(base);
        assert!(delay >= base / 2 && delay <= base, "{delay:?} for {base:?}");
    }
}

#[test]
fn urls() {
    assert_eq!(
        ws_url("http://h:8080").expect("url").as_str(),
        "ws://h:8080/device/v1/ws"
    );
    assert_eq!(
        ws_url("https://h/pigeon").expect("url").as_str(),
        "wss://h/pigeon/device/v1/ws"
    );
    assert_eq!(
        normalize_server(" https://h/pigeon/ ").expect("server"),
        "https://h/pigeon"
    );
    assert!(normalize_server("ftp://h").is_err());
    assert!(normalize_server("h:8080").is_err());
}

fn options(state: PathBuf, server: Option<String>, pin: Option<&str>) -> Options {
    Options {
        server,
        pin: pin.map(str::to_owned),
        state,
        backend: Backend::Simulator,
        capacity: 1,
        receive_command: None,
        heartbeat: Duration::from_millis(300),
    }
}

#[tokio::test]
async fn pairing_writes_the_state_file() {
    use axum::Json;
    use axum::http::StatusCode as Http;
    use axum::response::IntoResponse;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = axum::Router::new().route(
        "/device/v1/pair",
        axum::routing::post(move |Json(body): Json<serde_json::Value>| {
            let call = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if call == 0 {
                    // The first attempt is throttled: the agent must wait and retry.
                    return (Http::TOO_MANY_REQUESTS, [("retry-after", "1")], "slow down")
                        .into_response();
                }
                if body["code"] == "1234567" {
                    let answer = serde_json::json!({"token": TOKEN, "device": {"_id": "d1"}});
                    return (Http::CREATED, Json(answer)).into_response();
                }
                (
                    Http::UNAUTHORIZED,
                    Json(serde_json::json!({"error": "invalid, used or expired code"})),
                )
                    .into_response()
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let server = format!("http://{}/", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("agent.json");
    let shutdown = CancellationToken::new();
    let opts = options(path.clone(), Some(server.clone()), Some("123 4567"));
    let state = ensure_paired(&opts, &shutdown)
        .await
        .expect("paired")
        .expect("not stopped");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let expected = State {
        server: server.trim_end_matches('/').into(),
        token: Some(TOKEN.into()),
        device: Some("d1".into()),
    };
    assert_eq!(state, expected);
    assert_eq!(load_state(&path).expect("load"), Some(expected.clone()));

    // Paired: the PIN is not used again, even a wrong one.
    let again = options(path.clone(), None, Some("7654321"));
    let state = ensure_paired(&again, &shutdown)
        .await
        .expect("state")
        .expect("not stopped");
    assert_eq!(state, expected);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // … but the state file belongs to one server.
    let elsewhere = options(path, Some("http://other.example".into()), None);
    assert!(ensure_paired(&elsewhere, &shutdown).await.is_err());

    let other = dir.path().join("other.json");
    let wrong = options(other.clone(), Some(server), Some("7654321"));
    let error = ensure_paired(&wrong, &shutdown).await.expect_err("refused");
    assert!(format!("{error:#}").contains("new one"), "{error:#}");
    assert_eq!(
        load_state(&other).expect("load").and_then(|s| s.token),
        None
    );
    let bad = options(
        dir.path().join("x.json"),
        Some("http://h".into()),
        Some("12345"),
    );
    assert!(ensure_paired(&bad, &shutdown).await.is_err());
}

async fn paired_state(dir: &Path, addr: std::net::SocketAddr) -> PathBuf {
    let path = dir.join("agent.json");
    let state = State {
        server: format!("http://{addr}"),
        token: Some(TOKEN.into()),
        device: Some("d1".into()),
    };
    save_state(&path, &state).expect("save");
    path
}

async fn accept(listener: &TcpListener) -> WebSocketStream<TcpStream> {
    let (tcp, _) = listener.accept().await.expect("accept");
    let check = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        assert_eq!(request.uri().path(), "/device/v1/ws");
        let auth = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        assert_eq!(auth, Some("Bearer pgd_test"));
        Ok(response)
    };
    tokio_tungstenite::accept_hdr_async(tcp, check)
        .await
        .expect("handshake")
}

async fn next_frame(ws: &mut WebSocketStream<TcpStream>) -> FromAgent {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(text) = message {
            return serde_json::from_str(text.as_str()).expect("a FromAgent frame");
        }
    }
}

fn job_frame(id: &str, to: &str, text: &str, attempt: i64) -> ToAgent {
    ToAgent::Job {
        job: id.into(),
        to: to.into(),
        text: text.into(),
        attempt,
    }
}

/// The agent's result, once it has stopped (within five seconds, without panicking).
async fn stopped(agent: tokio::task::JoinHandle<Result<()>>) -> Result<()> {
    tokio::time::timeout(Duration::from_secs(5), agent)
        .await
        .expect("stops in time")
        .expect("no panic")
}

async fn push(ws: &mut WebSocketStream<TcpStream>, frame: &ToAgent) {
    let text = serde_json::to_string(frame).expect("json");
    ws.send(Message::text(text)).await.expect("send");
}

#[tokio::test]
async fn agent_acks_a_job_heartbeats_and_reconnects() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = paired_state(dir.path(), listener.local_addr().expect("addr")).await;
    let shutdown = CancellationToken::new();
    let agent = tokio::spawn(run(options(path, None, None), shutdown.clone()));

    let mut ws = accept(&listener).await;
    push(
        &mut ws,
        &ToAgent::Welcome {
            device: "d1".into(),
        },
    )
    .await;
    let job = job_frame(JOB, "+33612345678", "hi", 1);
    push(&mut ws, &job).await;
    let FromAgent::Hello {
        agent: name,
        capacity,
    } = next_frame(&mut ws).await
    else {
        panic!("hello first");
    };
    assert!(name.starts_with("pigeon-agent/"));
    assert_eq!(capacity, Some(1));
    for status in [202, 302, 203, 205] {
        assert_eq!(next_frame(&mut ws).await, ack(JOB, status));
    }
    assert_eq!(next_frame(&mut ws).await, FromAgent::Heartbeat);

    // Pushed again after it was sent: the acks again, not a second SMS.
    push(&mut ws, &job).await;
    for status in [202, 203, 205] {
        assert_eq!(next_frame(&mut ws).await, ack(JOB, status));
    }

    // The server goes away: the agent comes back and says hello again.
    drop(ws);
    let mut ws = accept(&listener).await;
    assert!(matches!(next_frame(&mut ws).await, FromAgent::Hello { .. }));

    shutdown.cancel();
    stopped(agent).await.expect("clean stop");
    // The agent closed the connection.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(message)) = ws.next().await {
            if message.is_close() {
                break;
            }
        }
    });
    closed.await.expect("closed");
}

#[tokio::test]
async fn stopping_finishes_the_job_in_progress() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = paired_state(dir.path(), listener.local_addr().expect("addr")).await;
    let shutdown = CancellationToken::new();
    let mut opts = options(path, None, None);
    // A send that takes a moment, so the stop arrives while it runs.
    opts.backend = Backend::Command(CommandBackend::new("sh -c {text} {to}").expect("template"));
    opts.heartbeat = Duration::from_secs(10);
    let agent = tokio::spawn(run(opts, shutdown.clone()));

    let mut ws = accept(&listener).await;
    assert!(matches!(next_frame(&mut ws).await, FromAgent::Hello { .. }));
    let job = job_frame(JOB, "+1", "sleep 0.3", 1);
    push(&mut ws, &job).await;
    assert_eq!(next_frame(&mut ws).await, ack(JOB, 202));
    assert_eq!(next_frame(&mut ws).await, ack(JOB, 302));
    shutdown.cancel();
    // A job arriving now is left to the server.
    let late = job_frame("00000000000000000000000b", "+1", "true", 1);
    push(&mut ws, &late).await;
    assert_eq!(next_frame(&mut ws).await, ack(JOB, 203));
    stopped(agent).await.expect("clean stop");
}

#[tokio::test]
async fn acks_of_a_lost_connection_are_dropped() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = paired_state(dir.path(), listener.local_addr().expect("addr")).await;
    let shutdown = CancellationToken::new();
    let mut opts = options(path, None, None);
    opts.backend = Backend::Command(CommandBackend::new("sh -c {text} {to}").expect("template"));
    // No heartbeat during the test: any frame seen is an ack.
    opts.heartbeat = Duration::from_secs(10);
    let agent = tokio::spawn(run(opts, shutdown.clone()));

    let mut ws = accept(&listener).await;
    assert!(matches!(next_frame(&mut ws).await, FromAgent::Hello { .. }));
    let job = job_frame(JOB, "+1", "sleep 0.3", 1);
    push(&mut ws, &job).await;
    assert_eq!(next_frame(&mut ws).await, ack(JOB, 202));
    assert_eq!(next_frame(&mut ws).await, ack(JOB, 302));
    // The connection drops while the SMS is being sent: its 203 belongs to that connection.
    drop(ws);
    let mut ws = accept(&listener).await;
    assert!(matches!(next_frame(&mut ws).await, FromAgent::Hello { .. }));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let quiet = tokio::time::timeout(Duration::from_millis(300), ws.next()).await;
    assert!(quiet.is_err(), "unexpected frame {quiet:?}");
    // The server pushes it again: acknowledged as sent, not sent twice.
    let again = job_frame(JOB, "+1", "exit 9", 2);
    push(&mut ws, &again).await;
    assert_eq!(next_frame(&mut ws).await, ack(JOB, 202));
    assert_eq!(next_frame(&mut ws).await, ack(JOB, 203));
    shutdown.cancel();
    stopped(agent).await.expect("clean stop");
}

#[tokio::test]
async fn revoked_token_stops_the_agent() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = paired_state(dir.path(), listener.local_addr().expect("addr")).await;
    let agent = tokio::spawn(run(options(path, None, None), CancellationToken::new()));
    let (tcp, _) = listener.accept().await.expect("accept");
    let refuse = |_: &Request, _: Response| -> Result<Response, ErrorResponse> {
        let mut response = ErrorResponse::new(None);
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        Err(response)
    };
    let _ = tokio_tungstenite::accept_hdr_async(tcp, refuse).await;
    let error = stopped(agent).await.expect_err("refused");
    assert!(format!("{error:#}").contains("--pin"), "{error:#}");
}
