//! The address of the client, for login throttling: the peer, or, when the
//! peer is a trusted proxy (`PASSNUM_TRUSTED_PROXIES`), the address that
//! proxy saw, read from `X-Forwarded-For` from the right past every trusted
//! hop. Entries further left are whatever the client wrote: never believed.

use std::net::{IpAddr, SocketAddr};

use actix_web::HttpRequest;
use ipnet::IpNet;

const FORWARDED_FOR: &str = "x-forwarded-for";

pub fn address(req: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let forwarded: Vec<&str> = req
        .headers()
        .get_all(FORWARDED_FOR)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    Some(client_of(peer, &forwarded, trusted))
}

fn client_of(peer: IpAddr, forwarded: &[&str], trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(&ip.to_canonical()));
    let mut client = peer.to_canonical();
    for hop in forwarded.iter().rev() {
        if !is_trusted(&client) {
            break;
        }
        match parse_hop(hop.trim()) {
            Some(ip) => client = ip.to_canonical(),
            // Not an address: the trusted proxy before it is all we know.
            None => break,
        }
    }
    client
}

/// `192.0.2.7`, `2001:db8::1`, or either with a port (`[2001:db8::1]:443`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// Parses `PASSNUM_TRUSTED_PROXIES`: addresses or networks, comma-separated
/// (`10.0.0.0/8, 192.0.2.1, ::1`).
pub fn parse_trusted(value: &str) -> Result<Vec<IpNet>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{s:?} is neither an address nor a network"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_addresses_count_only_behind_trusted_proxies() {
        let proxies = parse_trusted("10.0.0.0/8, 192.0.2.1").unwrap();
        // No trusted proxy: the peer, whatever the header says.
        assert_eq!(
            client_of(ip("198.51.100.9"), &["203.0.113.5"], &proxies),
            ip("198.51.100.9")
        );
        assert_eq!(client_of(ip("198.51.100.9"), &[], &[]), ip("198.51.100.9"));
        // Behind a trusted proxy: what it saw, not what the client forged on the left.
        assert_eq!(
            client_of(ip("192.0.2.1"), &["1.2.3.4", "203.0.113.5"], &proxies),
            ip("203.0.113.5")
        );
        // Two trusted hops.
        assert_eq!(
            client_of(ip("192.0.2.1"), &["203.0.113.5", "10.1.2.3"], &proxies),
            ip("203.0.113.5")
        );
        // A trusted proxy that sent no header, or garbage: the proxy itself.
        assert_eq!(client_of(ip("192.0.2.1"), &[], &proxies), ip("192.0.2.1"));
        assert_eq!(
            client_of(ip("192.0.2.1"), &["unknown"], &proxies),
            ip("192.0.2.1")
        );
        assert_eq!(
            client_of(ip("192.0.2.1"), &["[2001:db8::1]:443"], &proxies),
            ip("2001:db8::1")
        );
        // An IPv4 peer seen as IPv6 is the same address.
        assert_eq!(
            client_of(ip("::ffff:192.0.2.1"), &["203.0.113.5"], &proxies),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn the_setting_takes_addresses_and_networks() {
        assert_eq!(parse_trusted("").unwrap(), vec![]);
        assert_eq!(parse_trusted("::1, 127.0.0.1").unwrap().len(), 2);
        assert!(parse_trusted("10.0.0.0/33").is_err());
        assert!(parse_trusted("proxy.example").is_err());
    }
}
