//! Token verification (the only user of jsonwebtoken). Accepted algorithms come from
//! the configuration, never from the token; `none` is never accepted.

use std::collections::HashSet;
use std::sync::Arc;

use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::chat::{ChatError, RoomPattern};

/// What a verified token says about its holder.
#[derive(Debug, Clone)]
pub struct Claims {
    /// `sub`: the user id.
    pub user: String,
    /// `name`: the display name.
    pub name: Option<String>,
    /// `rooms`: room patterns the user may join.
    pub rooms: Arc<[RoomPattern]>,
    /// `exp`: expiry, seconds since the Unix epoch.
    pub expires_at: u64,
    /// `global`: the user may send room-less messages under ROOM_ACL=claims.
    pub global: bool,
}

#[derive(Deserialize)]
struct RawClaims {
    sub: String,
    exp: u64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    rooms: Option<Vec<String>>,
    #[serde(default)]
    global: bool,
}

/// Longest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 8192;
/// Longest `sub` accepted, in bytes.
pub const MAX_SUBJECT_BYTES: usize = 120;

/// Verifies tokens against one configured key.
pub struct Authenticator {
    key: DecodingKey,
    validation: Validation,
}

/// Settings for [`Authenticator::new`].
pub struct AuthSettings<'a> {
    /// HS256 secret, if any.
    pub secret: &'a str,
    /// PEM public key contents, if any.
    pub public_key_pem: Option<&'a [u8]>,
    /// Accepted algorithms as configured (empty: inferred from the key).
    pub algorithms: &'a str,
    /// Required issuer, if any.
    pub issuer: &'a str,
    /// Required audience, if any.
    pub audience: &'a str,
    /// Leeway on exp/nbf, seconds.
    pub leeway_secs: u64,
}

impl Authenticator {
    /// Builds a verifier; the error names the configuration variable at fault.
    pub fn new(s: &AuthSettings<'_>) -> Result<Self, (&'static str, String)> {
        let (key, family) = match (s.secret.is_empty(), s.public_key_pem) {
            (false, None) => (DecodingKey::from_secret(s.secret.as_bytes()), Family::Hmac),
            (true, Some(pem)) => key_from_pem(pem)?,
            (false, Some(_)) => {
                return Err((
                    "JWT_SECRET",
                    "set JWT_SECRET or JWT_PUBLIC_KEY_FILE, not both".into(),
                ))
            }
            (true, None) => return Err(("JWT_SECRET", "no key configured".into())),
        };
        let algorithms = parse_algorithms(s.algorithms, family)?;
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms;
        validation.leeway = s.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        // jsonwebtoken checks `iss` and `aud` only when the token has them, unless they
        // are required: a configured issuer or audience makes the claim mandatory.
        let mut required = HashSet::from(["exp".to_owned(), "sub".to_owned()]);
        if s.issuer.is_empty() {
            validation.iss = None;
        } else {
            validation.set_issuer(&[s.issuer]);
            required.insert("iss".to_owned());
        }
        if s.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&[s.audience]);
            required.insert("aud".to_owned());
        }
        validation.required_spec_claims = required;
        Ok(Self { key, validation })
    }

    /// Verifies `token` and returns its claims, or AUTH_FAILED saying why.
    pub fn verify(&self, token: &str) -> Result<Claims, ChatError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(ChatError::AuthFailed("token is too long".into()));
        }
        let data = decode::<RawClaims>(token, &self.key, &self.validation)
            .map_err(|e| ChatError::AuthFailed(describe(&e)))?;
        let raw = data.claims;
        if raw.sub.is_empty() || raw.sub.len() > MAX_SUBJECT_BYTES {
            return Err(ChatError::AuthFailed(format!(
                "sub must be 1-{MAX_SUBJECT_BYTES} bytes"
            )));
        }
        let rooms = raw
            .rooms
            .unwrap_or_default()
            .iter()
            .take(256)
            .map(|p| RoomPattern::parse(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Claims {
            user: raw.sub,
            name: raw.name.map(|n| n.chars().take(128).collect()),
            rooms: rooms.into(),
            expires_at: raw.exp,
            global: raw.global,
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Hmac,
    Rsa,
    Ec,
}

fn key_from_pem(pem: &[u8]) -> Result<(DecodingKey, Family), (&'static str, String)> {
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        return Ok((key, Family::Rsa));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        return Ok((key, Family::Ec));
    }
    Err((
        "JWT_PUBLIC_KEY_FILE",
        "not an RSA or EC public key in PEM format".into(),
    ))
}

fn parse_algorithms(raw: &str, family: Family) -> Result<Vec<Algorithm>, (&'static str, String)> {
    if raw.trim().is_empty() {
        return Ok(vec![match family {
            Family::Hmac => Algorithm::HS256,
            Family::Rsa => Algorithm::RS256,
            Family::Ec => Algorithm::ES256,
        }]);
    }
    raw.split(',')
        .map(str::trim)
        .map(|name| {
            let alg = match name {
                "HS256" => Algorithm::HS256,
                "RS256" => Algorithm::RS256,
                "ES256" => Algorithm::ES256,
                other => {
                    return Err((
                        "JWT_ALGORITHMS",
                        format!("{other:?} is not one of HS256, RS256, ES256"),
                    ))
                }
            };
            let fits = matches!(
                (alg, family),
                (Algorithm::HS256, Family::Hmac)
                    | (Algorithm::RS256, Family::Rsa)
                    | (Algorithm::ES256, Family::Ec)
            );
            if fits {
                Ok(alg)
            } else {
                Err((
                    "JWT_ALGORITHMS",
                    format!("{name} does not fit the configured key"),
                ))
            }
        })
        .collect()
}

fn describe(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => "token expired".into(),
        K::ImmatureSignature => "token not yet valid".into(),
        K::InvalidSignature => "bad signature".into(),
        K::InvalidAlgorithm => "algorithm not accepted".into(),
        K::InvalidIssuer => "wrong issuer".into(),
        K::InvalidAudience => "wrong audience".into(),
        K::MissingRequiredClaim(c) => format!("missing claim {c}"),
        _ => "malformed token".into(),
    }
}
