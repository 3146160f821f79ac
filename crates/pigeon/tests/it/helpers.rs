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

pub async fn spawn() -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config = Config {
        listen: addr.to_string(),
        database_url: format!("sqlite://{}", dir.path().join("pigeon.db").display()),
        public_url: Some(format!("http://{addr}")),
        data_dir: dir.path().join("data"),
        secret_key: None,
    };
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
        a.ok().as_i64().expect("id")
    }
}

pub async fn answer(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer { status, body, text }
}
