//! The gate decides whether a connection may open (origin, connection caps and rate,
//! token) and who it is, and whether each event fits its rate limit. Transports call
//! it before the chat; it is the only user of jsonwebtoken and governor.

mod api_keys;
mod auth;
mod connections;
mod limits;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::http::{header, HeaderMap};
use ipnet::IpNet;

pub use api_keys::{ApiKeys, MIN_KEY_LEN};
pub use auth::{AuthSettings, Authenticator, Claims, MAX_TOKEN_BYTES};
pub use connections::{client_ip, parse_proxies, ConnectionCaps, ConnectionPermit, Origins};
pub use limits::{
    address_key, Action, BoundedStore, EventLimits, EventRates, GateClock, Limit, MAX_TRACKED_KEYS,
};

use crate::chat::{ChatError, ConnId, Sender};
use crate::config::{Config, RoomAcl};

/// A configuration problem: the variable and what is wrong.
pub type GateConfigError = (&'static str, String);

/// Admission and identity for both transports. Cheap to clone.
#[derive(Clone)]
pub struct Gate(Arc<Inner>);

struct Inner {
    auth: Option<Authenticator>,
    auth_required: bool,
    acl_claims: bool,
    events: EventLimits,
    connects: Limit,
    caps: Arc<ConnectionCaps>,
    unfinished: Arc<ConnectionCaps>,
    origins: Origins,
    proxies: Vec<IpNet>,
    api_keys: ApiKeys,
}

/// What a request claims to be, before the gate checks it ([`Gate::credentials`]).
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    /// The client's address (X-Forwarded-For only from TRUSTED_PROXIES).
    pub ip: IpAddr,
    /// The token, if any.
    pub token: Option<&'a str>,
    /// Whether a token was offered in `Sec-WebSocket-Protocol` (the upgrade must then
    /// echo the `bearer` protocol, or the browser drops the connection).
    pub via_protocol: bool,
}

/// An admitted, identified connection.
pub struct Admission {
    /// Who it is.
    pub sender: Sender,
    /// When its token expires (seconds since the Unix epoch), if it has one.
    pub expires_at: Option<u64>,
}

impl Gate {
    /// Builds the gate from the configuration, on `clock`.
    pub fn new(config: &Config, clock: GateClock) -> Result<Self, GateConfigError> {
        let pem = if config.jwt_public_key_file.is_empty() {
            None
        } else {
            Some(std::fs::read(&config.jwt_public_key_file).map_err(|e| {
                (
                    "JWT_PUBLIC_KEY_FILE",
                    format!("cannot read {}: {e}", config.jwt_public_key_file),
                )
            })?)
        };
        let has_key = !config.jwt_secret.is_empty() || pem.is_some();
        if config.auth_enabled && !has_key && config.connect_hook_url.is_empty() {
            return Err((
                "AUTH_ENABLED",
                "needs JWT_SECRET, JWT_PUBLIC_KEY_FILE or CONNECT_HOOK_URL".into(),
            ));
        }
        if config.room_acl == RoomAcl::Claims && !has_key {
            return Err((
                "ROOM_ACL",
                "claims needs JWT_SECRET or JWT_PUBLIC_KEY_FILE".into(),
            ));
        }
        let auth = if has_key {
            Some(Authenticator::new(&AuthSettings {
                secret: config.jwt_secret.expose(),
                public_key_pem: pem.as_deref(),
                algorithms: &config.jwt_algorithms,
                issuer: &config.jwt_issuer,
                audience: &config.jwt_audience,
                leeway_secs: config.jwt_leeway.as_secs(),
            })?)
        } else {
            None
        };
        Ok(Self(Arc::new(Inner {
            auth,
            auth_required: config.auth_enabled,
            acl_claims: config.room_acl == RoomAcl::Claims,
            events: EventLimits::new(
                EventRates {
                    send: config.rate_messages_per_min,
                    typing: config.rate_typing_per_min,
                    presence: config.rate_presence_per_min,
                    reads_per_user: config.rate_reads_per_min,
                    reads_per_ip: config.rate_reads_per_ip_per_min,
                },
                &clock,
            ),
            connects: Limit::per_minute(config.rate_connections_per_min, clock),
            caps: ConnectionCaps::new(config.max_connections, config.max_connections_per_ip),
            unfinished: ConnectionCaps::new(0, config.max_unfinished_requests_per_ip),
            origins: Origins::parse(&config.allowed_origins).map_err(|e| ("ALLOWED_ORIGINS", e))?,
            proxies: parse_proxies(&config.trusted_proxies).map_err(|e| ("TRUSTED_PROXIES", e))?,
            api_keys: ApiKeys::new(
                config.server_api_keys.expose(),
                &config.server_api_keys_file,
            )?,
        })))
    }

    /// The server API's keys.
    pub fn api_keys(&self) -> &ApiKeys {
        &self.0.api_keys
    }

    /// The allowed origins.
    pub fn origins(&self) -> &Origins {
        &self.0.origins
    }

    /// The client address behind `peer`.
    pub fn client_ip(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> IpAddr {
        client_ip(peer, headers, &self.0.proxies)
    }

    /// A request's claimed identity, found the same way by every transport (the raw
    /// upgrade, the HTTP API, the socket.io connect middleware): the client address, and
    /// the first token of the socket.io auth payload, `Authorization: Bearer`,
    /// `?token=`, `Sec-WebSocket-Protocol: bearer, <token>`.
    pub fn credentials<'a>(
        &self,
        peer: Option<SocketAddr>,
        headers: &'a HeaderMap,
        query_token: Option<&'a str>,
        payload_token: Option<&'a str>,
    ) -> Credentials<'a> {
        let protocol = protocol_token(headers);
        let token = payload_token
            .or_else(|| bearer_token(headers))
            .or(query_token);
        Credentials {
            ip: self.client_ip(peer, headers),
            via_protocol: protocol.is_some(),
            token: token.or(protocol),
        }
    }

    /// Whether every connection needs a valid token (AUTH_ENABLED).
    pub fn auth_required(&self) -> bool {
        self.0.auth_required
    }

    /// Checks the origin, the connection rate and caps for a new connection from `ip`.
    pub fn admit(&self, ip: IpAddr, headers: &HeaderMap) -> Result<ConnectionPermit, ChatError> {
        self.0.origins.check(headers)?;
        let key = address_key(ip);
        self.0
            .connects
            .check(&key.to_string())
            .and_then(|()| self.0.caps.admit(key))
            .inspect_err(|_| crate::telemetry::metrics::rate_limited("connection"))
    }

    /// Takes a place for a TCP connection from `peer` whose first request has not been
    /// read yet (MAX_UNFINISHED_REQUESTS_PER_IP). Trusted proxies are not counted (`None`).
    pub fn open_http(&self, peer: IpAddr) -> Result<Option<ConnectionPermit>, ChatError> {
        if self.0.proxies.iter().any(|net| net.contains(&peer)) {
            return Ok(None);
        }
        self.0.unfinished.admit(address_key(peer)).map(Some)
    }

    /// Forgets rate-limit keys that are back at their full allowance (run periodically).
    pub fn forget_idle_keys(&self) {
        self.0.events.forget_idle();
        self.0.connects.forget_idle();
    }

    /// Whether a JWT key is configured (a presented token is verified).
    pub fn verifies_tokens(&self) -> bool {
        self.0.auth.is_some()
    }

    /// The identity of a connection from `ip` that presented no token.
    pub fn anonymous(&self, conn: ConnId, ip: IpAddr) -> Sender {
        let mut sender = if self.0.acl_claims {
            Sender::anonymous_without_grants(conn)
        } else {
            Sender::anonymous(conn)
        };
        sender.ip = Some(ip);
        sender
    }

    /// Verifies `token` (required when AUTH_ENABLED) and names the identity of a
    /// connection (or HTTP caller) from `ip`.
    pub fn identify(
        &self,
        conn: ConnId,
        token: Option<&str>,
        ip: IpAddr,
    ) -> Result<Admission, ChatError> {
        let token = token.map(str::trim).filter(|t| !t.is_empty());
        let Some(token) = token else {
            if self.0.auth_required {
                return Err(ChatError::AuthFailed("a token is required".into()));
            }
            return Ok(Admission {
                sender: self.anonymous(conn, ip),
                expires_at: None,
            });
        };
        let Some(auth) = &self.0.auth else {
            return Err(ChatError::AuthFailed(
                "this server verifies no tokens; connect without one".into(),
            ));
        };
        let claims = auth.verify(token)?;
        Ok(Admission {
            sender: Sender {
                conn,
                user: claims.user,
                name: claims.name,
                name_unverified: false,
                anonymous: false,
                allowed_rooms: self.0.acl_claims.then_some(claims.rooms),
                may_post_globally: !self.0.acl_claims || claims.global,
                ip: Some(ip),
            },
            expires_at: Some(claims.expires_at),
        })
    }

    /// Takes one `action` from `sender`'s allowance (reads: also from its address's).
    pub fn limit(&self, action: Action, sender: &Sender) -> Result<(), ChatError> {
        // Anonymous reads count against the address only: an anonymous identity is a
        // connection id (or "http"), which a client renews by reconnecting.
        let user = match action {
            Action::Read if sender.anonymous => None,
            _ => Some(sender.user.as_str()),
        };
        self.0.events.check(action, user, sender.ip)
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The token of a `Sec-WebSocket-Protocol: bearer, <token>` header (browsers cannot set
/// Authorization on a WebSocket).
pub fn protocol_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::SEC_WEBSOCKET_PROTOCOL)?.to_str().ok()?;
    let mut parts = value.split(',').map(str::trim);
    match (parts.next(), parts.next()) {
        (Some(scheme), Some(token)) if scheme.eq_ignore_ascii_case("bearer") => Some(token),
        _ => None,
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
