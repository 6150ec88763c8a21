//! Which endpoint URLs we send to: the SSRF guard.
//!
//! A merchant chooses the URL, and our servers make the request from inside our network, so
//! without a guard an endpoint could point at the instance metadata service, the database or
//! another internal service. Production policy ([`UrlPolicy::PublicHttps`]):
//! - `https` only, no user info in the URL, a host, at most 2048 bytes;
//! - every address the host resolves to must be public unicast ([`is_public_ip`]). Checked at
//!   creation (a clear 422) *and* at every connection (the delivery client's resolver), so a
//!   DNS answer changed after creation (rebinding) is refused too. IP-literal hosts, including
//!   the decimal/octal/hex forms the WHATWG parser normalizes (`https://2130706433/` is
//!   127.0.0.1), are checked as the address they denote.
//!
//! [`UrlPolicy::AllowPrivate`] (local development and tests only) also accepts `http` and
//! private, loopback and link-local addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use url::{Host, Url};

/// Longest accepted URL (bytes).
pub const MAX_URL_LEN: usize = 2048;
/// Longest wait for DNS when checking a URL.
pub const DNS_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UrlPolicy {
    /// Production: https to public addresses only.
    #[default]
    PublicHttps,
    /// Development and tests: http and private/loopback addresses allowed too.
    AllowPrivate,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("the URL is not valid: {0}")]
    Parse(String),
    #[error("the URL is longer than {MAX_URL_LEN} bytes")]
    TooLong,
    #[error("the URL must use https")]
    NotHttps,
    #[error("the URL must use https (or http in development)")]
    Scheme,
    #[error("the URL must not contain a user name or password")]
    Credentials,
    #[error("the URL must have a host")]
    NoHost,
    #[error("the URL points to a private, loopback, link-local or reserved address ({0})")]
    ForbiddenAddress(IpAddr),
    /// `addr` is for the operator's logs only: the message a merchant sees never names the
    /// address (it would map the internal network for whoever registers URLs).
    #[error(
        "the URL's host {host} resolves to a private, loopback, link-local or reserved address"
    )]
    ResolvesToForbidden { host: String, addr: IpAddr },
    #[error("the URL's host {0} does not resolve")]
    Unresolvable(String),
}

impl UrlPolicy {
    /// The policy named by configuration text: `public` (default) or `allow-private`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "public" | "public-https" | "production" => Some(UrlPolicy::PublicHttps),
            "allow-private" | "dev" => Some(UrlPolicy::AllowPrivate),
            _ => None,
        }
    }

    pub fn allows_private(self) -> bool {
        self == UrlPolicy::AllowPrivate
    }

    /// Whether a connection to `ip` is allowed.
    pub fn allows_ip(self, ip: IpAddr) -> bool {
        self.allows_private() || is_public_ip(ip)
    }

    /// Everything that can be checked without DNS: syntax, scheme, user info, IP literals.
    pub fn check_syntax(self, raw: &str) -> Result<Url, UrlError> {
        if raw.len() > MAX_URL_LEN {
            return Err(UrlError::TooLong);
        }
        let url = Url::parse(raw).map_err(|e| UrlError::Parse(e.to_string()))?;
        match (url.scheme(), self) {
            ("https", _) | ("http", UrlPolicy::AllowPrivate) => {}
            ("http", UrlPolicy::PublicHttps) => return Err(UrlError::NotHttps),
            _ => return Err(UrlError::Scheme),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::Credentials);
        }
        if let Some(ip) = literal_ip(&url)?
            && !self.allows_ip(ip)
        {
            return Err(UrlError::ForbiddenAddress(ip));
        }
        Ok(url)
    }

    /// [`UrlPolicy::check_syntax`], then (production policy) every resolved address.
    pub async fn check(self, raw: &str) -> Result<Url, UrlError> {
        let url = self.check_syntax(raw)?;
        if self.allows_private() || literal_ip(&url)?.is_some() {
            return Ok(url);
        }
        let host = url.host_str().ok_or(UrlError::NoHost)?.to_owned();
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs = resolve(&host, port).await?;
        self.check_addrs(&host, addrs.iter().map(SocketAddr::ip))?;
        Ok(url)
    }

    /// Every address must be allowed (a mix of public and private answers is refused: it
    /// is how rebinding attacks look).
    pub fn check_addrs(
        self,
        host: &str,
        addrs: impl IntoIterator<Item = IpAddr>,
    ) -> Result<(), UrlError> {
        let mut any = false;
        for addr in addrs {
            any = true;
            if !self.allows_ip(addr) {
                return Err(UrlError::ResolvesToForbidden {
                    host: host.to_owned(),
                    addr,
                });
            }
        }
        if any {
            Ok(())
        } else {
            Err(UrlError::Unresolvable(host.to_owned()))
        }
    }
}

/// The address an IP-literal host denotes (`None` for a domain name).
pub fn literal_ip(url: &Url) -> Result<Option<IpAddr>, UrlError> {
    match url.host() {
        None => Err(UrlError::NoHost),
        Some(Host::Ipv4(ip)) => Ok(Some(IpAddr::V4(ip))),
        Some(Host::Ipv6(ip)) => Ok(Some(IpAddr::V6(ip))),
        Some(Host::Domain(_)) => Ok(None),
    }
}

/// DNS lookup bounded by [`DNS_TIMEOUT`].
pub async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, UrlError> {
    let lookup = tokio::net::lookup_host((host, port));
    match tokio::time::timeout(DNS_TIMEOUT, lookup).await {
        Ok(Ok(addrs)) => Ok(addrs.collect()),
        Ok(Err(_)) | Err(_) => Err(UrlError::Unresolvable(host.to_owned())),
    }
}

/// Public unicast: not private, loopback, link-local, CGNAT, multicast, documentation,
/// benchmarking, reserved, unspecified, nor the Azure platform address; IPv6 forms that embed
/// an IPv4 address (mapped, translated, NAT64) are judged by that address.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

/// Azure's WireServer (platform DNS, health, VM agent): public-looking, reachable from every
/// Azure VM, and an SSRF target of its own.
const AZURE_WIRESERVER: Ipv4Addr = Ipv4Addr::new(168, 63, 129, 16);

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let forbidden = ip.is_unspecified()
        || ip.is_loopback()           // 127/8
        || ip.is_private()            // 10/8, 172.16/12, 192.168/16
        || ip.is_link_local()         // 169.254/16, incl. 169.254.169.254 (metadata)
        || ip.is_multicast()          // 224/4
        || ip.is_broadcast()
        || ip.is_documentation()      // 192.0.2/24, 198.51.100/24, 203.0.113/24
        || a == 0                     // 0/8 "this network"
        || a >= 240                   // 240/4 reserved
        || (a == 100 && (b & 0xc0) == 64) // 100.64/10 carrier-grade NAT
        || (a == 192 && b == 0 && c == 0) // 192.0.0/24 IETF protocol assignments
        || (a == 198 && (b & 0xfe) == 18) // 198.18/15 benchmarking
        || ip == AZURE_WIRESERVER;
    !forbidden
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // ::ffff:a.b.c.d (mapped) is the IPv4 address, whatever socket it arrives on.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    // 64:ff9b::/96 (well-known NAT64 prefix) reaches the embedded IPv4 address.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(embedded_v4(ip));
    }
    // Only global unicast 2000::/3 is routable on the internet; this excludes ::, ::1, the
    // deprecated IPv4-compatible ::/96, ::ffff:0:0/96 translated, 100::/64 discard, fc00::/7
    // unique local, fe80::/10 link-local, fec0::/10 site-local and ff00::/8 multicast.
    if s[0] & 0xe000 != 0x2000 {
        return false;
    }
    let forbidden = (s[0] == 0x2001 && s[1] == 0x0db8)   // 2001:db8::/32 documentation
        || (s[0] == 0x3fff && s[1] & 0xf000 == 0)        // 3fff::/20 documentation
        || (s[0] == 0x2001 && s[1] == 0)                 // 2001::/32 Teredo (tunnels anywhere)
        || s[0] == 0x2002                                // 2002::/16 6to4 (tunnels anywhere)
        || (s[0] == 0x2001 && s[1] == 2 && s[2] == 0)    // 2001:2::/48 benchmarking
        || (s[0] == 0x2001 && (s[1] & 0xffe0) == 0x0020) // 2001:20::/28 ORCHIDv2
        || (s[0] == 0x2001 && (s[1] & 0xfff0) == 0x0010); // 2001:10::/28 ORCHID
    !forbidden
}

fn embedded_v4(ip: Ipv6Addr) -> Ipv4Addr {
    let o = ip.octets();
    Ipv4Addr::new(o[12], o[13], o[14], o[15])
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROD: UrlPolicy = UrlPolicy::PublicHttps;
    const DEV: UrlPolicy = UrlPolicy::AllowPrivate;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn address_table_only_public_unicast_is_allowed() {
        let forbidden = [
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "100.127.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "168.63.129.16",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fdff:ffff::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::ffff:0:7f00:1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
            "64:ff9b:1::1",
            "100::1",
            "2001:db8::1",
            "2001::1",
            "2002:7f00:1::1",
            "2001:2::1",
            "2001:10::1",
            "2001:20::1",
            "3fff::1",
            "fd00:ec2::254",
        ];
        for a in forbidden {
            assert!(!is_public_ip(ip(a)), "{a} must be refused");
            assert!(!PROD.allows_ip(ip(a)), "{a}");
            assert!(DEV.allows_ip(ip(a)), "dev allows {a}");
        }
        let public = [
            "1.1.1.1",
            "8.8.8.8",
            "172.15.255.255",
            "172.32.0.1",
            "192.169.0.1",
            "100.63.0.1",
            "100.128.0.1",
            "169.253.0.1",
            "11.0.0.1",
            "198.20.0.1",
            "223.255.255.254",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2001:4860::8888",
        ];
        for a in public {
            assert!(is_public_ip(ip(a)), "{a} must be allowed");
        }
    }

    #[test]
    fn production_requires_https_without_credentials() {
        assert_eq!(
            PROD.check_syntax("http://example.com/hook").unwrap_err(),
            UrlError::NotHttps
        );
        assert_eq!(
            PROD.check_syntax("ftp://example.com/").unwrap_err(),
            UrlError::Scheme
        );
        assert_eq!(
            DEV.check_syntax("gopher://example.com/").unwrap_err(),
            UrlError::Scheme
        );
        assert_eq!(
            PROD.check_syntax("https://user:pw@example.com/")
                .unwrap_err(),
            UrlError::Credentials
        );
        assert!(matches!(
            PROD.check_syntax("not a url").unwrap_err(),
            UrlError::Parse(_)
        ));
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(PROD.check_syntax(&long).unwrap_err(), UrlError::TooLong);
        assert!(
            PROD.check_syntax("https://example.com:8443/hooks?x=1")
                .is_ok()
        );
        assert!(DEV.check_syntax("http://127.0.0.1:9000/hook").is_ok());
    }

    #[test]
    fn literal_hosts_in_every_encoding_are_checked_as_the_address_they_denote() {
        let cases = [
            ("https://127.0.0.1/", "127.0.0.1"),
            ("https://2130706433/", "127.0.0.1"),   // decimal
            ("https://0x7f000001/", "127.0.0.1"),   // hex
            ("https://0177.0.0.1/", "127.0.0.1"),   // octal
            ("https://127.1/", "127.0.0.1"),        // short form
            ("https://017700000001/", "127.0.0.1"), // octal, one number
            (
                "https://169.254.169.254/latest/meta-data/",
                "169.254.169.254",
            ),
            ("https://2852039166/", "169.254.169.254"),
            ("https://10.0.0.1/hook", "10.0.0.1"),
            ("https://172.16.5.4/", "172.16.5.4"),
            ("https://192.168.0.10:8443/", "192.168.0.10"),
            ("https://[::1]/", "::1"),
            ("https://[fc00::1]/", "fc00::1"),
            ("https://[fe80::1]/", "fe80::1"),
            ("https://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1"),
            ("https://[::ffff:a9fe:a9fe]/", "::ffff:169.254.169.254"),
        ];
        for (url, addr) in cases {
            assert_eq!(
                PROD.check_syntax(url).unwrap_err(),
                UrlError::ForbiddenAddress(ip(addr)),
                "{url}"
            );
            assert!(DEV.check_syntax(url).is_ok(), "dev allows {url}");
        }
        assert!(PROD.check_syntax("https://8.8.8.8/").is_ok());
        assert!(PROD.check_syntax("https://134744072/").is_ok()); // 8.8.8.8
    }

    #[test]
    fn resolved_addresses_must_all_be_allowed() {
        assert_eq!(
            PROD.check_addrs("h", [ip("8.8.8.8"), ip("10.0.0.1")])
                .unwrap_err(),
            UrlError::ResolvesToForbidden {
                host: "h".into(),
                addr: ip("10.0.0.1")
            }
        );
        assert_eq!(
            PROD.check_addrs("h", []).unwrap_err(),
            UrlError::Unresolvable("h".into())
        );
        assert!(
            PROD.check_addrs("h", [ip("8.8.8.8"), ip("2606:4700::1")])
                .is_ok()
        );
        assert!(DEV.check_addrs("h", [ip("10.0.0.1")]).is_ok());
    }

    #[test]
    fn a_refusal_after_resolution_does_not_reveal_the_resolved_address() {
        let error = PROD
            .check_addrs("intranet.example", [ip("10.1.2.3")])
            .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("intranet.example"), "{message}");
        assert!(!message.contains("10.1.2.3"), "{message}");
    }

    #[tokio::test]
    async fn localhost_is_refused_after_resolution_in_production_only() {
        assert!(matches!(
            PROD.check("https://localhost:8443/hook").await.unwrap_err(),
            UrlError::ResolvesToForbidden { .. } | UrlError::Unresolvable(_)
        ));
        assert!(DEV.check("http://localhost:8443/hook").await.is_ok());
    }

    #[test]
    fn policy_names_parse() {
        assert_eq!(UrlPolicy::parse("public"), Some(PROD));
        assert_eq!(UrlPolicy::parse("allow-private"), Some(DEV));
        assert_eq!(UrlPolicy::parse("yes"), None);
        assert_eq!(UrlPolicy::default(), PROD);
    }
}
