//! Where a webhook may be sent: the URL rules checked when an endpoint is saved, and the
//! address rules checked again on every delivery, on the addresses the host name resolves to
//! then (a name that pointed at a public address when saved may point inside later).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::{Host, Url};

/// Longest URL accepted for an endpoint.
pub const MAX_URL_LEN: usize = 2048;

/// A receiver URL that passed the save-time checks.
#[derive(Clone, Debug)]
pub struct TargetUrl {
    pub url: Url,
}

impl TargetUrl {
    /// `http://` or `https://`, with a host, no credentials and no fragment. With
    /// `allow_private` off, an address literal or `localhost` that is not public is refused
    /// here already.
    pub fn parse(text: &str, allow_private: bool) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("url is required".into());
        }
        if text.len() > MAX_URL_LEN {
            return Err(format!("url must be at most {MAX_URL_LEN} characters"));
        }
        let url = Url::parse(text).map_err(|error| format!("url is not a valid URL: {error}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("url must start with http:// or https://".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("url must not contain a user name or password".into());
        }
        if url.fragment().is_some() {
            return Err("url must not contain a fragment (#…)".into());
        }
        let host = url.host().ok_or("url must name a host")?;
        if !allow_private {
            let literal = match host {
                Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
                Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
                Host::Domain(name) => {
                    let name = name.trim_end_matches('.').to_ascii_lowercase();
                    if name == "localhost" || name.ends_with(".localhost") {
                        Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
                    } else {
                        None
                    }
                }
            };
            if literal.is_some_and(|ip| !is_public(ip)) {
                return Err(
                    "url points to a private, loopback or link-local address, which this server \
                     does not deliver to"
                        .into(),
                );
            }
        }
        Ok(Self { url })
    }

    /// The host to resolve (brackets of an IPv6 literal removed) and the port.
    pub fn host_and_port(&self) -> Option<(String, u16)> {
        let host = match self.url.host()? {
            Host::Domain(name) => name.to_owned(),
            Host::Ipv4(ip) => ip.to_string(),
            Host::Ipv6(ip) => ip.to_string(),
        };
        Some((host, self.url.port_or_known_default()?))
    }
}

/// The addresses of `addresses` a delivery may connect to.
pub fn allowed(
    addresses: impl IntoIterator<Item = SocketAddr>,
    allow_private: bool,
) -> Vec<SocketAddr> {
    addresses
        .into_iter()
        .filter(|address| allow_private || is_public(address.ip()))
        .collect()
}

/// Whether `ip` is a globally routable unicast address: not loopback, private, link-local,
/// carrier-grade NAT, unspecified, broadcast, multicast, documentation or reserved, nor an
/// IPv6 form of one of those (IPv4-mapped, NAT64).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => is_public_v6(ip),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || a >= 240
        // 100.64.0.0/10, carrier-grade NAT
        || (a == 100 && (64..128).contains(&b))
        // 192.0.0.0/24, IETF protocol assignments
        || (a == 192 && b == 0 && c == 0)
        // 198.18.0.0/15, benchmarking
        || (a == 198 && (b == 18 || b == 19)))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let segments = ip.segments();
    // 64:ff9b::/96 (NAT64) carries an IPv4 address in its last 32 bits.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., hi, lo] = segments;
        return is_public_v4(Ipv4Addr::from(((hi as u32) << 16) | lo as u32));
    }
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // fc00::/7 unique local, fe80::/10 link-local, 2001:db8::/32 documentation
        || (segments[0] & 0xfe00) == 0xfc00
        || (segments[0] & 0xffc0) == 0xfe80
        || (segments[0] == 0x2001 && segments[1] == 0x0db8)
        // ::/96, the deprecated IPv4-compatible form
        || segments[..6] == [0, 0, 0, 0, 0, 0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_are_checked_when_saved() {
        assert!(TargetUrl::parse("https://hooks.example.com/in", false).is_ok());
        for bad in [
            "",
            "not a url",
            "ftp://example.com/",
            "https://user:pw@example.com/",
            "https://example.com/#x",
            "http://127.0.0.1:9000/",
            "http://localhost/",
            "http://[::1]/",
            "http://169.254.169.254/latest/meta-data",
        ] {
            assert!(TargetUrl::parse(bad, false).is_err(), "{bad}");
        }
        assert!(TargetUrl::parse("http://127.0.0.1:9000/", true).is_ok());
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(TargetUrl::parse(&long, false).is_err());
    }
}
