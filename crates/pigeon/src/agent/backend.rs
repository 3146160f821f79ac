//! How `pigeon agent` actually sends an SMS, and where inbound SMS come from.
//!
//! - `simulator`: every SMS is sent at once and delivered [`SIMULATED_DELIVERY`] later. For tests
//!   and demos; nothing leaves the machine.
//! - `command`: a program run once per SMS, e.g. `termux-sms-send -n {to} {text}` (Android under
//!   Termux) or `gammu sendsms TEXT {to} -text {text}` (USB modem). The template is split on
//!   whitespace into argv *before* `{to}` and `{text}` are substituted, and the program is run
//!   directly, never through a shell: a text with spaces, quotes or `;` stays one argument and
//!   is never interpreted. Exit 0 means sent (203; no delivery report); any other exit is 510
//!   with the exit status as `code` and the last line of stderr as `detail`.
//!
//! Inbound SMS (`--receive-command`, any backend): the command's stdout is read line by line,
//! each line a JSON object `{"from": "+33…", "text": "…", "at": "<RFC 3339>"}` (`at` optional:
//! the time it was read otherwise). The command is kept running; when it exits it is started
//! again [`RECEIVE_PAUSE`] later, so both a long-running watcher and a one-shot script that
//! prints the SMS received since its last run (and removes them from the modem) work.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::future::BoxFuture;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::protocol::FromAgent;

/// Delay between the simulator's "sent" and "delivered".
pub const SIMULATED_DELIVERY: Duration = Duration::from_millis(50);
/// A send command still running after this is killed and reported as failed, so a hung modem
/// does not hold a slot forever.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(120);
/// Pause before the receive command is started again after it exited.
pub const RECEIVE_PAUSE: Duration = Duration::from_secs(20);
/// Longest `detail` reported to the server, in characters.
const DETAIL_MAX: usize = 200;

/// The status reported when the command fails (the seed's "error delivering the message").
pub const STATUS_COMMAND_FAILED: u16 = 510;
/// The status reported for a recipient the agent refuses to put on a command line.
pub const STATUS_INVALID: u16 = 502;

pub enum Backend {
    Simulator,
    Command(CommandBackend),
}

/// What became of one SMS.
pub enum SendOutcome {
    /// Handed to the network (203). `delivery` resolves when the network reports delivery (205),
    /// for backends that can tell.
    Sent {
        delivery: Option<BoxFuture<'static, ()>>,
    },
    /// An error status (501–511) with the raw backend code and a short explanation.
    Failed {
        status: u16,
        code: String,
        detail: String,
    },
}

impl Backend {
    /// Sends one SMS. An `Err` means the backend could not even try (e.g. the program is missing).
    pub async fn send(&self, to: &str, text: &str) -> Result<SendOutcome> {
        match self {
            Backend::Simulator => Ok(SendOutcome::Sent {
                delivery: Some(Box::pin(tokio::time::sleep(SIMULATED_DELIVERY))),
            }),
            Backend::Command(command) => command.send(to, text).await,
        }
    }
}

/// `--send-command`, split into argv once.
#[derive(Debug, Clone)]
pub struct CommandBackend {
    argv: Vec<String>,
    timeout: Duration,
}

impl CommandBackend {
    pub fn new(template: &str) -> Result<Self> {
        let argv = split(template)?;
        // A template without them is almost surely a typo (`{number}`, `{body}`), which would
        // otherwise "send" every SMS to nobody.
        for placeholder in ["{to}", "{text}"] {
            if !argv.iter().any(|a| a.contains(placeholder)) {
                bail!("the send command must contain {placeholder}");
            }
        }
        Ok(Self {
            argv,
            timeout: SEND_TIMEOUT,
        })
    }

    /// The argv for one SMS: the template's items with the placeholders replaced.
    pub fn argv(&self, to: &str, text: &str) -> Vec<String> {
        self.argv
            .iter()
            .map(|item| substitute(item, to, text))
            .collect()
    }

    async fn send(&self, to: &str, text: &str) -> Result<SendOutcome> {
        // A recipient starting with `-` could be taken for an option by the program.
        if !plausible_number(to) {
            return Ok(SendOutcome::Failed {
                status: STATUS_INVALID,
                code: "recipient".into(),
                detail: "the recipient is not a phone number".into(),
            });
        }
        let argv = self.argv(to, text);
        let (program, args) = argv.split_first().context("empty send command")?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run {program}"))?;
        let output = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(output) => output.with_context(|| format!("waiting for {program}"))?,
            Err(_) => {
                return Ok(SendOutcome::Failed {
                    status: STATUS_COMMAND_FAILED,
                    code: "timeout".into(),
                    detail: format!("{program} still running after {}s", self.timeout.as_secs()),
                });
            }
        };
        if output.status.success() {
            return Ok(SendOutcome::Sent { delivery: None });
        }
        let detail = last_line(&output.stderr).or_else(|| last_line(&output.stdout));
        Ok(SendOutcome::Failed {
            status: STATUS_COMMAND_FAILED,
            code: exit_code(output.status),
            detail: detail.unwrap_or_else(|| format!("{program} failed")),
        })
    }
}

/// Splits a command template into argv; quotes have no special meaning.
fn split(template: &str) -> Result<Vec<String>> {
    let argv: Vec<String> = template.split_whitespace().map(str::to_owned).collect();
    if argv.is_empty() {
        bail!("the command is empty");
    }
    Ok(argv)
}

/// Replaces `{to}` and `{text}` in one argv item in a single pass, so a text containing `{to}`
/// stays as written.
fn substitute(item: &str, to: &str, text: &str) -> String {
    let mut out = String::with_capacity(item.len());
    let mut rest = item;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        if let Some(after) = tail.strip_prefix("{to}") {
            out.push_str(to);
            rest = after;
        } else if let Some(after) = tail.strip_prefix("{text}") {
            out.push_str(text);
            rest = after;
        } else {
            out.push('{');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

fn plausible_number(to: &str) -> bool {
    let digits = to.strip_prefix('+').unwrap_or(to);
    !digits.is_empty() && digits.len() <= 20 && digits.bytes().all(|b| b.is_ascii_digit())
}

fn exit_code(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code.to_string(),
        (None, Some(signal)) => format!("signal {signal}"),
        (None, None) => "unknown".into(),
    }
}

/// The last non-blank line of a program's output, cut to [`DETAIL_MAX`] characters.
fn last_line(output: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(output);
    let line = text.lines().rev().map(str::trim).find(|l| !l.is_empty())?;
    Some(line.chars().take(DETAIL_MAX).collect())
}

/// One line of the receive command's output.
#[derive(Deserialize)]
struct InboundLine {
    from: String,
    text: String,
    at: Option<String>,
}

/// Parses one line of the receive command's output into an inbound frame; `at` defaults to now,
/// and an `at` that is not RFC 3339 is replaced by now too (the server would refuse it).
pub fn parse_inbound(line: &str) -> Result<FromAgent> {
    let InboundLine { from, text, at } = serde_json::from_str(line)?;
    let at = at
        .filter(|at| at.parse::<jiff::Timestamp>().is_ok())
        .unwrap_or_else(|| jiff::Timestamp::now().to_string());
    Ok(FromAgent::Inbound {
        from,
        text,
        at: Some(at),
    })
}

/// Runs `--receive-command` until `shutdown`, sending each SMS it reports to `tx` (see the
/// module documentation for the restart policy).
pub async fn receive(template: String, tx: mpsc::Sender<FromAgent>, shutdown: CancellationToken) {
    let argv = match split(&template) {
        Ok(argv) => argv,
        Err(e) => {
            tracing::error!(error = %e, "receive command");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            result = receive_once(&argv, &tx) => if let Err(e) = result {
                tracing::warn!(error = format!("{e:#}"), "receive command");
            },
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(RECEIVE_PAUSE) => {}
        }
    }
}

async fn receive_once(argv: &[String], tx: &mpsc::Sender<FromAgent>) -> Result<()> {
    let (program, args) = argv.split_first().context("empty receive command")?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    while let Some(line) = lines.next_line().await? {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match parse_inbound(line) {
            // Closed only when the agent stops.
            Ok(frame) => {
                if tx.send(frame).await.is_err() {
                    return Ok(());
                }
            }
            // The line is not logged: it may hold a message's text.
            Err(e) => tracing::warn!(error = %e, "receive command: a line is not an SMS"),
        }
    }
    let status = child.wait().await?;
    if !status.success() {
        bail!("{program} exited with {}", exit_code(status));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(outcome: SendOutcome) -> (u16, String, String) {
        match outcome {
            SendOutcome::Failed {
                status,
                code,
                detail,
            } => (status, code, detail),
            SendOutcome::Sent { .. } => panic!("expected a failure"),
        }
    }

    #[test]
    fn argv_keeps_the_text_one_argument() {
        let backend =
            CommandBackend::new("gammu  sendsms TEXT {to} -text {text}").expect("template");
        let text = r#"hi "there"; rm -rf / {to} $HOME `x` 'y'"#;
        assert_eq!(
            backend.argv("+33612345678", text),
            ["gammu", "sendsms", "TEXT", "+33612345678", "-text", text]
        );
        let backend = CommandBackend::new("send --to={to} --body={text}{text}").expect("template");
        assert_eq!(
            backend.argv("+1", "a b"),
            ["send", "--to=+1", "--body=a ba b"]
        );
        assert_eq!(substitute("{x}{to}{", "+1", "t"), "{x}+1{");
        assert!(CommandBackend::new("termux-sms-send -n {number} {text}").is_err());
        assert!(CommandBackend::new("   ").is_err());
    }

    #[tokio::test]
    async fn command_exit_status_is_the_code() {
        let backend = CommandBackend::new("sh -c {text} {to}").expect("template");
        let outcome = backend
            .send(
                "+33612345678",
                "echo first >&2; echo 'it failed' >&2; exit 3",
            )
            .await;
        let (status, code, detail) = failed(outcome.expect("ran"));
        assert_eq!(
            (status, code.as_str(), detail.as_str()),
            (510, "3", "it failed")
        );

        let outcome = backend
            .send("+33612345678", "test \"$0\" = +33612345678")
            .await
            .expect("ran");
        assert!(matches!(outcome, SendOutcome::Sent { delivery: None }));

        let (status, code, _) = failed(backend.send("-rf", "true").await.expect("refused"));
        assert_eq!((status, code.as_str()), (502, "recipient"));

        let missing =
            CommandBackend::new("/nonexistent/pigeon-send {to} {text}").expect("template");
        assert!(missing.send("+1", "x").await.is_err());
    }

    #[tokio::test]
    async fn a_hung_command_times_out() {
        let mut backend = CommandBackend::new("sleep 5 {to} {text}").expect("template");
        backend.argv = vec!["sleep".into(), "5".into()];
        backend.timeout = Duration::from_millis(100);
        let (status, code, _) = failed(backend.send("+1", "x").await.expect("ran"));
        assert_eq!((status, code.as_str()), (510, "timeout"));
    }

    #[tokio::test]
    async fn simulator_sends_then_delivers() {
        let outcome = Backend::Simulator
            .send("+33612345678", "hello")
            .await
            .expect("simulated");
        let SendOutcome::Sent {
            delivery: Some(delivery),
        } = outcome
        else {
            panic!("expected sent with a delivery report");
        };
        let started = tokio::time::Instant::now();
        delivery.await;
        assert!(started.elapsed() >= SIMULATED_DELIVERY);
    }

    #[test]
    fn inbound_lines() {
        let frame =
            parse_inbound(r#"{"from":"+33611111111","text":"hi","at":"2025-01-02T03:04:05Z"}"#)
                .expect("line");
        assert_eq!(
            frame,
            FromAgent::Inbound {
                from: "+33611111111".into(),
                text: "hi".into(),
                at: Some("2025-01-02T03:04:05Z".into())
            }
        );
        let FromAgent::Inbound { at: Some(at), .. } =
            parse_inbound(r#"{"from":"+1","text":"x","at":"yesterday"}"#).expect("line")
        else {
            panic!("expected inbound");
        };
        assert!(at.parse::<jiff::Timestamp>().is_ok());
        assert!(parse_inbound(r#"{"text":"x"}"#).is_err());
        assert!(parse_inbound("not json").is_err());
    }

    #[tokio::test]
    async fn receive_command_lines_become_frames() {
        let (tx, mut rx) = mpsc::channel(8);
        let argv: Vec<String> = [
            "printf",
            r#"{"from":"+1","text":"a b"}\n\nbad\n{"from":"+2","text":"c"}\n"#,
        ]
        .map(String::from)
        .into();
        receive_once(&argv, &tx).await.expect("ran");
        drop(tx);
        let mut froms = Vec::new();
        while let Some(FromAgent::Inbound { from, .. }) = rx.recv().await {
            froms.push(from);
        }
        assert_eq!(froms, ["+1", "+2"]);
    }
}
