//! Python for the compatibility tests: one virtual environment per workspace
//! (`target/compat-venv`) holding the official clients, pinned by the callers, and a runner for
//! scripts with a timeout.
//!
//! The environment is made once and reused: creation and installs run under an in-process
//! mutex plus a lock directory (an atomic `mkdir`), so tests calling [`venv`] at the same time,
//! from one test binary or several, wait for each other. A stamp file lists the requirements
//! already installed; a caller asking for more gets them added. Any failure (no `python3`, no
//! `venv` module, pip unable to reach PyPI) fails the calling test with the tool's output.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tokio::io::AsyncReadExt;

/// The Python that creates the environment.
const PYTHON3: &str = "python3";
/// The stamp, inside the environment: one installed requirement a line.
const STAMP: &str = "pigeon-requirements.txt";
/// A lock directory older than this whose owner cannot be checked is taken as abandoned.
const STALE_LOCK: Duration = Duration::from_secs(15 * 60);

static IN_PROCESS: Mutex<()> = Mutex::new(());

/// The workspace's `target/compat-venv`.
pub fn venv_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join("target")
        .join("compat-venv")
}

/// The `tests/compat` directory holding the compatibility scripts.
pub fn compat_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat")
}

/// The environment's Python, with `requirements` (pinned, e.g. `reach-talkylabs==1.0.0`)
/// installed; creates or completes the environment first. Panics with the output of
/// `python3 -m venv` or pip when they fail.
pub async fn venv(requirements: &[&str]) -> PathBuf {
    let requirements: Vec<String> = requirements.iter().map(|r| r.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = requirements.iter().map(String::as_str).collect();
        venv_blocking(&venv_dir(), &refs)
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// [`venv`] without the runtime: blocks while another test creates or installs.
pub fn venv_blocking(dir: &Path, requirements: &[&str]) -> PathBuf {
    let _guard = IN_PROCESS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let parent = dir
        .parent()
        .expect("the environment has a parent directory");
    std::fs::create_dir_all(parent)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
    let _lock = DirLock::acquire(&dir.with_extension("lock"));
    let python = python_in(dir);
    if !usable(&python) {
        if dir.exists() {
            std::fs::remove_dir_all(dir)
                .unwrap_or_else(|e| panic!("cannot remove the broken {}: {e}", dir.display()));
        }
        run_or_fail(
            Command::new(PYTHON3).args(["-m", "venv"]).arg(dir),
            &format!(
                "`{PYTHON3} -m venv {}` (on Debian/Ubuntu install the python3-venv package)",
                dir.display()
            ),
        );
        assert!(
            usable(&python),
            "`{PYTHON3} -m venv` made no usable {}",
            python.display()
        );
    }
    let stamp = dir.join(STAMP);
    let installed: BTreeSet<String> = std::fs::read_to_string(&stamp)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let missing: Vec<&str> = requirements
        .iter()
        .copied()
        .filter(|r| !installed.contains(*r))
        .collect();
    if !missing.is_empty() {
        run_or_fail(
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--no-input",
                ])
                .args(&missing),
            &format!("pip install {}", missing.join(" ")),
        );
        let all: BTreeSet<String> = installed
            .into_iter()
            .chain(missing.iter().map(|r| r.to_string()))
            .collect();
        let text: String = all.into_iter().map(|r| r + "\n").collect();
        std::fs::write(&stamp, text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", stamp.display()));
    }
    python
}

fn python_in(dir: &Path) -> PathBuf {
    if cfg!(windows) {
        dir.join("Scripts").join("python.exe")
    } else {
        dir.join("bin").join("python")
    }
}

/// Whether `python` exists and starts (an environment left half made, or made by a Python
/// since removed, does not).
fn usable(python: &Path) -> bool {
    python.exists()
        && Command::new(python)
            .args(["-c", "import sys"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// Runs `command` to completion; panics with its output unless it succeeds.
fn run_or_fail(command: &mut Command, what: &str) {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what} could not start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A lock held while its directory exists; `mkdir` is atomic, so one holder at a time across
/// processes. The directory holds the owner's pid so a lock left by a dead process is broken.
struct DirLock {
    path: PathBuf,
}

impl DirLock {
    fn acquire(path: &Path) -> DirLock {
        let deadline = std::time::Instant::now() + Duration::from_secs(20 * 60);
        loop {
            match std::fs::create_dir(path) {
                Ok(()) => {
                    let _ = std::fs::write(path.join("pid"), std::process::id().to_string());
                    return DirLock {
                        path: path.to_path_buf(),
                    };
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if abandoned(path) {
                        let _ = std::fs::remove_dir_all(path);
                        continue;
                    }
                    assert!(
                        std::time::Instant::now() < deadline,
                        "still waiting for the lock {} after 20 minutes",
                        path.display()
                    );
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("cannot create the lock {}: {e}", path.display()),
            }
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Whether the lock at `path` was left by a process that is gone (Linux: no `/proc/<pid>`), or
/// is older than [`STALE_LOCK`] where that cannot be checked.
fn abandoned(path: &Path) -> bool {
    let owner = std::fs::read_to_string(path.join("pid"))
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok());
    if let Some(pid) = owner
        && Path::new("/proc/self").exists()
    {
        return !Path::new(&format!("/proc/{pid}")).exists();
    }
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age > STALE_LOCK)
}

/// What a script did: its exit status and output.
#[derive(Debug)]
pub struct ScriptOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl ScriptOutput {
    /// Both outputs, for a failure message.
    pub fn report(&self) -> String {
        format!(
            "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `python script args…` with `env` added (and `PYTHONUNBUFFERED=1`), stdin closed.
/// Panics with the output so far when it runs longer than `timeout` (the script is killed).
pub async fn run(
    python: &Path,
    script: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> ScriptOutput {
    let mut child = tokio::process::Command::new(python)
        .arg(script)
        .args(args)
        .envs(env.iter().copied())
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {} {}: {e}",
                python.display(),
                script.display()
            )
        });
    let stdout = read_all(child.stdout.take().expect("piped stdout"));
    let stderr = read_all(child.stderr.take().expect("piped stderr"));
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => ScriptOutput {
            status: status.expect("wait for the script"),
            stdout: stdout.await.expect("stdout reader"),
            stderr: stderr.await.expect("stderr reader"),
        },
        Err(_) => {
            let _ = child.kill().await;
            let stdout = stdout.await.unwrap_or_default();
            let stderr = stderr.await.unwrap_or_default();
            panic!(
                "{} timed out after {timeout:?} and was killed\n--- stdout ---\n{stdout}\n\
                 --- stderr ---\n{stderr}",
                script.display()
            );
        }
    }
}

/// Reads a pipe to its end in the background (lossy UTF-8).
fn read_all(
    mut pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes).await;
        String::from_utf8_lossy(&bytes).into_owned()
    })
}
