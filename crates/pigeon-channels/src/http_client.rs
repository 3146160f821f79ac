//! The one outgoing HTTP client, guarded against server-side request forgery (SSRF).
//!
//! Users give Pigeon URLs (webhooks, provider endpoints, media) and Pigeon fetches them from
//! inside the network it runs in; without a guard anyone who can save a URL can make Pigeon
//! reach its loopback services, the LAN or the cloud metadata endpoint. Like Svix, the guard
//! works at connect time: a DNS resolver drops the addresses that are not allowed (so a name
//! that resolved to a public address when the URL was saved and to a private one now — DNS
//! rebinding — is still refused), and [`HttpClient::request`] checks IP literals, which never
//! reach the resolver. Only `http` and `https` are allowed, redirects are not followed (a
//! public URL must not be able to send Pigeon to a private one), and every request has a
//! connect and a total timeout. Networks a deployment does want to reach (a LAN for
//! self-hosters, `127.0.0.1/32` for tests) are allowed with `--allow-outbound-cidr`.

use std::error::Error as StdError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{Method, RequestBuilder, Url};

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Blocked {
    #[error("only http and https URLs are allowed")]
    Scheme,
    #[error(
        "the address {0} is not allowed (private, loopback, link-local, ...); allow it with --allow-outbound-cidr"
    )]
    Address(IpAddr),
    #[error("the URL has no host")]
    NoHost,
    #[error("{0} does not resolve to an allowed address")]
    Name(String),
}

/// Which networks outgoing requests may reach despite the block list.
#[derive(Debug, Clone, Default)]
pub struct Allow(Vec<IpNet>);

impl Allow {
    /// Parses `--allow-outbound-cidr` values: networks (`192.168.1.0/24`, `fd00::/8`) or single
    /// addresses (`127.0.0.1`, taken as `/32` or `/128`).
    pub fn parse(cidrs: &[String]) -> Result<Allow, String> {
        let mut nets = Vec::with_capacity(cidrs.len());
        for cidr in cidrs {
            let text = cidr.trim();
            let net = match text.parse::<IpNet>() {
                // Host bits are dropped so that the configuration reads back as the network
                // it covers (`10.1.2.3/8` is `10.0.0.0/8`).
                Ok(net) => net.trunc(),
                Err(_) => match text.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => {
                        return Err(format!(
                            "--allow-outbound-cidr `{cidr}` is neither a network (like 192.168.1.0/24) nor an address"
                        ));
                    }
                },
            };
            nets.push(net);
        }
        Ok(Allow(nets))
    }

    /// Whether outgoing requests may reach `ip`: it is not blocked, or it is inside an allowed
    /// network.
    pub fn permits(&self, ip: IpAddr) -> bool {
        if !is_blocked(ip) {
            return true;
        }
        // Both spellings are tried so that `::ffff:127.0.0.1` is covered by `127.0.0.1/32`
        // and a network written in IPv4-mapped form still covers what it says.
        let canonical = canonical(ip);
        self.0
            .iter()
            .any(|net| net.contains(&ip) || net.contains(&canonical))
    }
}

/// IPv4 networks that are never a public endpoint (IANA special-purpose registry, RFC 6890
/// and successors).
const BLOCKED_V4: [Ipv4Net; 17] = [
    v4([0, 0, 0, 0], 8),          // "this network"
    v4([10, 0, 0, 0], 8),         // private
    v4([100, 64, 0, 0], 10),      // CGNAT (shared address space)
    v4([127, 0, 0, 0], 8),        // loopback
    v4([169, 254, 0, 0], 16),     // link-local, with the cloud metadata 169.254.169.254
    v4([172, 16, 0, 0], 12),      // private
    v4([192, 0, 0, 0], 24),       // IETF protocol assignments
    v4([192, 0, 2, 0], 24),       // documentation (TEST-NET-1)
    v4([192, 88, 99, 0], 24),     // 6to4 relay anycast
    v4([192, 168, 0, 0], 16),     // private
    v4([198, 18, 0, 0], 15),      // benchmarking
    v4([198, 51, 100, 0], 24),    // documentation (TEST-NET-2)
    v4([203, 0, 113, 0], 24),     // documentation (TEST-NET-3)
    v4([224, 0, 0, 0], 4),        // multicast
    v4([240, 0, 0, 0], 4),        // reserved
    v4([255, 255, 255, 255], 32), // broadcast (inside 240/4, listed for the reader)
    v4([169, 254, 169, 254], 32), // cloud metadata (inside link-local, listed for the reader)
];

/// IPv6 networks that are never a public endpoint. IPv4-mapped and IPv4-compatible addresses
/// are not listed: they are checked as the IPv4 address they carry.
const BLOCKED_V6: [Ipv6Net; 15] = [
    v6([0, 0, 0, 0, 0, 0, 0, 0], 128),              // unspecified
    v6([0, 0, 0, 0, 0, 0, 0, 1], 128),              // loopback
    v6([0, 0, 0, 0, 0xffff, 0, 0, 0], 96),          // IPv4-translated (SIIT), reaches IPv4 networks
    v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96),       // NAT64, reaches any IPv4 address
    v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48),       // local-use NAT64
    v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64),           // discard
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32),          // Teredo, a tunnel to an embedded IPv4 address
    v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),      // documentation
    v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16),          // 6to4, a tunnel to an embedded IPv4 address
    v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),          // documentation
    v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16),          // SRv6 segment identifiers
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),           // unique local (ULA)
    v6([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254], 128), // AWS metadata (inside ULA, listed for the reader)
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),          // link-local
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8),           // multicast
];

const fn v4(octets: [u8; 4], prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(
        Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]),
        prefix,
    )
}

const fn v6(segments: [u16; 8], prefix: u8) -> Ipv6Net {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), prefix)
}

/// The address an IPv6 address stands for when it only carries an IPv4 one: IPv4-mapped
/// (`::ffff:a.b.c.d`) and the deprecated IPv4-compatible (`::a.b.c.d`). Without this,
/// `::ffff:127.0.0.1` would pass as "some IPv6 address" and reach loopback.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            // `::` and `::1` are IPv6's own unspecified and loopback addresses, not
            // IPv4-compatible ones.
            if !v6.is_unspecified()
                && !v6.is_loopback()
                && let Some(v4) = v6.to_ipv4()
            {
                return IpAddr::V4(v4);
            }
            ip
        }
        IpAddr::V4(_) => ip,
    }
}

/// True for addresses that are never a public endpoint: IPv4 private, loopback, link-local
/// (with cloud metadata), CGNAT, `0/8`, broadcast, multicast, reserved, documentation and
/// benchmarking ranges; IPv6 loopback, unspecified, multicast, link-local, unique local,
/// documentation, discard, and the translation and tunnelling prefixes (NAT64, 6to4, Teredo)
/// that lead to arbitrary IPv4 addresses. IPv4-mapped and IPv4-compatible IPv6 addresses are
/// judged as the IPv4 address they carry.
pub fn is_blocked(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => BLOCKED_V4.iter().any(|net| net.contains(&v4)),
        IpAddr::V6(v6) => BLOCKED_V6.iter().any(|net| net.contains(&v6)),
    }
}

/// Checks what can be checked before connecting: the scheme, and an IP-literal host (literal
/// addresses are connected to directly, without the resolver).
fn check_url(url: &Url, allow: &Allow) -> Result<(), Blocked> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Blocked::Scheme);
    }
    let host = url.host_str().ok_or(Blocked::NoHost)?;
    // The URL parser has already turned every IPv4 spelling (`2130706433`, `0x7f.1`) into
    // dotted decimal; IPv6 literals keep their brackets.
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = literal.parse::<IpAddr>()
        && !allow.permits(ip)
    {
        return Err(Blocked::Address(ip));
    }
    Ok(())
}

/// A DNS resolver that keeps only the permitted addresses of a name, so the connection can only
/// go where the guard allows, whatever the name resolves to at that moment.
#[derive(Debug)]
struct GuardedResolver {
    allow: Arc<Allow>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = Arc::clone(&self.allow);
        let host = name.as_str().to_string();
        Box::pin(async move {
            // Port 0: reqwest puts the URL's port (or the scheme's) in its place.
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let (kept, dropped): (Vec<SocketAddr>, Vec<SocketAddr>) =
                resolved.partition(|addr| allow.permits(addr.ip()));
            if !dropped.is_empty() {
                tracing::debug!(%host, ?dropped, "outgoing request: addresses not allowed dropped");
            }
            if kept.is_empty() {
                let error: Box<dyn StdError + Send + Sync> = if dropped.is_empty() {
                    // Nothing at all: a name problem, not the guard's doing.
                    format!("{host} has no address").into()
                } else {
                    Box::new(Blocked::Name(host))
                };
                return Err(error);
            }
            let addrs: Addrs = Box::new(kept.into_iter());
            Ok(addrs)
        })
    }
}

/// The client: connect timeout, total timeout, no redirects, and a DNS resolver that drops
/// disallowed addresses (failing when none remain), so DNS rebinding cannot slip through.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    allow: Arc<Allow>,
}

impl HttpClient {
    pub fn new(
        allow: Allow,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<HttpClient, String> {
        let allow = Arc::new(allow);
        let inner = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver {
                allow: Arc::clone(&allow),
            }))
            // A redirect is a new destination the guard has not seen in the URL; Svix does not
            // follow them either, and a 3xx is reported as it is.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment (HTTP_PROXY, ...) would resolve and connect to the
            // target itself, out of the resolver's sight, and the guard would only see the
            // proxy's address.
            .no_proxy()
            .connect_timeout(connect_timeout)
            .timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(HttpClient { inner, allow })
    }

    /// Checks the URL (scheme http/https; an IP-literal host must be permitted — literal IPs
    /// bypass the resolver) and returns a request builder. Host names are checked when the
    /// request connects: a refusal then comes back from `send()` as an error for which
    /// [`is_blocked_error`] is true.
    ///
    /// A string that is not a URL at all is handed to reqwest unchanged: nothing can be reached
    /// with it, and `send()` fails with a builder error (`reqwest::Error::is_builder`).
    pub fn request(&self, method: Method, url: &str) -> Result<RequestBuilder, Blocked> {
        let Ok(parsed) = Url::parse(url) else {
            return Ok(self.inner.request(method, url));
        };
        check_url(&parsed, &self.allow)?;
        // The checked URL itself is sent, so what was checked is what is requested.
        Ok(self.inner.request(method, parsed))
    }

    pub fn get(&self, url: &str) -> Result<RequestBuilder, Blocked> {
        self.request(Method::GET, url)
    }

    pub fn post(&self, url: &str) -> Result<RequestBuilder, Blocked> {
        self.request(Method::POST, url)
    }
}

/// Whether a reqwest error came from the SSRF guard (so callers classify it as permanent, not
/// a network hiccup): the resolver's [`Blocked`] error somewhere in the chain of sources.
pub fn is_blocked_error(e: &reqwest::Error) -> bool {
    let mut current: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(error) = current {
        if error.downcast_ref::<Blocked>().is_some() {
            return true;
        }
        current = error.source();
    }
    false
}

/// A request error with its causes (reqwest's own text hides them: a refused address, a
/// timeout), without the URL, which may carry credentials.
pub fn describe(e: &reqwest::Error) -> String {
    let mut message = e.to_string();
    if let Some(url) = e.url() {
        message = message
            .replace(&format!(" for url ({url})"), "")
            .replace(&format!(" ({url})"), "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    #[test]
    fn block_list() {
        let table = [
            // IPv4
            ("0.0.0.0", true),
            ("0.1.2.3", true),
            ("10.0.0.1", true),
            ("10.255.255.255", true),
            ("100.64.0.1", true),
            ("100.127.255.255", true),
            ("100.63.255.255", false),
            ("100.128.0.0", false),
            ("127.0.0.1", true),
            ("127.8.9.10", true),
            ("169.254.169.254", true),
            ("169.254.0.1", true),
            ("172.16.0.1", true),
            ("172.31.255.255", true),
            ("172.15.255.255", false),
            ("172.32.0.0", false),
            ("192.0.0.170", true),
            ("192.0.2.1", true),
            ("192.88.99.1", true),
            ("192.168.1.1", true),
            ("198.18.0.1", true),
            ("198.19.255.255", true),
            ("198.20.0.0", false),
            ("198.51.100.7", true),
            ("203.0.113.9", true),
            ("224.0.0.1", true),
            ("239.255.255.250", true),
            ("240.0.0.1", true),
            ("255.255.255.255", true),
            ("8.8.8.8", false),
            ("1.1.1.1", false),
            ("93.184.216.34", false),
            // IPv6
            ("::", true),
            ("::1", true),
            ("::ffff:10.0.0.1", true),
            ("::ffff:127.0.0.1", true),
            ("::ffff:169.254.169.254", true),
            ("::ffff:8.8.8.8", false),
            ("::10.0.0.1", true),
            ("::8.8.8.8", false),
            ("::ffff:0:a00:1", true),
            ("64:ff9b::a00:1", true),
            ("64:ff9b::808:808", true),
            ("64:ff9b:1::1", true),
            ("100::1", true),
            ("2001::1", true),
            ("2001:db8::1", true),
            ("2002:a00:1::1", true),
            ("3fff::1", true),
            ("5f00::1", true),
            ("fc00::1", true),
            ("fd12::1", true),
            ("fd00:ec2::254", true),
            ("fe80::1", true),
            ("febf::1", true),
            ("ff02::1", true),
            ("2606:4700::1", false),
            ("2a00:1450:4007::200e", false),
            ("2001:4860:4860::8888", false),
        ];
        let wrong: Vec<_> = table
            .iter()
            .filter(|(addr, blocked)| is_blocked(ip(addr)) != *blocked)
            .collect();
        assert!(wrong.is_empty(), "misjudged (address, expected): {wrong:?}");
    }

    #[test]
    fn allow_parse() {
        let allow = Allow::parse(&[
            "127.0.0.1/32".to_string(),
            " 192.168.1.0/24 ".to_string(),
            "10.1.2.3/8".to_string(),
            "fd00::1".to_string(),
        ])
        .expect("valid");
        assert_eq!(
            allow.0,
            vec![
                "127.0.0.1/32".parse::<IpNet>().expect("net"),
                "192.168.1.0/24".parse().expect("net"),
                "10.0.0.0/8".parse().expect("net"),
                "fd00::1/128".parse().expect("net"),
            ]
        );
        for bad in [
            "",
            "localhost",
            "10.0.0.0/33",
            "10.0.0/8",
            "::1/129",
            "1.2.3.4/",
        ] {
            let error = Allow::parse(&[bad.to_string()]).expect_err(bad);
            assert!(error.contains("--allow-outbound-cidr"), "{error}");
        }
        assert!(Allow::parse(&[]).expect("empty").0.is_empty());
    }

    #[test]
    fn allow_permits() {
        let none = Allow::default();
        assert!(none.permits(ip("8.8.8.8")));
        assert!(!none.permits(ip("127.0.0.1")));

        let allow = Allow::parse(&["127.0.0.1/32".to_string(), "192.168.1.0/24".to_string()])
            .expect("valid");
        assert!(allow.permits(ip("127.0.0.1")));
        assert!(allow.permits(ip("::ffff:127.0.0.1")));
        assert!(!allow.permits(ip("127.0.0.2")));
        assert!(!allow.permits(ip("::1")));
        assert!(allow.permits(ip("192.168.1.77")));
        assert!(!allow.permits(ip("192.168.2.1")));
        assert!(!allow.permits(ip("169.254.169.254")));
        assert!(allow.permits(ip("2606:4700::1")));
    }

    #[test]
    fn urls() {
        let none = Allow::default();
        let check =
            |url: &str, allow: &Allow| check_url(&Url::parse(url).expect("test URL"), allow);
        assert_eq!(check("ftp://x", &none), Err(Blocked::Scheme));
        assert_eq!(check("file:///etc/passwd", &none), Err(Blocked::Scheme));
        assert_eq!(check("gopher://8.8.8.8/", &none), Err(Blocked::Scheme));
        assert_eq!(check("https://example.com/hook", &none), Ok(()));
        assert_eq!(check("HTTP://8.8.8.8:8080/", &none), Ok(()));
        assert_eq!(check("http://[2606:4700::1]/", &none), Ok(()));
        // Every spelling of a blocked literal is refused.
        for url in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://127.1/",
            "https://169.254.169.254/latest/meta-data/",
            "http://[::1]:8080/",
            "http://[::ffff:127.0.0.1]/",
            "http://[fd00:ec2::254]/",
            "http://user:pass@10.0.0.1/",
        ] {
            assert!(
                matches!(check(url, &none), Err(Blocked::Address(_))),
                "{url} must be refused"
            );
        }
        let loopback = Allow::parse(&["127.0.0.1/32".to_string()]).expect("valid");
        assert_eq!(check("http://127.0.0.1:1234/", &loopback), Ok(()));
        assert_eq!(
            check("http://127.0.0.2/", &loopback),
            Err(Blocked::Address(ip("127.0.0.2")))
        );
    }

    #[tokio::test]
    async fn resolver_drops_disallowed_addresses() {
        let resolve = |allow: Allow, name: &str| {
            let resolver = GuardedResolver {
                allow: Arc::new(allow),
            };
            resolver.resolve(name.parse().expect("name"))
        };
        let error = match resolve(Allow::default(), "localhost").await {
            Ok(addrs) => panic!("localhost resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e,
        };
        assert_eq!(
            error.downcast_ref::<Blocked>(),
            Some(&Blocked::Name("localhost".to_string()))
        );
        let allow = Allow::parse(&["127.0.0.1/32".to_string()]).expect("valid");
        let addrs: Vec<SocketAddr> = resolve(allow, "localhost")
            .await
            .expect("allowed")
            .collect();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip() == ip("127.0.0.1")), "{addrs:?}");
    }
}
