//! The SSRF rule: which addresses and schemes calls may reach, checked on resolved addresses.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Where calls may go, checked on every resolved address inside the HTTP client's resolver (so
/// DNS rebinding does not help) and on IP-literal hosts before sending (they never reach a
/// resolver). Production refuses every non-public address unless `allow_private`
/// (`BACKFORGE_AI_ALLOW_PRIVATE_URLS=true`) and requires `https`; development also allows
/// loopback (a local Ollama) and plain `http`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkPolicy {
    /// Every address class below is allowed (an operator's explicit choice).
    pub allow_private: bool,
    /// Loopback (127.0.0.0/8, ::1) is allowed.
    pub allow_loopback: bool,
    /// `base_url` must be `https`.
    pub require_https: bool,
}

impl NetworkPolicy {
    /// Production: `https` only; non-public addresses only with `allow_private`.
    pub fn production(allow_private: bool) -> Self {
        Self {
            allow_private,
            allow_loopback: false,
            require_https: true,
        }
    }

    /// Development: loopback and `http` allowed; other non-public addresses only with
    /// `allow_private`.
    pub fn development(allow_private: bool) -> Self {
        Self {
            allow_private,
            allow_loopback: true,
            require_https: false,
        }
    }

    /// Whether a connection to `ip` is allowed; the refusal names the address's class.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refusal> {
        match classify(ip) {
            None => Ok(()),
            Some(_) if self.allow_private => Ok(()),
            Some(AddressClass::Loopback) if self.allow_loopback => Ok(()),
            Some(class) => Err(Refusal::Address { ip, class }),
        }
    }

    /// The checks that need no resolution: the scheme, no credentials in the URL, and an
    /// IP-literal host's address (such hosts bypass the resolver, so this is their only check).
    pub fn check_url(&self, url: &Url) -> Result<(), Refusal> {
        match url.scheme() {
            "https" => {}
            "http" if !self.require_https => {}
            "http" => return Err(Refusal::NotHttps),
            other => return Err(Refusal::Scheme(other.chars().take(20).collect())),
        }
        let Some(host) = url.host_str() else {
            return Err(Refusal::NoHost);
        };
        // An IPv6 literal comes bracketed; a parsed URL's IPv4 literal is in dotted form.
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        match literal.parse::<IpAddr>() {
            Ok(ip) => self.check_ip(ip),
            Err(_) => Ok(()),
        }
    }
}

/// Why a destination was refused. It names the host or address and its class, never a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{ip} is a {class} address, which this installation does not call")]
    Address { ip: IpAddr, class: AddressClass },
    #[error("`{host}` resolves to {ip}, a {class} address, which this installation does not call")]
    Resolved {
        host: String,
        ip: IpAddr,
        class: AddressClass,
    },
    #[error("base_url must be https in production")]
    NotHttps,
    #[error("base_url's scheme `{0}` is neither http nor https")]
    Scheme(String),
    #[error("base_url has no host")]
    NoHost,
    #[error("`{0}` resolves to no address")]
    NoAddress(String),
}

/// The classes of non-public addresses the rule names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Loopback,
    Private,
    LinkLocal,
    SharedCgnat,
    Unspecified,
    Multicast,
    Broadcast,
    Reserved,
}

impl std::fmt::Display for AddressClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::LinkLocal => "link-local",
            Self::SharedCgnat => "shared (CGNAT)",
            Self::Unspecified => "unspecified",
            Self::Multicast => "multicast",
            Self::Broadcast => "broadcast",
            Self::Reserved => "reserved",
        })
    }
}

/// The non-public class of `ip`, if it has one. IPv6 forms that carry an IPv4 address
/// (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4
/// `2002::/16`) are classified by that address.
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    let [a, b, _, _] = ip.octets();
    if ip.is_unspecified() || a == 0 {
        Some(AddressClass::Unspecified)
    } else if ip.is_loopback() {
        Some(AddressClass::Loopback)
    } else if ip.is_private() {
        Some(AddressClass::Private)
    } else if ip.is_link_local() {
        Some(AddressClass::LinkLocal)
    } else if a == 100 && (64..128).contains(&b) {
        Some(AddressClass::SharedCgnat)
    } else if ip.is_broadcast() {
        Some(AddressClass::Broadcast)
    } else if ip.is_multicast() {
        Some(AddressClass::Multicast)
    } else if a >= 240 {
        Some(AddressClass::Reserved)
    } else {
        None
    }
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    let segments = ip.segments();
    if ip.is_unspecified() {
        return Some(AddressClass::Unspecified);
    }
    if ip.is_loopback() {
        return Some(AddressClass::Loopback);
    }
    // IPv4-mapped ::ffff:a.b.c.d
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    // IPv4-compatible ::a.b.c.d (deprecated, still routed by some stacks)
    if segments[..6].iter().all(|s| *s == 0) {
        return classify_v4(embedded_v4(segments[6], segments[7]));
    }
    // NAT64 well-known prefix 64:ff9b::/96
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return classify_v4(embedded_v4(segments[6], segments[7]));
    }
    // 6to4 2002:a.b.c.d::/48
    if segments[0] == 0x2002 {
        return classify_v4(embedded_v4(segments[1], segments[2]));
    }
    if ip.is_unique_local() {
        Some(AddressClass::Private) // fc00::/7
    } else if ip.is_unicast_link_local() {
        Some(AddressClass::LinkLocal) // fe80::/10
    } else if segments[0] & 0xffc0 == 0xfec0 {
        Some(AddressClass::Private) // fec0::/10 site-local (deprecated; std has no method)
    } else if ip.is_multicast() {
        Some(AddressClass::Multicast) // ff00::/8
    } else {
        None
    }
}

fn embedded_v4(high: u16, low: u16) -> Ipv4Addr {
    let [a, b] = high.to_be_bytes();
    let [c, d] = low.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

/// A name lookup: the system's resolver in production, a fixed table in tests.
pub trait Lookup: Send + Sync + 'static {
    fn lookup(
        &self,
        host: &str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'static>>;
}

/// The system's resolver (`getaddrinfo` on tokio's blocking pool).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(
        &self,
        host: &str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'static>> {
        let host = host.to_owned();
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// A fixed table of names and their addresses; a name not in it does not resolve. For tests
/// (test host names mapped to private addresses) and pinned deployments.
#[derive(Debug, Clone, Default)]
pub struct StaticLookup(pub HashMap<String, Vec<IpAddr>>);

impl StaticLookup {
    pub fn new<I, S>(entries: I) -> Self
    where
        I: IntoIterator<Item = (S, IpAddr)>,
        S: Into<String>,
    {
        let mut table: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for (host, ip) in entries {
            table.entry(host.into()).or_default().push(ip);
        }
        Self(table)
    }
}

impl Lookup for StaticLookup {
    fn lookup(
        &self,
        host: &str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'static>> {
        let found = self.0.get(host).cloned();
        let host = host.to_owned();
        Box::pin(async move {
            found.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("`{host}` is not in the table"),
                )
            })
        })
    }
}

/// The HTTP client's resolver: looks a name up and refuses it — before any connection — if any
/// of its addresses is one the policy refuses (a name that answers with a mix is an attack, not
/// a choice of route).
pub(crate) struct GuardedResolver {
    pub(crate) policy: NetworkPolicy,
    pub(crate) lookup: Arc<dyn Lookup>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        let lookup = self.lookup.lookup(&host);
        Box::pin(async move {
            let ips = lookup.await?;
            if ips.is_empty() {
                return Err(Box::new(Refusal::NoAddress(host)) as _);
            }
            for ip in &ips {
                if let Err(Refusal::Address { ip, class }) = policy.check_ip(*ip) {
                    tracing::warn!(host = %host, %ip, %class, "AI provider address refused");
                    return Err(Box::new(Refusal::Resolved { host, ip, class }) as _);
                }
            }
            let addrs: Addrs = Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> Option<AddressClass> {
        classify(s.parse().unwrap())
    }

    #[test]
    fn every_named_class_is_found() {
        use AddressClass::*;
        for (ip, want) in [
            ("127.0.0.1", Some(Loopback)),
            ("127.9.9.9", Some(Loopback)),
            ("10.1.2.3", Some(Private)),
            ("172.16.0.1", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("172.32.0.1", None),
            ("192.168.1.1", Some(Private)),
            ("169.254.169.254", Some(LinkLocal)),
            ("100.64.0.1", Some(SharedCgnat)),
            ("100.127.255.255", Some(SharedCgnat)),
            ("100.128.0.1", None),
            ("0.0.0.0", Some(Unspecified)),
            ("224.0.0.1", Some(Multicast)),
            ("255.255.255.255", Some(Broadcast)),
            ("240.0.0.1", Some(Reserved)),
            ("8.8.8.8", None),
            ("::1", Some(Loopback)),
            ("::", Some(Unspecified)),
            ("fc00::1", Some(Private)),
            ("fd12:3456::1", Some(Private)),
            ("fe80::1", Some(LinkLocal)),
            ("febf::1", Some(LinkLocal)),
            ("fec0::1", Some(Private)),
            ("fbff::1", None),
            ("ff02::1", Some(Multicast)),
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:169.254.169.254", Some(LinkLocal)),
            ("::ffff:10.0.0.1", Some(Private)),
            ("::10.0.0.1", Some(Private)),
            ("::127.0.0.1", Some(Loopback)),
            ("64:ff9b::a9fe:a9fe", Some(LinkLocal)),
            ("2002:c0a8:0101::1", Some(Private)),
            ("::ffff:8.8.8.8", None),
            ("2606:4700::1111", None),
        ] {
            assert_eq!(class(ip), want, "{ip}");
        }
    }

    #[test]
    fn production_refuses_loopback_and_development_allows_it() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let meta: IpAddr = "169.254.169.254".parse().unwrap();
        assert!(NetworkPolicy::production(false).check_ip(lo).is_err());
        assert!(NetworkPolicy::development(false).check_ip(lo).is_ok());
        assert!(NetworkPolicy::development(false).check_ip(meta).is_err());
        assert!(NetworkPolicy::production(true).check_ip(meta).is_ok());
    }

    #[test]
    fn production_requires_https_and_checks_literal_hosts() {
        let p = NetworkPolicy::production(false);
        let url = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            p.check_url(&url("http://api.example.com")),
            Err(Refusal::NotHttps)
        );
        assert!(p.check_url(&url("https://api.example.com/v1")).is_ok());
        assert!(p.check_url(&url("https://169.254.169.254/")).is_err());
        assert!(p.check_url(&url("https://[::ffff:10.0.0.1]/")).is_err());
        assert!(p.check_url(&url("ftp://x.example.com/")).is_err());
        // Other spellings of loopback are normalised by the URL parser before the check.
        assert!(p.check_url(&url("https://2130706433/")).is_err());
        assert!(p.check_url(&url("https://0x7f.1/")).is_err());
        assert!(p.check_url(&url("https://0177.0.0.1/")).is_err());
        assert!(p.check_url(&url("https://0.0.0.0/")).is_err());
        assert!(p.check_url(&url("https://[::]/")).is_err());
        assert!(p.check_url(&url("https://[::127.0.0.1]/")).is_err());
        assert!(p.check_url(&url("https://[::ffff:127.0.0.1]/")).is_err());
        assert!(p.check_url(&url("https://[fe80::1]/")).is_err());
    }
}
