//! Which address a request comes from, when reverse proxies stand between the client and Gatehouse.
//!
//! The TCP peer is the client unless it is a trusted proxy (`server.public.trusted_proxies`). Then the proxies'
//! `Forwarded` (RFC 7239) or `X-Forwarded-For` chain is walked from the right, the end the nearest proxy wrote:
//! addresses inside trusted networks are hops, and the first address outside them is the client. Everything left
//! of it was written by the client, or by proxies nobody vouches for, so it is never read.

use std::{net::IpAddr, str::FromStr};

use ipnet::IpNet;

/// One trusted network, such as `10.0.0.0/8` or `fd00::/8`; a bare address means that address alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrustedNetwork(IpNet);

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    #[error("{0:?} is not a network like 10.0.0.0/8 or fd00::/8, nor an address")]
    Malformed(String),
    #[error("{given:?} has bits set past its prefix length; write {network} (a typo here trusts the wrong hosts)")]
    HostBitsSet { given: String, network: IpNet },
}

impl FromStr for TrustedNetwork {
    type Err = NetworkError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if let Ok(address) = text.parse::<IpAddr>() {
            return Ok(Self(IpNet::from(address.to_canonical())));
        }
        let network = text.parse::<IpNet>().map_err(|_| NetworkError::Malformed(text.to_owned()))?;
        if network.trunc() != network {
            return Err(NetworkError::HostBitsSet { given: text.to_owned(), network: network.trunc() });
        }
        Ok(Self(network))
    }
}

/// The proxies whose forwarding headers are believed. Empty (the default): none, the peer is always the client.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<TrustedNetwork>);

/// The forwarding headers of one request, each header's lines joined with `,` in the order received.
#[derive(Clone, Copy, Debug, Default)]
pub struct ForwardingHeaders<'a> {
    pub forwarded: Option<&'a str>,
    pub x_forwarded_for: Option<&'a str>,
}

impl TrustedProxies {
    /// Parses `server.public.trusted_proxies`.
    pub fn parse<S: AsRef<str>>(networks: &[S]) -> Result<Self, NetworkError> {
        networks.iter().map(|network| network.as_ref().parse()).collect::<Result<_, _>>().map(Self)
    }

    pub fn trusts(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|network| network.0.contains(&address))
    }

    /// The client behind `peer`.
    ///
    /// When a trusted peer sent both headers and they name different clients, neither is believed and the peer
    /// is the client: a proxy that writes one header usually passes the other through untouched, so one of them
    /// may be the client's own invention, and nothing tells which.
    pub fn client_address(&self, peer: IpAddr, headers: ForwardingHeaders<'_>) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let from_forwarded = headers.forwarded.map(|value| self.walk(peer, value.split(',').map(forwarded_for)));
        let from_x_forwarded_for =
            headers.x_forwarded_for.map(|value| self.walk(peer, value.split(',').map(parse_node)));
        match (from_forwarded, from_x_forwarded_for) {
            (Some(a), Some(b)) if a != b => peer,
            (Some(client), _) | (None, Some(client)) => client,
            (None, None) => peer,
        }
    }

    /// Walks `hops` (left to right as written) from the right, starting at the trusted `peer`. A hop that is not
    /// an address (`unknown`, an obfuscated name, garbage) ends the walk at the trusted hop that reported it.
    fn walk(&self, peer: IpAddr, hops: impl DoubleEndedIterator<Item = Option<IpAddr>>) -> IpAddr {
        let mut client = peer;
        for hop in hops.rev() {
            let Some(address) = hop else { break };
            client = address;
            if !self.trusts(address) {
                break;
            }
        }
        client
    }
}

/// The `for=` node of one `Forwarded` element (`for=192.0.2.60;proto=https`). Elements are split on every comma,
/// quoted or not: a quote the client opens must never swallow the elements the proxies appended after it.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim().eq_ignore_ascii_case("for").then(|| parse_node(value.trim().trim_matches('"')))?
    })
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]:4711`.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    let address = node.parse::<IpAddr>().ok().or_else(|| {
        let host = match node.strip_prefix('[') {
            Some(bracketed) => bracketed.split_once(']')?.0,
            None => node.split_once(':')?.0,
        };
        host.parse().ok()
    })?;
    Some(address.to_canonical())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn proxies(networks: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(networks).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn xff(value: &str) -> ForwardingHeaders<'_> {
        ForwardingHeaders { forwarded: None, x_forwarded_for: Some(value) }
    }

    fn forwarded(value: &str) -> ForwardingHeaders<'_> {
        ForwardingHeaders { forwarded: Some(value), x_forwarded_for: None }
    }

    #[test]
    fn networks_parse_and_refuse_typos() {
        assert_eq!(proxies(&["10.0.0.0/8", "fd00::/8", "192.0.2.7"]).0.len(), 3);
        assert!(matches!("10.0.0.1/8".parse::<TrustedNetwork>(), Err(NetworkError::HostBitsSet { .. })));
        assert_eq!(
            "10.0.0.1/8".parse::<TrustedNetwork>().unwrap_err().to_string(),
            "\"10.0.0.1/8\" has bits set past its prefix length; write 10.0.0.0/8 (a typo here trusts the wrong hosts)"
        );
        for bad in ["", "10.0.0.0/33", "fd00::/129", "localhost", "10.0.0/8", "10.0.0.0/"] {
            assert!(matches!(bad.parse::<TrustedNetwork>(), Err(NetworkError::Malformed(_))), "{bad:?}");
        }
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_sends() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let peer = ip("203.0.113.9");
        assert_eq!(trusted.client_address(peer, xff("198.51.100.1")), peer);
        assert_eq!(trusted.client_address(peer, forwarded("for=198.51.100.1")), peer);
        assert_eq!(TrustedProxies::default().client_address(ip("10.0.0.1"), xff("198.51.100.1")), ip("10.0.0.1"));
    }

    #[test]
    fn the_chain_is_walked_from_the_right_through_trusted_hops() {
        let trusted = proxies(&["10.0.0.0/8", "fd00::/8"]);
        let peer = ip("10.0.0.1");
        assert_eq!(trusted.client_address(peer, xff("198.51.100.1")), ip("198.51.100.1"));
        assert_eq!(
            trusted.client_address(peer, xff("6.6.6.6, 198.51.100.1, 10.0.0.2")),
            ip("198.51.100.1"),
            "the spoofed left part is never read"
        );
        assert_eq!(trusted.client_address(peer, xff("10.0.0.3, 10.0.0.2")), ip("10.0.0.3"), "all trusted: leftmost");
        assert_eq!(trusted.client_address(peer, xff("2001:db8::1")), ip("2001:db8::1"));
        assert_eq!(trusted.client_address(peer, xff("[2001:db8::1]:4711, 198.51.100.1:80")), ip("198.51.100.1"));
        assert_eq!(trusted.client_address(peer, ForwardingHeaders::default()), peer, "no header: the peer");
    }

    #[test]
    fn forwarded_elements_are_read_as_rfc_7239_writes_them() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.1");
        let header = r#"for=6.6.6.6, For="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.2;by=10.0.0.1"#;
        assert_eq!(trusted.client_address(peer, forwarded(header)), ip("2001:db8:cafe::17"));
        assert_eq!(trusted.client_address(peer, forwarded("proto=https;for=192.0.2.60")), ip("192.0.2.60"));
        assert_eq!(
            trusted.client_address(peer, forwarded(r#"for="6.6.6.6, for=192.0.2.60"#)),
            ip("192.0.2.60"),
            "an open quote does not swallow what follows"
        );
    }

    #[test]
    fn a_hop_that_is_no_address_ends_the_walk_at_the_proxy_that_reported_it() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.1");
        assert_eq!(trusted.client_address(peer, forwarded("for=unknown")), peer);
        assert_eq!(trusted.client_address(peer, forwarded("for=_hidden, for=10.0.0.2")), ip("10.0.0.2"));
        assert_eq!(trusted.client_address(peer, xff("198.51.100.1, garbage")), peer);
        assert_eq!(trusted.client_address(peer, xff("")), peer);
    }

    #[test]
    fn headers_that_disagree_are_both_ignored() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.1");
        let agree = ForwardingHeaders { forwarded: Some("for=198.51.100.1"), x_forwarded_for: Some("198.51.100.1") };
        assert_eq!(trusted.client_address(peer, agree), ip("198.51.100.1"));
        let disagree = ForwardingHeaders { forwarded: Some("for=6.6.6.6"), x_forwarded_for: Some("198.51.100.1") };
        assert_eq!(trusted.client_address(peer, disagree), peer);
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert!(trusted.trusts(ip("::ffff:10.1.2.3")));
        assert_eq!(trusted.client_address(ip("::ffff:10.1.2.3"), xff("::ffff:198.51.100.1")), ip("198.51.100.1"));
    }

    fn address() -> impl Strategy<Value = IpAddr> {
        prop_oneof![any::<[u8; 4]>().prop_map(IpAddr::from), any::<[u8; 16]>().prop_map(IpAddr::from)]
    }

    /// A header value a client could send: addresses, near-addresses and plain garbage.
    fn header_text() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::collection::vec(address().prop_map(|a| a.to_string()), 0..5).prop_map(|a| a.join(", ")),
            r#"[ -~]{0,80}"#,
            r#"(for=|For="|\[|\]|:|;|,|"|[0-9a-f.]{1,6}){0,20}"#,
        ]
    }

    proptest! {
        #[test]
        fn an_untrusted_peer_never_chooses_the_client(
            peer in address(),
            forwarded in proptest::option::of(header_text()),
            x_forwarded_for in proptest::option::of(header_text()),
        ) {
            let trusted = proxies(&["10.0.0.0/8", "fd00::/8"]);
            prop_assume!(!trusted.trusts(peer));
            let headers = ForwardingHeaders { forwarded: forwarded.as_deref(), x_forwarded_for: x_forwarded_for.as_deref() };
            prop_assert_eq!(trusted.client_address(peer, headers), peer.to_canonical());
        }

        /// Whatever the client writes to either header, the trusted proxies' chain decides: the client gets the
        /// address the outermost proxy saw, or (when it forged the other header) the peer, never its choice.
        #[test]
        fn what_the_client_writes_never_overrides_the_proxies(
            client in address(),
            spoofed in header_text(),
            other in proptest::option::of(header_text()),
            hops in proptest::collection::vec(1u8..255, 0..3),
            use_forwarded in any::<bool>(),
        ) {
            let trusted = proxies(&["10.0.0.0/8"]);
            prop_assume!(!trusted.trusts(client));
            let peer = ip("10.0.0.1");
            let mut chain = format!("{spoofed}, {client}");
            for hop in &hops {
                chain.push_str(&format!(", 10.0.0.{hop}"));
            }
            let forwarded_chain = chain.split(',').map(|node| format!("for=\"{}\"", node.trim())).collect::<Vec<_>>();
            let forwarded_chain = forwarded_chain.join(", ");
            let headers = if use_forwarded {
                ForwardingHeaders { forwarded: Some(&forwarded_chain), x_forwarded_for: other.as_deref() }
            } else {
                ForwardingHeaders { forwarded: other.as_deref(), x_forwarded_for: Some(&chain) }
            };
            let chosen = trusted.client_address(peer, headers);
            prop_assert!(chosen == client.to_canonical() || chosen == peer, "{chosen} from {headers:?}");
            if other.is_none() {
                prop_assert_eq!(chosen, client.to_canonical());
            }
        }

        #[test]
        fn garbage_never_panics(
            peer in address(),
            forwarded in proptest::option::of(".{0,200}"),
            x_forwarded_for in proptest::option::of(".{0,200}"),
            networks in proptest::collection::vec(".{0,40}", 0..4),
        ) {
            let trusted = TrustedProxies::parse(&networks).unwrap_or_else(|_| proxies(&["0.0.0.0/0", "::/0"]));
            let headers = ForwardingHeaders { forwarded: forwarded.as_deref(), x_forwarded_for: x_forwarded_for.as_deref() };
            let _ = trusted.client_address(peer, headers);
        }
    }
}
