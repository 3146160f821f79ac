//! A running Pigeon for one test: its URL, accounts with known API keys, and a client.

use std::sync::Arc;

use pigeon::app::{self, App};
use pigeon::config::Config;
use pigeon::services::accounts;
use serde_json::Value;
use tokio::sync::oneshot;

pub struct TestApp {
    pub base: String,
    pub app: Arc<App>,
    pub client: reqwest::Client,
    /// The first account's API key.
    pub key: String,
    pub user_id: i64,
    pub dir: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

/// A table row of bad input: the form, the expected error code, the expected message prefix.
pub type BadInput<'a> = (Vec<(&'a str, &'a str)>, i64, &'a str);

/// An HTTP answer: status and parsed JSON body (`Value::Null` when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

impl Answer {
    /// The envelope's `response`, after checking the answer is a success.
    pub fn ok(&self) -> &Value {
        assert_eq!(
            self.body["error"], 0,
            "not a success: {} {}",
            self.status, self.text
        );
        &self.body["response"]
    }

    pub fn error_code(&self) -> i64 {
        self.body["error"].as_i64().unwrap_or(-1)
    }

    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }
}

/// A server whose workers do not run: scheduled SMS stay pending, as the API tests need.
pub async fn spawn() -> TestApp {
    spawn_with(|_| {}).await
}

/// A server with its workers running (scheduler, sender, events, maintenance), ticking fast.
pub async fn spawn_sending() -> TestApp {
    spawn_with(|c| {
        c.workers = true;
        c.tick_ms = 50;
        c.read_interval_secs = 1;
    })
    .await
}

pub async fn spawn_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut config = Config {
        listen: addr.to_string(),
        database_url: format!("sqlite://{}", dir.path().join("pigeon.db").display()),
        public_url: Some(format!("http://{addr}")),
        data_dir: dir.path().join("data"),
        workers: false,
        // Fake providers and webhook receivers listen on loopback.
        allow_outbound_cidr: vec!["127.0.0.0/8".into()],
        ..Config::default()
    };
    configure(&mut config);
    let app = Arc::new(App::open(config).await.expect("open"));
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(app::run(app.clone(), listener, async {
        let _ = stopped.await;
    }));
    let created = accounts::create_user(&app, "alice@example.com", false, None, None)
        .await
        .expect("user");
    TestApp {
        base: format!("http://{addr}"),
        app,
        client: reqwest::Client::new(),
        key: created.api_key,
        user_id: created.id,
        dir,
        _stop: stop,
    }
}

impl TestApp {
    /// Creates another account and returns its API key.
    pub async fn other_user(&self, email: &str) -> String {
        accounts::create_user(&self.app, email, false, None, None)
            .await
            .expect("user")
            .api_key
    }

    /// Changes one of the account's settings (as `pigeon user set` does).
    pub async fn set_setting(&self, name: &str, value: &str) {
        pigeon::services::accounts::set_setting(&self.app, "alice@example.com", name, value)
            .await
            .expect("setting");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.get_as(&self.key, path).await
    }

    pub async fn get_as(&self, key: &str, path: &str) -> Answer {
        answer(self.client.get(self.url(path)).header("X-Api-Key", key)).await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Answer {
        self.post_as(&self.key, path, form).await
    }

    pub async fn post_as(&self, key: &str, path: &str, form: &[(&str, &str)]) -> Answer {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        answer(
            self.client
                .post(self.url(path))
                .header("X-Api-Key", key)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.delete_as(&self.key, path).await
    }

    pub async fn delete_as(&self, key: &str, path: &str) -> Answer {
        answer(self.client.delete(self.url(path)).header("X-Api-Key", key)).await
    }

    /// Creates a resource through the API and returns its id.
    pub async fn create(&self, path: &str, form: &[(&str, &str)]) -> i64 {
        let a = self.post(path, form).await;
        assert_eq!(a.status, 201, "{path}: {}", a.text);
        created_id(&a)
    }
}

/// The id a create answered: the response itself, or its `id` (a webhook's answer also
/// carries its signing secret, shown only then).
pub fn created_id(a: &Answer) -> i64 {
    let response = a.ok();
    match response.as_i64() {
        Some(id) => id,
        None => {
            let secret = response["secret"].as_str().unwrap_or_default();
            assert!(
                secret.starts_with("whsec_"),
                "no id nor secret in {}",
                a.text
            );
            response["id"]
                .as_i64()
                .unwrap_or_else(|| panic!("the new id is not an integer: {}", a.text))
        }
    }
}

/// An SMS from `origin` received by `phone`, a phone of the `test` adapter, through its
/// reception callback.
pub async fn inject(t: &TestApp, phone: i64, origin: &str, text: &str) {
    let a = answer(
        t.client
            .post(t.url(&format!(
                "/callback/reception/test/{phone}/?api_key={}",
                t.key
            )))
            .form(&[("origin", origin), ("text", text)]),
    )
    .await;
    assert_eq!((a.status, a.text.as_str()), (200, ""), "reception callback");
}

pub async fn answer(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer { status, body, text }
}

// Helpers of the sending and callback tests (workers running).

/// Polls `probe` every 25 ms until it gives a value or `timeout` runs out (`None` then).
pub async fn poll<T, F, Fut>(timeout: std::time::Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(found) = probe().await {
            return Some(found);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// Polls `fetch` until its rows satisfy `done` (for up to five seconds): the rows, or `None`.
pub async fn wait_rows<F, Fut>(mut fetch: F, done: impl Fn(&[Value]) -> bool) -> Option<Vec<Value>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Vec<Value>>,
{
    poll(std::time::Duration::from_secs(5), || {
        let rows = fetch();
        let done = &done;
        async move {
            let rows = rows.await;
            done(&rows).then_some(rows)
        }
    })
    .await
}

/// Whether there are exactly `n` rows, all with `status`.
pub fn all_with_status(rows: &[Value], n: usize, status: &str) -> bool {
    rows.len() == n && rows.iter().all(|r| r["status"] == status)
}

/// The rows of a read-only query on the SQLite database at `db`, as JSON objects. Pigeon's
/// store keeps its pools private and the test crate has no SQLite driver of its own, so this
/// goes through the `sqlite3` command-line shell (read-only, WAL-aware).
pub async fn sql_at(db: &std::path::Path, query: &str) -> Vec<Value> {
    let out = tokio::process::Command::new("sqlite3")
        .arg("-readonly")
        .arg("-json")
        .args(["-cmd", ".timeout 5000"])
        .arg(db)
        .arg(query)
        .output()
        .await
        .expect("the sqlite3 shell must be installed to read the test database");
    assert!(
        out.status.success(),
        "sqlite3 failed on `{query}`: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        return Vec::new();
    }
    serde_json::from_str(&text).expect("sqlite3 JSON output")
}

impl TestApp {
    /// First page of a RaspiSMS list (`sended`, `received`, `scheduled`...).
    pub async fn list(&self, kind: &str) -> Vec<Value> {
        self.get(&format!("/api/list/{kind}/"))
            .await
            .ok()
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub async fn sended(&self) -> Vec<Value> {
        self.list("sended").await
    }

    pub async fn received(&self) -> Vec<Value> {
        self.list("received").await
    }

    /// Rows of a read-only SQL query on this server's database (see [`sql_at`]).
    pub async fn sql(&self, query: &str) -> Vec<Value> {
        sql_at(&self.dir.path().join("pigeon.db"), query).await
    }

    /// The stored row of message `id` (every column).
    pub async fn message(&self, id: i64) -> Value {
        self.sql(&format!("SELECT * FROM messages WHERE id = {id}"))
            .await
            .into_iter()
            .next()
            .unwrap_or(Value::Null)
    }

    /// Message `id`'s history: (status, detail) in order.
    pub async fn history(&self, id: i64) -> Vec<(String, Option<String>)> {
        pigeon_store::messages::histories(&self.app.store, &[id])
            .await
            .expect("history")
            .into_iter()
            .map(|h| (h.status, h.detail))
            .collect()
    }
}

impl TestApp {
    /// Runs a writing statement on this server's database through the `sqlite3` shell, for
    /// states no API reaches yet (a device marked attached before pairing exists).
    pub async fn sql_write(&self, statement: &str) {
        let out = tokio::process::Command::new("sqlite3")
            .args(["-cmd", ".timeout 5000"])
            .arg(self.dir.path().join("pigeon.db"))
            .arg(statement)
            .output()
            .await
            .expect("the sqlite3 shell must be installed to write the test database");
        assert!(
            out.status.success(),
            "sqlite3 failed on `{statement}`: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// What curl printed (run with `-s -S -w '\n%{http_code}'`): the HTTP status and the body.
#[derive(Debug)]
pub struct Curl {
    pub status: u16,
    pub text: String,
    pub body: Value,
}

impl Curl {
    /// Reads curl's output, failing the test if curl itself failed (`what` names the command).
    pub fn from_output(out: std::process::Output, what: &str) -> Curl {
        let stdout = String::from_utf8(out.stdout).expect("utf-8 output");
        assert!(
            out.status.success(),
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (text, status) = stdout
            .rsplit_once('\n')
            .unwrap_or_else(|| panic!("no status in {stdout:?}"));
        Curl {
            status: status
                .parse()
                .unwrap_or_else(|_| panic!("bad status {status:?}")),
            text: text.to_string(),
            body: serde_json::from_str(text).unwrap_or(Value::Null),
        }
    }
}
