//! The real `pigeon` binary for the tests that kill and restart it: started in a directory with
//! its own `PIGEON_*` settings (the caller's are cleared), its logs kept for failure messages.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// An address on 127.0.0.1 free a moment ago, to start the server on: (`listen`, its base URL).
pub fn free_address() -> (String, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let base = format!("http://{listen}");
    (listen, base)
}

/// The server on `listen` in `dir`, its stderr appended to `dir/<log>`.
pub fn spawn(dir: &Path, listen: &str, log: &str, stdout: Stdio, env: &[(&str, &str)]) -> Child {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(log))
        .expect("log file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_pigeon"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PIGEON_") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    command
        .current_dir(dir)
        .args(["serve", "--listen", listen])
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn pigeon")
}

/// The end of the servers' logs, for failure messages.
pub fn logs(dir: &Path) -> String {
    let mut out = String::new();
    for log in ["first.log", "second.log"] {
        let text = std::fs::read_to_string(dir.join(log)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        out.push_str(&format!("\n--- {log} (last 30 lines) ---\n{tail}"));
    }
    out
}

/// The API key the first start prints; the rest of stdout is drained in the background.
pub async fn read_api_key(child: &mut Child, dir: &Path) -> String {
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let key = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            if let Some(key) = line.trim().strip_prefix("api key:") {
                return Some(key.trim().to_string());
            }
        }
        None
    })
    .await
    .unwrap_or_else(|_| panic!("no api key printed in time{}", logs(dir)))
    .unwrap_or_else(|| panic!("stdout closed without an api key{}", logs(dir)));
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    key
}

pub async fn wait_until_up(client: &reqwest::Client, base: &str, child: &mut Child, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if client
            .get(format!("{base}/api/list/contact/"))
            .send()
            .await
            .is_ok()
        {
            return;
        }
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("the server exited ({status}){}", logs(dir));
        }
        assert!(
            Instant::now() < deadline,
            "the server did not answer{}",
            logs(dir)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stops the server with SIGTERM and checks it exits cleanly within `within`.
pub async fn stop_cleanly(child: &mut Child, dir: &Path, within: Duration) {
    let pid = child.id().expect("pid").to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let status = tokio::time::timeout(within, child.wait())
        .await
        .unwrap_or_else(|_| panic!("no stop within {within:?} of SIGTERM{}", logs(dir)))
        .expect("wait");
    assert!(status.success(), "exit {status}{}", logs(dir));
}
