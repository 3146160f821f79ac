//! The SSRF-guarded HTTP client against a real server on loopback, which the guard refuses
//! unless the configuration allows it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::get;
use pigeon_channels::http_client::{Allow, Blocked, HttpClient, is_blocked_error};

async fn server() -> SocketAddr {
    let app = Router::new()
        .route("/", get(|| async { "hello" }))
        .route(
            "/redirect",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/other")]) }),
        )
        .route("/other", get(|| async { "followed" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn client(allow: &[&str]) -> HttpClient {
    let cidrs: Vec<String> = allow.iter().map(|s| s.to_string()).collect();
    let allow = Allow::parse(&cidrs).expect("valid allow list");
    HttpClient::new(allow, Duration::from_secs(2), Duration::from_millis(500)).expect("client")
}

#[tokio::test]
async fn ip_literal_refused_unless_allowed() {
    let addr = server().await;
    let url = format!("http://127.0.0.1:{}/", addr.port());

    let refused = client(&[]).get(&url).expect_err("loopback must be refused");
    assert_eq!(refused, Blocked::Address(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    assert!(refused.to_string().contains("--allow-outbound-cidr"));

    let response = client(&["127.0.0.1/32"])
        .get(&url)
        .expect("allowed")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.expect("body"), "hello");
}

#[tokio::test]
async fn name_resolving_to_loopback_refused_at_connect_time() {
    let addr = server().await;
    let url = format!("http://localhost:{}/", addr.port());

    // The name passes the URL check; the resolver refuses what it resolves to.
    let error = client(&[])
        .post(&url)
        .expect("a name is checked when connecting")
        .send()
        .await
        .expect_err("localhost must be refused");
    assert!(is_blocked_error(&error), "{error:?}");
    assert!(error.is_connect(), "{error:?}");

    let response = client(&["127.0.0.1/32"])
        .get(&url)
        .expect("allowed")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn other_failures_are_not_blocked_errors() {
    // A port nobody listens on, on an allowed address: a network failure, not the guard.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("local addr")
    };
    let error = client(&["127.0.0.1/32"])
        .get(&format!("http://127.0.0.1:{}/", closed.port()))
        .expect("allowed")
        .send()
        .await
        .expect_err("nothing listens");
    assert!(!is_blocked_error(&error), "{error:?}");
}

#[tokio::test]
async fn only_http_and_https() {
    let client = client(&["0.0.0.0/0", "::/0"]);
    assert_eq!(client.get("ftp://x").expect_err("ftp"), Blocked::Scheme);
    assert_eq!(
        client.get("file:///etc/passwd").expect_err("file"),
        Blocked::Scheme
    );
}

#[tokio::test]
async fn not_a_url_fails_when_sent() {
    let error = client(&[])
        .get("not a url")
        .expect("handed to reqwest")
        .send()
        .await
        .expect_err("not a URL");
    assert!(error.is_builder(), "{error:?}");
    assert!(!is_blocked_error(&error));
}

#[tokio::test]
async fn redirects_not_followed() {
    let addr = server().await;
    let response = client(&["127.0.0.1/32"])
        .get(&format!("http://127.0.0.1:{}/redirect", addr.port()))
        .expect("allowed")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(
        response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok()),
        Some("/other")
    );
}

#[tokio::test]
async fn total_timeout() {
    let addr = server().await;
    let error = client(&["127.0.0.1/32"])
        .get(&format!("http://127.0.0.1:{}/slow", addr.port()))
        .expect("allowed")
        .send()
        .await
        .expect_err("the handler sleeps past the timeout");
    assert!(error.is_timeout(), "{error:?}");
    assert!(!is_blocked_error(&error));
}
