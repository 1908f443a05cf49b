//! Who may read and who may post runner events.

use ipnet::IpNet;
use std::net::IpAddr;

/// Who may read the pages, the read API and the sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadAccess {
    /// Anyone who can reach the server (the default, as labs used the seed).
    #[default]
    Open,
    /// Only signed-in users; others are sent to the sign-in page (pages) or get `401` (API
    /// and sockets).
    SignedIn,
}

/// Who may post runner events (plans, starts, stops) on the seed and v1 paths.
///
/// A request that carries `Authorization: Bearer <token>` is always checked: an unknown or
/// revoked token is refused (`401`) and a token bound to other machines is refused (`403`),
/// whatever else is allowed. Without a token, a request is accepted only from the networks
/// this allows; the default allows none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IngestAccess {
    tokenless: Tokenless,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
enum Tokenless {
    #[default]
    Never,
    From(Vec<IpNet>),
    Anywhere,
}

impl IngestAccess {
    /// Every runner needs a valid token (the default).
    pub fn tokens_only() -> Self {
        IngestAccess::default()
    }

    /// Runners without a token are accepted from anywhere: for unmodified seed runners on a
    /// trusted network. Tokens that are sent are still checked.
    pub fn open() -> Self {
        IngestAccess {
            tokenless: Tokenless::Anywhere,
        }
    }

    /// Runners without a token are accepted from these networks only. Needs the client's
    /// address: serve with `into_make_service_with_connect_info::<SocketAddr>()`; requests
    /// whose address is unknown are refused.
    pub fn open_from(networks: Vec<IpNet>) -> Self {
        IngestAccess {
            tokenless: Tokenless::From(networks),
        }
    }

    /// Runners without a token are accepted from this host only (`127.0.0.0/8`, `::1`).
    pub fn loopback() -> Self {
        Self::open_from(vec![
            IpNet::from(IpAddr::from([127, 0, 0, 1])).supernet_of_len(8),
            IpNet::from(IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1])),
        ])
    }

    /// Whether a request without a token from `client` (if known) is accepted.
    pub fn accepts_tokenless(&self, client: Option<IpAddr>) -> bool {
        match &self.tokenless {
            Tokenless::Never => false,
            Tokenless::Anywhere => true,
            Tokenless::From(networks) => client.is_some_and(|client| {
                let client = canonical(client);
                networks.iter().any(|network| network.contains(&client))
            }),
        }
    }

    /// Whether any runner may post without a token, from somewhere.
    pub fn allows_tokenless(&self) -> bool {
        self.tokenless != Tokenless::Never
    }

    /// A short description for logs, e.g. `tokens only` or `tokenless from 10.0.0.0/8`.
    pub fn describe(&self) -> String {
        match &self.tokenless {
            Tokenless::Never => "tokens only".to_string(),
            Tokenless::Anywhere => "tokenless from anywhere".to_string(),
            Tokenless::From(networks) => {
                let networks: Vec<String> = networks.iter().map(ToString::to_string).collect();
                format!("tokenless from {}", networks.join(", "))
            }
        }
    }
}

/// IPv4 clients may arrive as IPv4-mapped IPv6 addresses on a dual-stack socket.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

trait SupernetOfLen {
    fn supernet_of_len(self, len: u8) -> IpNet;
}

impl SupernetOfLen for IpNet {
    fn supernet_of_len(self, len: u8) -> IpNet {
        IpNet::new(self.addr(), len).map_or(self, |net| net.trunc())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tokenless_rules() {
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.5".parse().unwrap();
        let lan: IpAddr = "10.1.2.3".parse().unwrap();
        assert!(!IngestAccess::tokens_only().accepts_tokenless(Some(local)));
        assert!(IngestAccess::open().accepts_tokenless(None));
        let loopback = IngestAccess::loopback();
        assert!(loopback.accepts_tokenless(Some(local)));
        assert!(loopback.accepts_tokenless(Some(mapped)));
        assert!(loopback.accepts_tokenless(Some("::1".parse().unwrap())));
        assert!(!loopback.accepts_tokenless(Some(lan)));
        assert!(!loopback.accepts_tokenless(None));
        let lab = IngestAccess::open_from(vec!["10.0.0.0/8".parse().unwrap()]);
        assert!(lab.accepts_tokenless(Some(lan)));
        assert!(!lab.accepts_tokenless(Some(local)));
        assert_eq!(lab.describe(), "tokenless from 10.0.0.0/8");
    }
}
