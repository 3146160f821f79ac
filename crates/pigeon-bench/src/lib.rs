//! Shared helpers of Pigeon's benchmark tools (`bench-load`, `ceiling-http`, `ceiling-sqlite`,
//! `webhook-sink`). Every tool talks to 127.0.0.1 only and stops by itself after the time it
//! is given.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Refuses any listen or target address that is not on the loopback interface: the benchmarks
/// never send traffic off the machine.
pub fn require_loopback(host: &str) -> anyhow::Result<()> {
    let ip: std::net::IpAddr = match host {
        "localhost" => return Ok(()),
        h => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| anyhow::anyhow!("`{host}` is not an IP address on this machine"))?,
    };
    if ip.is_loopback() {
        Ok(())
    } else {
        anyhow::bail!("`{host}` is not a loopback address; the benchmarks stay on 127.0.0.1")
    }
}

/// Serves `app` on `listen` (a loopback address) until `duration` has passed or Ctrl-C; `name`
/// is the tool's, for the line saying where it listens.
pub async fn serve_for(
    name: &str,
    listen: &str,
    app: axum::Router,
    duration: std::time::Duration,
) -> anyhow::Result<()> {
    require_loopback(listen.rsplit_once(':').map_or("", |(h, _)| h))?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!("{name} listening on {}", listener.local_addr()?);
    let stop = async move {
        tokio::select! {
            _ = tokio::time::sleep(duration) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await?;
    Ok(())
}

/// A text with `{n}` placeholders, split once so that rendering is a few copies.
#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<String>,
    pad: usize,
    modulo: u64,
}

impl Template {
    /// `pad` is the width `{n}` is zero-padded to; the counter wraps at 10^pad so that the
    /// rendered number keeps its width.
    pub fn new(text: &str, pad: usize) -> Template {
        let modulo = if pad == 0 || pad >= 19 {
            u64::MAX
        } else {
            10u64.pow(pad as u32)
        };
        Template {
            parts: text.split("{n}").map(str::to_string).collect(),
            pad,
            modulo,
        }
    }

    pub fn has_placeholder(&self) -> bool {
        self.parts.len() > 1
    }

    pub fn render(&self, n: u64) -> String {
        if self.parts.len() == 1 {
            return self.parts[0].clone();
        }
        let number = format!("{:0width$}", n % self.modulo, width = self.pad);
        let mut out = String::with_capacity(
            self.parts.iter().map(String::len).sum::<usize>() + number.len() * self.parts.len(),
        );
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                out.push_str(&number);
            }
            out.push_str(part);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_placeholder_padded() {
        let t = Template::new("to=%2B336{n}&ref={n}", 8);
        assert_eq!(t.render(42), "to=%2B33600000042&ref=00000042");
        assert_eq!(Template::new("x", 8).render(3), "x");
        assert_eq!(Template::new("{n}", 2).render(123), "23");
    }

    #[test]
    fn only_loopback() {
        assert!(require_loopback("127.0.0.1").is_ok());
        assert!(require_loopback("[::1]").is_ok());
        assert!(require_loopback("localhost").is_ok());
        assert!(require_loopback("10.0.0.1").is_err());
        assert!(require_loopback("example.com").is_err());
    }
}
