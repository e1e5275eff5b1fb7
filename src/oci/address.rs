//! Which network addresses the client may connect to: an [`AddressPolicy`], judged on every
//! address a host name resolves to at connect time (so a name that re-resolves to another
//! address later — DNS rebinding — is judged again), on IP literals before any request and on
//! every redirect.
//!
//! Refused always: cloud metadata endpoints, link-local addresses, the unspecified address,
//! multicast and broadcast. Loopback only when the policy allows it (the binary run by hand
//! reaches registries on 127.0.0.1; a cluster's operator should not). Private ranges are
//! allowed: corporate registries live there. An IPv4 address inside IPv6 (`::ffff:a.b.c.d`,
//! NAT64's `64:ff9b::a.b.c.d`) is judged as the IPv4 address it carries.
//!
//! The seam: [`Resolver`] turns names into addresses (the system resolver unless a caller
//! injects another); [`PolicyResolver`] sits between it and the connector and hands over only
//! the addresses the policy allows.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use url::{Host, Url};

/// A rule of the [`AddressPolicy`] that refused an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddressRule {
    /// A cloud metadata endpoint (see [`METADATA_ADDRESSES`]): credentials of the node live
    /// there, never a registry.
    CloudMetadata,
    /// Link-local addresses (169.254.0.0/16, fe80::/10): the node's own link, metadata
    /// services included.
    LinkLocal,
    /// Loopback (127.0.0.0/8, ::1) when the policy does not allow it.
    Loopback,
    /// The unspecified address (0.0.0.0, ::), which connects to the local host.
    Unspecified,
    /// Multicast and the IPv4 broadcast address: not a host.
    Multicast,
}

impl AddressRule {
    /// The rule's name as messages, flags and docs write it (`link-local`).
    pub fn as_str(self) -> &'static str {
        match self {
            AddressRule::CloudMetadata => "cloud-metadata",
            AddressRule::LinkLocal => "link-local",
            AddressRule::Loopback => "loopback",
            AddressRule::Unspecified => "unspecified-address",
            AddressRule::Multicast => "multicast",
        }
    }

    /// Why the rule exists, for messages.
    pub fn why(self) -> &'static str {
        match self {
            AddressRule::CloudMetadata => "cloud metadata endpoints hand out the node's credentials",
            AddressRule::LinkLocal => "link-local addresses reach the node's own link and its metadata services",
            AddressRule::Loopback => "loopback is the operator's own host (allowed only with --allow-loopback-registries)",
            AddressRule::Unspecified => "the unspecified address connects to the local host",
            AddressRule::Multicast => "multicast and broadcast addresses are not a registry",
        }
    }
}

impl fmt::Display for AddressRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Cloud metadata endpoints, refused whatever else the policy says: AWS, GCP, Azure,
/// OpenStack, DigitalOcean and Oracle (169.254.169.254), AWS ECS task metadata
/// (169.254.170.2), AWS's IPv6 endpoint (fd00:ec2::254), Alibaba Cloud (100.100.100.200) and
/// Azure's WireServer (168.63.129.16).
pub const METADATA_ADDRESSES: [IpAddr; 5] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V4(Ipv4Addr::new(169, 254, 170, 2)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    IpAddr::V4(Ipv4Addr::new(168, 63, 129, 16)),
];

/// An address the policy refused: the host as the URL named it, the address and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{host}: address {address} is not allowed by the {rule} rule ({})", rule.why())]
pub struct AddressRefused {
    /// The host as written in the URL (a name or an IP literal).
    pub host: String,
    /// The address refused.
    pub address: IpAddr,
    /// The rule that refused it.
    pub rule: AddressRule,
}

/// Which addresses a client may connect to. Pure: [`check`](Self::check) decides on one
/// address, [`check_host`](Self::check_host) on a URL's host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Whether loopback addresses (127.0.0.0/8, ::1) may be connected to. True for the
    /// binary run by hand (tests, the demo, a laptop); an operator in a cluster runs with
    /// `--allow-loopback-registries=false`.
    pub allow_loopback: bool,
}

impl Default for AddressPolicy {
    /// Loopback allowed, everything else as the fixed rules say.
    fn default() -> Self {
        AddressPolicy {
            allow_loopback: true,
        }
    }
}

/// What [`AddressPolicy::check_host`] found for a host that is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostCheck {
    /// An IP literal the policy allows.
    Address(IpAddr),
    /// A name: its addresses are judged when it is resolved, at connect time.
    Name,
}

impl AddressPolicy {
    /// The rule refusing `ip`, or `None` when it may be connected to.
    pub fn check(&self, ip: IpAddr) -> Option<AddressRule> {
        let ip = embedded_ipv4(ip).map_or(ip, IpAddr::V4);
        if METADATA_ADDRESSES.contains(&ip) {
            return Some(AddressRule::CloudMetadata);
        }
        match ip {
            IpAddr::V4(v4) => {
                if v4.is_link_local() {
                    Some(AddressRule::LinkLocal)
                } else if v4.is_unspecified() {
                    Some(AddressRule::Unspecified)
                } else if v4.is_loopback() {
                    (!self.allow_loopback).then_some(AddressRule::Loopback)
                } else if v4.is_multicast() || v4.is_broadcast() {
                    Some(AddressRule::Multicast)
                } else {
                    None
                }
            }
            IpAddr::V6(v6) => {
                if v6.is_unicast_link_local() {
                    Some(AddressRule::LinkLocal)
                } else if v6.is_unspecified() {
                    Some(AddressRule::Unspecified)
                } else if v6.is_loopback() {
                    (!self.allow_loopback).then_some(AddressRule::Loopback)
                } else if v6.is_multicast() {
                    Some(AddressRule::Multicast)
                } else {
                    None
                }
            }
        }
    }

    /// Judges a host as a URL names it: an IP literal (IPv6 with or without brackets) is
    /// judged now; `localhost` and `*.localhost` are loopback by definition (RFC 6761); any
    /// other name is judged on its addresses when it is resolved.
    pub fn check_host(&self, host: &str) -> Result<HostCheck, AddressRefused> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let refused = |address: IpAddr, rule| AddressRefused {
            host: host.to_string(),
            address,
            rule,
        };
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return match self.check(ip) {
                Some(rule) => Err(refused(ip, rule)),
                None => Ok(HostCheck::Address(ip)),
            };
        }
        let name = bare.trim_end_matches('.').to_ascii_lowercase();
        if name == "localhost" || name.ends_with(".localhost") {
            let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
            if let Some(rule) = self.check(ip) {
                return Err(refused(ip, rule));
            }
        }
        Ok(HostCheck::Name)
    }

    /// Judges a URL's host (see [`check_host`](Self::check_host)); a URL without a host
    /// names nothing to connect to and passes (the request fails on its own).
    pub fn check_url(&self, url: &Url) -> Result<HostCheck, AddressRefused> {
        let refused = |address: IpAddr, rule| AddressRefused {
            host: url.host_str().unwrap_or_default().to_string(),
            address,
            rule,
        };
        match url.host() {
            Some(Host::Ipv4(v4)) => match self.check(IpAddr::V4(v4)) {
                Some(rule) => Err(refused(IpAddr::V4(v4), rule)),
                None => Ok(HostCheck::Address(IpAddr::V4(v4))),
            },
            Some(Host::Ipv6(v6)) => match self.check(IpAddr::V6(v6)) {
                Some(rule) => Err(refused(IpAddr::V6(v6), rule)),
                None => Ok(HostCheck::Address(IpAddr::V6(v6))),
            },
            Some(Host::Domain(d)) => self.check_host(d),
            None => Ok(HostCheck::Name),
        }
    }
}

/// The IPv4 address an IPv6 address carries: IPv4-mapped (`::ffff:a.b.c.d`) or NAT64's
/// well-known prefix (`64:ff9b::a.b.c.d`, RFC 6052), which a NAT64 gateway connects to.
fn embedded_ipv4(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else {
        return None;
    };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        return Some(Ipv4Addr::new(a, b, c, d));
    }
    None
}

/// The future a [`Resolver`] answers with.
pub type Resolving = Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>;

/// Turns a host name into addresses: the seam under the address policy. The client uses the
/// system's resolver unless [`ClientOptions::resolver`](super::ClientOptions::resolver)
/// names another (a test maps names to addresses of its choosing).
pub trait Resolver: Send + Sync {
    /// The addresses of `name` (no port).
    fn resolve(&self, name: &str) -> Resolving;

    /// Told the addresses the connector is about to be handed for `name`, after the policy
    /// judged them; an error stops the connection. The system resolver does nothing here; a
    /// test records every connection attempt (and refuses any that leaves the host).
    fn connecting(&self, name: &str, addresses: &[IpAddr]) -> std::io::Result<()> {
        let _ = (name, addresses);
        Ok(())
    }
}

/// The operating system's resolver (`getaddrinfo`, on tokio's blocking pool).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve(&self, name: &str) -> Resolving {
        let name = name.to_string();
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((name.as_str(), 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// The resolver the HTTP client is built with: resolves through `inner` and hands the
/// connector only the addresses `policy` allows. When every address is refused the lookup
/// fails with [`AddressRefused`], so nothing refused is ever connected to.
#[derive(Clone)]
pub struct PolicyResolver {
    policy: AddressPolicy,
    inner: Arc<dyn Resolver>,
}

impl fmt::Debug for PolicyResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyResolver")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl PolicyResolver {
    /// `inner` judged by `policy`.
    pub fn new(policy: AddressPolicy, inner: Arc<dyn Resolver>) -> Self {
        PolicyResolver { policy, inner }
    }

    /// The addresses of `name` the policy allows (at least one), or the refusal of the first
    /// address when none is allowed.
    pub async fn allowed(&self, name: &str) -> Result<Vec<IpAddr>, ResolveError> {
        let addresses = self
            .inner
            .resolve(name)
            .await
            .map_err(ResolveError::Lookup)?;
        let mut refused = None;
        let mut allowed = Vec::new();
        for ip in addresses {
            match self.policy.check(ip) {
                None => allowed.push(ip),
                Some(rule) => {
                    tracing::debug!(host = name, address = %ip, rule = rule.as_str(), "address refused by the address policy");
                    refused.get_or_insert(AddressRefused {
                        host: name.to_string(),
                        address: ip,
                        rule,
                    });
                }
            }
        }
        if allowed.is_empty() {
            return Err(match refused {
                Some(r) => ResolveError::Refused(r),
                None => ResolveError::Lookup(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{name} has no address"),
                )),
            });
        }
        self.inner
            .connecting(name, &allowed)
            .map_err(ResolveError::Lookup)?;
        Ok(allowed)
    }
}

/// Why [`PolicyResolver::allowed`] gave no address.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Every address of the name is refused by the policy.
    #[error(transparent)]
    Refused(AddressRefused),
    /// The name could not be resolved.
    #[error("resolving: {0}")]
    Lookup(std::io::Error),
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
        Box::pin(async move {
            let addresses = this.allowed(name.as_str()).await.map_err(|e| match e {
                ResolveError::Refused(r) => Box::new(r) as Box<dyn std::error::Error + Send + Sync>,
                ResolveError::Lookup(e) => Box::new(e),
            })?;
            let addrs: reqwest::dns::Addrs =
                Box::new(addresses.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// The [`AddressRefused`] somewhere in an error's chain of sources (reqwest wraps what the
/// resolver and the redirect policy failed with).
pub fn find_refusal<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a AddressRefused> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<AddressRefused>() {
            return Some(r);
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const STRICT: AddressPolicy = AddressPolicy {
        allow_loopback: false,
    };
    const LAPTOP: AddressPolicy = AddressPolicy {
        allow_loopback: true,
    };

    #[test]
    fn metadata_endpoints_are_refused_by_name_of_their_rule_whatever_the_policy() {
        for p in [STRICT, LAPTOP] {
            for a in [
                "169.254.169.254",
                "169.254.170.2",
                "fd00:ec2::254",
                "100.100.100.200",
                "168.63.129.16",
                "::ffff:169.254.169.254",
                "64:ff9b::a9fe:a9fe",
            ] {
                assert_eq!(p.check(ip(a)), Some(AddressRule::CloudMetadata), "{a}");
            }
        }
    }

    #[test]
    fn link_local_unspecified_and_multicast_are_always_refused() {
        for p in [STRICT, LAPTOP] {
            assert_eq!(p.check(ip("169.254.1.1")), Some(AddressRule::LinkLocal));
            assert_eq!(p.check(ip("fe80::1")), Some(AddressRule::LinkLocal));
            assert_eq!(p.check(ip("febf::1")), Some(AddressRule::LinkLocal));
            assert_eq!(
                p.check(ip("::ffff:169.254.9.9")),
                Some(AddressRule::LinkLocal)
            );
            assert_eq!(p.check(ip("0.0.0.0")), Some(AddressRule::Unspecified));
            assert_eq!(p.check(ip("::")), Some(AddressRule::Unspecified));
            assert_eq!(
                p.check(ip("::ffff:0.0.0.0")),
                Some(AddressRule::Unspecified)
            );
            assert_eq!(p.check(ip("224.0.0.1")), Some(AddressRule::Multicast));
            assert_eq!(p.check(ip("255.255.255.255")), Some(AddressRule::Multicast));
            assert_eq!(p.check(ip("ff02::1")), Some(AddressRule::Multicast));
        }
    }

    #[test]
    fn loopback_is_refused_unless_the_policy_allows_it() {
        for a in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(STRICT.check(ip(a)), Some(AddressRule::Loopback), "{a}");
            assert_eq!(LAPTOP.check(ip(a)), None, "{a}");
        }
    }

    #[test]
    fn private_ranges_and_public_addresses_are_allowed() {
        for a in [
            "10.0.0.5",
            "172.16.3.4",
            "192.168.1.10",
            "100.64.0.1",
            "fd12:3456::1",
            "203.0.113.7",
            "2001:db8::1",
            "::ffff:10.1.2.3",
        ] {
            assert_eq!(STRICT.check(ip(a)), None, "{a}");
        }
    }

    #[test]
    fn hosts_are_judged_as_literals_now_and_as_names_at_connect_time() {
        assert_eq!(
            STRICT.check_host("[fe80::1]").unwrap_err().rule,
            AddressRule::LinkLocal
        );
        assert_eq!(
            STRICT.check_host("localhost").unwrap_err().rule,
            AddressRule::Loopback
        );
        assert_eq!(
            STRICT.check_host("registry.LOCALHOST.").unwrap_err().rule,
            AddressRule::Loopback
        );
        assert_eq!(LAPTOP.check_host("localhost"), Ok(HostCheck::Name));
        assert_eq!(STRICT.check_host("harbor.example.com"), Ok(HostCheck::Name));
        assert_eq!(
            STRICT.check_host("10.1.2.3"),
            Ok(HostCheck::Address(ip("10.1.2.3")))
        );
    }

    #[test]
    fn a_url_spelling_an_address_in_decimal_is_judged_as_that_address() {
        let url = Url::parse("http://2852039166/v2/").unwrap();
        let refused = STRICT.check_url(&url).unwrap_err();
        assert_eq!(refused.address, ip("169.254.169.254"));
        assert_eq!(refused.rule, AddressRule::CloudMetadata);
        assert!(refused
            .to_string()
            .contains("not allowed by the cloud-metadata rule"));
    }

    struct Fixed(Vec<IpAddr>);
    impl Resolver for Fixed {
        fn resolve(&self, _: &str) -> Resolving {
            let v = self.0.clone();
            Box::pin(async move { Ok(v) })
        }
    }

    #[tokio::test]
    async fn refused_addresses_of_a_name_are_dropped_and_a_name_with_only_refused_ones_fails() {
        let mixed = PolicyResolver::new(
            STRICT,
            Arc::new(Fixed(vec![ip("169.254.169.254"), ip("10.0.0.7")])),
        );
        assert_eq!(
            mixed.allowed("reg.test").await.unwrap(),
            vec![ip("10.0.0.7")]
        );
        let bad = PolicyResolver::new(STRICT, Arc::new(Fixed(vec![ip("169.254.169.254")])));
        match bad.allowed("metadata.test").await {
            Err(ResolveError::Refused(r)) => {
                assert_eq!(r.host, "metadata.test");
                assert_eq!(r.rule, AddressRule::CloudMetadata);
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
