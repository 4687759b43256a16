//! Fetching a URL someone else named (a server's caller, through `fetch_company_news`) without
//! lending them the network behind the server (server-side request forgery).
//!
//! - Only `http://` and `https://` URLs.
//! - The host is resolved once and **every** address it resolves to is checked: loopback,
//!   private (10/8, 172.16/12, 192.168/16), shared (100.64/10), link-local (169.254/16,
//!   fe80::/10), unique-local (fc00::/7), site-local (fec0::/10), multicast, unspecified
//!   (0.0.0.0/8, ::), broadcast and reserved (240/4) addresses are refused, as are IPv6 forms
//!   carrying such an IPv4 address (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64
//!   `64:ff9b::/96`, 6to4 `2002::/16`).
//! - The connection goes to the checked addresses (a resolver pinned to them is handed to the
//!   HTTP client), so a second DNS answer (rebinding) cannot switch it; TLS still verifies the
//!   URL's host name.
//! - Redirects are followed here, not by the client: each `Location` is checked like the first
//!   URL (scheme, host, every address), at most `max_redirects` of them.
//! - One time limit for the whole fetch (redirects included), a size limit on the body, no
//!   proxy from the environment.
//! - `allow_hosts` lets named hosts through even when internal: an exact host name, a suffix
//!   `*.corp.example` (its subdomains), or an IP address (any host resolving to it).

use crate::ConnectError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};

/// What a fetch may do (from `[news]` of abm.toml, [`abm_core::config::NewsConfig`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPolicy {
    pub allow_hosts: Vec<String>,
    pub max_redirects: u32,
    pub max_bytes: u64,
    pub timeout: Duration,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy::from_config(&abm_core::config::NewsConfig::default())
    }
}

impl FetchPolicy {
    pub fn from_config(c: &abm_core::config::NewsConfig) -> FetchPolicy {
        FetchPolicy {
            allow_hosts: c
                .allow_hosts
                .iter()
                .map(|h| {
                    h.trim()
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_ascii_lowercase()
                })
                .filter(|h| !h.is_empty())
                .collect(),
            max_redirects: c.max_redirects,
            max_bytes: c.max_bytes,
            timeout: Duration::from_millis(c.timeout_ms.max(1)),
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        self.allow_hosts.iter().any(|a| {
            a == host
                || a.strip_prefix("*.")
                    .is_some_and(|suffix| host.ends_with(&format!(".{suffix}")))
        })
    }

    fn address_allowed(&self, ip: IpAddr) -> bool {
        self.allow_hosts.iter().any(|a| {
            a.parse::<IpAddr>()
                .is_ok_and(|x| canonical(x) == canonical(ip))
        })
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Why an address may not be fetched on a caller's behalf (`None`: a public address).
pub fn internal_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_kind(v4),
        IpAddr::V6(v6) => v6_kind(v6),
    }
}

fn v4_kind(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    Some(if o[0] == 0 {
        "unspecified"
    } else if ip.is_loopback() {
        "loopback"
    } else if ip.is_private() {
        "private"
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        "shared (carrier-grade NAT)"
    } else if ip.is_link_local() {
        "link-local"
    } else if ip.is_multicast() {
        "multicast"
    } else if ip.is_broadcast() {
        "broadcast"
    } else if o[0] >= 240 {
        "reserved"
    } else {
        return None;
    })
}

fn v6_kind(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_kind(v4);
    }
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    Some(if ip.is_unspecified() {
        "unspecified"
    } else if ip.is_loopback() {
        "loopback"
    } else if s[0] & 0xffc0 == 0xfe80 {
        "link-local"
    } else if s[0] & 0xffc0 == 0xfec0 {
        "site-local"
    } else if s[0] & 0xfe00 == 0xfc00 {
        "unique-local"
    } else if s[0] & 0xff00 == 0xff00 {
        "multicast"
    } else if s[..6] == [0, 0, 0, 0, 0, 0] {
        // IPv4-compatible (deprecated) ::a.b.c.d.
        return v4_kind(embedded(s[6], s[7])).or(Some("reserved"));
    } else if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return v4_kind(embedded(s[6], s[7]));
    } else if s[0] == 0x2002 {
        return v4_kind(embedded(s[1], s[2]));
    } else {
        return None;
    })
}

fn refused(url: &str, reason: impl Into<String>) -> ConnectError {
    ConnectError::Refused {
        url: url.to_string(),
        reason: reason.into(),
    }
}

/// A checked URL: where to connect.
struct Target {
    host: String,
    addrs: Vec<SocketAddr>,
}

/// The URL's scheme and host checked, its host resolved and every address checked.
fn check(url: &url::Url, policy: &FetchPolicy, deadline: Instant) -> Result<Target, ConnectError> {
    let shown = url.as_str();
    if !matches!(url.scheme(), "http" | "https") {
        return Err(refused(
            shown,
            format!("scheme {:?}: only http:// and https:// URLs", url.scheme()),
        ));
    }
    let port = url
        .port_or_known_default()
        .ok_or_else(|| refused(shown, "no port"))?;
    let (host, addrs): (String, Vec<SocketAddr>) = match url.host() {
        None => return Err(refused(shown, "no host")),
        Some(url::Host::Ipv4(ip)) => (ip.to_string(), vec![SocketAddr::new(ip.into(), port)]),
        Some(url::Host::Ipv6(ip)) => (ip.to_string(), vec![SocketAddr::new(ip.into(), port)]),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            let addrs = resolve(&d, port, deadline).map_err(|e| refused(shown, e))?;
            (d, addrs)
        }
    };
    if addrs.is_empty() {
        return Err(refused(shown, format!("{host} resolves to no address")));
    }
    let by_name = policy.host_allowed(&host);
    for a in &addrs {
        if let Some(kind) = internal_kind(a.ip()) {
            if !(by_name || policy.address_allowed(a.ip())) {
                return Err(refused(
                    shown,
                    format!(
                        "{host} resolves to {} ({kind}): internal addresses are not fetched on a caller's behalf (allow the host in [news] allow_hosts of abm.toml)",
                        a.ip()
                    ),
                ));
            }
        }
    }
    Ok(Target { host, addrs })
}

/// The host's addresses, within the deadline.
fn resolve(host: &str, port: u16, deadline: Instant) -> Result<Vec<SocketAddr>, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let name = format!("{host}:{port}");
    std::thread::spawn(move || {
        let _ = tx.send(name.to_socket_addrs().map(|a| a.collect::<Vec<_>>()));
    });
    match rx.recv_timeout(left) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{host} does not resolve: {e}")),
        Err(_) => Err(format!("{host}: no DNS answer in time")),
    }
}

/// The HTTP client's resolver: the addresses checked for one host, nothing else.
#[derive(Debug)]
struct Pinned(Target);

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} → {:?}", self.host, self.addrs)
    }
}

impl Resolver for Pinned {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        _config: &ureq::config::Config,
        _timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let same = host == self.0.host
            || host
                .parse::<IpAddr>()
                .is_ok_and(|ip| self.0.host.parse::<IpAddr>() == Ok(ip));
        if !same {
            return Err(ureq::Error::BadUri(format!(
                "{host} was not checked (only {})",
                self.0.host
            )));
        }
        let mut out = self.empty();
        for a in self.0.addrs.iter().take(16) {
            out.push(*a);
        }
        Ok(out)
    }
}

/// The body at `url`, fetched under `policy` (see the module's documentation).
pub fn fetch(url: &str, policy: &FetchPolicy) -> Result<Vec<u8>, ConnectError> {
    let deadline = Instant::now() + policy.timeout;
    let mut current =
        url::Url::parse(url.trim()).map_err(|e| refused(url, format!("not a URL: {e}")))?;
    let mut hops = 0u32;
    loop {
        let shown = current.to_string();
        let target = check(&current, policy, deadline)?;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ConnectError::Invalid(format!(
                "{shown}: no answer within {} ms",
                policy.timeout.as_millis()
            )));
        }
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(left))
            .max_redirects(0)
            .http_status_as_error(false)
            .proxy(None)
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::new(),
            Pinned(target),
        );
        let mut resp = agent
            .get(current.as_str())
            .header("User-Agent", "abm-news/1")
            .call()
            .map_err(|e| ConnectError::Invalid(format!("{shown}: {e}")))?;
        let status = resp.status().as_u16();
        if matches!(status, 301 | 302 | 303 | 307 | 308) {
            let loc = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    ConnectError::Invalid(format!(
                        "{shown}: redirect ({status}) without a Location"
                    ))
                })?
                .to_string();
            hops += 1;
            if hops > policy.max_redirects {
                return Err(refused(
                    &shown,
                    format!("more than {} redirects", policy.max_redirects),
                ));
            }
            current = current
                .join(&loc)
                .map_err(|e| refused(&shown, format!("redirect to {loc:?}: not a URL: {e}")))?;
            continue;
        }
        if !(200..300).contains(&status) {
            return Err(ConnectError::Invalid(format!("{shown}: HTTP {status}")));
        }
        return resp
            .body_mut()
            .with_config()
            .limit(policy.max_bytes)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => refused(
                    &shown,
                    format!("larger than {} bytes ([news] max_bytes)", policy.max_bytes),
                ),
                e => ConnectError::Invalid(format!("{shown}: {e}")),
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_named_and_public_ones_pass() {
        for (ip, kind) in [
            ("127.0.0.1", "loopback"),
            ("127.8.9.10", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "shared (carrier-grade NAT)"),
            ("169.254.169.254", "link-local"),
            ("224.0.0.1", "multicast"),
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("255.255.255.255", "broadcast"),
            ("240.0.0.1", "reserved"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fe80::1", "link-local"),
            ("fc00::1", "unique-local"),
            ("fd12:3456::1", "unique-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("::127.0.0.1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("2002:c0a8:0101::1", "private"),
        ] {
            assert_eq!(internal_kind(ip.parse().unwrap()), Some(kind), "{ip}");
        }
        for ip in [
            "93.184.215.14",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "2002:0808:0808::1",
        ] {
            assert_eq!(internal_kind(ip.parse().unwrap()), None, "{ip}");
        }
    }

    #[test]
    fn schemes_and_internal_hosts_are_refused_before_any_connection() {
        let p = FetchPolicy::default();
        for (url, says) in [
            ("file:///etc/passwd", "only http"),
            ("ftp://example.com/feed", "only http"),
            ("gopher://127.0.0.1:70/", "only http"),
            ("http://127.0.0.1:9/feed", "loopback"),
            ("http://[::1]:9/feed", "loopback"),
            ("http://localhost:9/feed", "loopback"),
            ("http://169.254.169.254/latest/meta-data/", "link-local"),
            ("http://[::ffff:7f00:1]/", "loopback"),
            ("http://2130706433/", "loopback"),
            ("http://0x7f.1/", "loopback"),
            ("https://10.0.0.1/", "private"),
            ("not a url", "not a URL"),
        ] {
            let e = fetch(url, &p).unwrap_err();
            assert!(matches!(e, ConnectError::Refused { .. }), "{url}: {e}");
            assert!(e.to_string().contains(says), "{url}: {e}");
        }
    }

    #[test]
    fn the_allow_list_names_hosts_suffixes_and_addresses() {
        let p = FetchPolicy::from_config(&abm_core::config::NewsConfig {
            allow_hosts: vec![
                " Feeds.Corp ".into(),
                "*.intra.example".into(),
                "[::1]".into(),
            ],
            ..Default::default()
        });
        assert!(p.host_allowed("feeds.corp"));
        assert!(p.host_allowed("news.intra.example"));
        assert!(!p.host_allowed("intra.example"));
        assert!(!p.host_allowed("evilintra.example"));
        assert!(p.address_allowed("::1".parse().unwrap()));
        assert!(!p.address_allowed("127.0.0.1".parse().unwrap()));
    }
}
