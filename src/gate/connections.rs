//! Who is connecting from where: the client IP (X-Forwarded-For believed only from
//! trusted proxies), the allowed origins, and open-connection caps with RAII permits.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::http::{header, HeaderMap};
use ipnet::IpNet;

use crate::chat::ChatError;

/// Parses TRUSTED_PROXIES: IPs or CIDRs, comma-separated.
pub fn parse_proxies(raw: &str) -> Result<Vec<IpNet>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{s:?} is not an IP address or CIDR"))
        })
        .collect()
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the last
/// X-Forwarded-For hop that is not itself a trusted proxy.
pub fn client_ip(peer: Option<SocketAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.map_or(IpAddr::from([0, 0, 0, 0]), |p| p.ip());
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .take(64)
        .filter_map(|h| h.trim().parse().ok())
        .collect();
    hops.into_iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .unwrap_or(peer)
}

/// ALLOWED_ORIGINS: `*` or a list of exact origins.
#[derive(Debug, Clone)]
pub enum Origins {
    /// Any origin.
    Any,
    /// Only these (e.g. `https://chat.example.com`).
    List(Vec<String>),
}

impl Origins {
    /// Parses ALLOWED_ORIGINS.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let list: Vec<String> = raw
            .split(',')
            .map(|s| s.trim().trim_end_matches('/').to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if list.is_empty() || list.iter().any(|o| o == "*") {
            return Ok(Self::Any);
        }
        if let Some(bad) = list
            .iter()
            .find(|o| !(o.starts_with("http://") || o.starts_with("https://")))
        {
            return Err(format!("{bad:?} is not an origin like https://host[:port]"));
        }
        Ok(Self::List(list))
    }

    /// Whether a request with these headers may connect. Requests without an Origin
    /// header (non-browser clients) are allowed.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ChatError> {
        let Self::List(list) = self else {
            return Ok(());
        };
        match headers.get(header::ORIGIN).map(|v| v.to_str()) {
            None => Ok(()),
            Some(Ok(origin)) if list.iter().any(|o| o == origin) => Ok(()),
            Some(_) => Err(ChatError::Forbidden("origin not allowed".into())),
        }
    }

    /// Whether `origin` is allowed (for CORS answers).
    pub fn allows(&self, origin: &[u8]) -> bool {
        match self {
            Self::Any => true,
            Self::List(list) => list.iter().any(|o| o.as_bytes() == origin),
        }
    }
}

/// Caps on open connections, in all and per client IP.
#[derive(Debug)]
pub struct ConnectionCaps {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct ConnectionPermit {
    caps: Arc<ConnectionCaps>,
    ip: IpAddr,
}

impl ConnectionCaps {
    /// Caps of `max_total` and `max_per_ip` (0: unlimited).
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_ip,
            open: Mutex::default(),
        })
    }

    /// Takes a place for a connection from `ip`.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionPermit, ChatError> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if self.max_total != 0 && open.total >= self.max_total {
            return Err(ChatError::RateLimited {
                retry_after_ms: 5000,
            });
        }
        let from_ip = open.per_ip.get(&ip).copied().unwrap_or(0);
        if self.max_per_ip != 0 && from_ip >= self.max_per_ip {
            return Err(ChatError::RateLimited {
                retry_after_ms: 5000,
            });
        }
        open.total += 1;
        open.per_ip.insert(ip, from_ip + 1);
        Ok(ConnectionPermit {
            caps: self.clone(),
            ip,
        })
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut open = self.caps.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = parse_proxies("10.0.0.0/8, 192.168.1.1").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "1.2.3.4, 10.1.1.1".parse().unwrap());
        let via_proxy: SocketAddr = "10.9.9.9:1000".parse().unwrap();
        let direct: SocketAddr = "5.6.7.8:1000".parse().unwrap();
        assert_eq!(
            client_ip(Some(via_proxy), &headers, &trusted),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(Some(direct), &headers, &trusted), direct.ip());
        headers.insert("x-forwarded-for", "garbage".parse().unwrap());
        assert_eq!(
            client_ip(Some(via_proxy), &headers, &trusted),
            via_proxy.ip()
        );
        assert!(parse_proxies("nope").is_err());
    }

    #[test]
    fn caps_count_per_ip_and_free_on_drop() {
        let caps = ConnectionCaps::new(3, 2);
        let a: IpAddr = "1.1.1.1".parse().unwrap();
        let b: IpAddr = "2.2.2.2".parse().unwrap();
        let p1 = caps.admit(a).unwrap();
        let _p2 = caps.admit(a).unwrap();
        assert!(caps.admit(a).is_err());
        let _p3 = caps.admit(b).unwrap();
        assert!(caps.admit(b).is_err(), "total cap");
        drop(p1);
        assert!(caps.admit(a).is_ok());
    }

    #[test]
    fn origins_allow_listed_or_absent() {
        let o = Origins::parse("https://chat.example.com, http://localhost:3000").unwrap();
        let mut h = HeaderMap::new();
        assert!(o.check(&h).is_ok());
        h.insert(header::ORIGIN, "https://chat.example.com".parse().unwrap());
        assert!(o.check(&h).is_ok());
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(o.check(&h).is_err());
        assert!(Origins::parse("ftp://x").is_err());
        assert!(matches!(Origins::parse("*").unwrap(), Origins::Any));
    }
}
