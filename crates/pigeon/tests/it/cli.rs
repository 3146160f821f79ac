//! The `pigeon` binary: user management, migrate, and serve with graceful shutdown.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn pigeon(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pigeon"))
        .current_dir(dir)
        .env_remove("PIGEON_DATABASE_URL")
        .env_remove("PIGEON_DATA_DIR")
        .env_remove("PIGEON_LISTEN")
        .env_remove("PIGEON_PUBLIC_URL")
        .env_remove("PIGEON_SECRET_KEY")
        .env_remove("PIGEON_CONFIG")
        .args(args)
        .output()
        .expect("run pigeon")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn user_commands_manage_accounts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let given = "a-known-key-of-32-characters-xyz";
    let o = pigeon(
        d,
        &[
            "user",
            "add",
            "ops@example.com",
            "--admin",
            "--api-key",
            given,
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(stdout(&o), given);
    let o = pigeon(
        d,
        &["user", "add", "short@example.com", "--api-key", "tooshort"],
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("at least 16 characters"));
    let o = pigeon(d, &["user", "add", "ops@example.com"]);
    assert!(!o.status.success(), "duplicate email accepted");
    let o = pigeon(d, &["user", "add", "dev@example.com", "--password", "pw"]);
    let generated = stdout(&o);
    assert_eq!(generated.len(), 32);
    assert!(
        pigeon(d, &["user", "suspend", "dev@example.com"])
            .status
            .success()
    );
    let list = stdout(&pigeon(d, &["user", "list"]));
    assert!(list.contains("ops@example.com\tadmin\tactive"), "{list}");
    assert!(list.contains("dev@example.com\tuser\tsuspended"), "{list}");
    assert!(
        pigeon(d, &["user", "activate", "dev@example.com"])
            .status
            .success()
    );
    let rotated = stdout(&pigeon(d, &["user", "rotate-key", "dev@example.com"]));
    assert_eq!(rotated.len(), 32);
    assert_ne!(rotated, generated);
    assert!(
        !pigeon(d, &["user", "suspend", "nobody@example.com"])
            .status
            .success()
    );
    assert!(
        pigeon(
            d,
            &["user", "set", "dev@example.com", "timezone", "Europe/Paris"]
        )
        .status
        .success()
    );
    assert!(
        !pigeon(
            d,
            &["user", "set", "dev@example.com", "timezone", "Mars/Olympus"]
        )
        .status
        .success()
    );
    assert!(
        !pigeon(
            d,
            &["user", "set", "dev@example.com", "no_such_setting", "1"]
        )
        .status
        .success()
    );
    assert!(pigeon(d, &["migrate"]).status.success());
    assert!(d.join("pigeon.db").exists() && d.join("pigeon-data/server.key").exists());
}

#[test]
fn database_and_data_dir_come_from_flags_env_or_config_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(
        d.join("custom.toml"),
        "database_url = \"sqlite://from-file.db\"\ndata_dir = \"file-data\"\n",
    )
    .expect("config");
    assert!(
        pigeon(d, &["--config", "custom.toml", "migrate"])
            .status
            .success()
    );
    assert!(d.join("from-file.db").exists() && d.join("file-data/server.key").exists());
    let o = Command::new(env!("CARGO_BIN_EXE_pigeon"))
        .current_dir(d)
        .env("PIGEON_DATABASE_URL", "sqlite://from-env.db")
        .env("PIGEON_DATA_DIR", "env-data")
        .args(["migrate"])
        .output()
        .expect("run");
    assert!(o.status.success());
    assert!(d.join("from-env.db").exists() && d.join("env-data/server.key").exists());
    assert!(
        pigeon(
            d,
            &[
                "migrate",
                "--database",
                "sqlite://from-flag.db",
                "--data-dir",
                "flag-data"
            ]
        )
        .status
        .success()
    );
    assert!(d.join("from-flag.db").exists());
}

#[test]
fn a_given_secret_key_is_used_instead_of_a_key_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let run = |key: &str| {
        Command::new(env!("CARGO_BIN_EXE_pigeon"))
            .current_dir(d)
            .env("PIGEON_SECRET_KEY", key)
            .args(["user", "add", "k@example.com"])
            .output()
            .expect("run")
    };
    assert!(
        !run("not-hex").status.success(),
        "a malformed key was accepted"
    );
    let o = run(&"ab".repeat(32));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!d.join("pigeon-data/server.key").exists());
}

#[tokio::test]
async fn serve_prints_the_first_admin_once_answers_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_path_buf();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr").port()
    };
    let listen = format!("127.0.0.1:{port}");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pigeon"))
        .current_dir(&d)
        .args(["serve", "--listen", &listen])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let client = reqwest::Client::new();
    let mut up = false;
    for _ in 0..100 {
        if client
            .get(format!("http://{listen}/api/list/contact/"))
            .send()
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "server did not start");
    let pid = child.id().expect("pid").to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("stops")
        .expect("output");
    assert!(out.status.success(), "exit {:?}", out.status);
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(printed.contains("admin@pigeon.local"), "{printed}");
    let key = printed
        .lines()
        .find_map(|l| l.trim().strip_prefix("api key:"))
        .map(str::trim)
        .expect("api key line")
        .to_string();
    // The key works against the same database, and a second start prints nothing.
    let list = stdout(&pigeon(&d, &["user", "list"]));
    assert!(list.contains("admin@pigeon.local\tadmin\tactive"));
    let store =
        pigeon_store::Store::connect(&format!("sqlite://{}", d.join("pigeon.db").display()))
            .await
            .expect("db");
    let digest = pigeon_core::secret::sha256_hex(&key);
    assert!(
        pigeon_store::users::by_api_key_digest(&store, &digest)
            .await
            .expect("q")
            .is_some()
    );
    let mut again = tokio::process::Command::new(env!("CARGO_BIN_EXE_pigeon"))
        .current_dir(&d)
        .args(["serve", "--listen", &listen])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    for _ in 0..100 {
        if client
            .get(format!("http://{listen}/api/list/contact/"))
            .send()
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = again.id().expect("pid").to_string();
    Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    let status = tokio::time::timeout(Duration::from_secs(10), again.wait())
        .await
        .expect("stops")
        .expect("status");
    assert!(status.success());
    let mut rest = String::new();
    if let Some(mut out) = again.stdout.take() {
        use tokio::io::AsyncReadExt;
        out.read_to_string(&mut rest).await.expect("read");
    }
    assert!(!rest.contains("api key"), "{rest}");
}
