//! [`HookClient`]: JSON over HTTP to the application's backend, signed, bounded in time
//! and in concurrency, counted.
//!
//! Every request carries `X-Chatwire-Hook: <name>` and `X-Chatwire-Signature:
//! t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with HOOK_SECRET>`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::Semaphore;

use crate::chat::ChatError;
use crate::config::Secret;
use crate::telemetry::metrics;

/// Header naming the hook.
pub const HOOK_HEADER: &str = "x-chatwire-hook";
/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-chatwire-signature";

/// Largest answer read from the backend; a longer one is invalid.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

/// How long a client refused because the backend did not answer should wait.
pub const HOOK_RETRY_AFTER_MS: u64 = 1000;

/// Why a hook call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// The backend did not answer within HOOK_TIMEOUT (or no call slot freed in time).
    #[error("the backend did not answer in time")]
    Timeout,
    /// The backend could not be reached.
    #[error("the backend is unreachable")]
    Unreachable,
    /// The backend answered with an HTTP error.
    #[error("the backend answered {0}")]
    Status(u16),
    /// The backend's answer is not the JSON expected.
    #[error("the backend's answer is not valid: {0}")]
    Invalid(String),
}

impl HookError {
    /// The label of this outcome in metrics.
    fn outcome(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Unreachable => "unreachable",
            Self::Status(_) => "status",
            Self::Invalid(_) => "invalid",
        }
    }

    /// The error a client sees when its request depended on this call (what an invalid
    /// answer said stays in the server's log).
    pub fn to_client(&self, hook: &str) -> ChatError {
        let what = match self {
            Self::Invalid(_) => "the backend's answer is not valid".to_owned(),
            other => other.to_string(),
        };
        ChatError::Unavailable {
            reason: format!("the {hook} hook failed: {what}"),
            retry_after_ms: HOOK_RETRY_AFTER_MS,
        }
    }
}

/// The signature header's value for `body` at `unix_secs`.
pub fn signature(secret: &[u8], unix_secs: u64, body: &[u8]) -> String {
    // An HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(unix_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={unix_secs},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// The HTTP client of every hook.
#[derive(Clone)]
pub struct HookClient {
    http: reqwest::Client,
    secret: Arc<Secret>,
    timeout: Duration,
    slots: Arc<Semaphore>,
}

impl std::fmt::Debug for HookClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HookClient {
    /// A client signing with `secret`, each call within `timeout`, at most `concurrency`
    /// calls in flight.
    pub fn new(secret: Secret, timeout: Duration, concurrency: usize) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            // A redirect would turn a POST into a GET without the body, or send the
            // signed body elsewhere: a 3xx is an error.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(concurrency)
            .user_agent(concat!("chatwire/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            http,
            secret: Arc::new(secret),
            timeout,
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
        })
    }

    /// POSTs `body` to `url` as hook `hook`; the answer's JSON (null for an empty body).
    pub async fn call(
        &self,
        hook: &'static str,
        url: &str,
        body: &Value,
    ) -> Result<Value, HookError> {
        let bytes = serde_json::to_vec(body).map_err(|e| HookError::Invalid(e.to_string()))?;
        self.call_bytes(hook, url, bytes).await
    }

    /// [`HookClient::call`] with a body already encoded.
    pub async fn call_bytes(
        &self,
        hook: &'static str,
        url: &str,
        bytes: Vec<u8>,
    ) -> Result<Value, HookError> {
        let started = Instant::now();
        let result = tokio::time::timeout(self.timeout, self.call_inner(hook, url, bytes))
            .await
            .unwrap_or(Err(HookError::Timeout));
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.outcome(),
        };
        metrics::hook_call(hook, outcome, started.elapsed());
        if let Err(e) = &result {
            tracing::debug!(hook, error = %e, "hook call failed");
        }
        result
    }

    async fn call_inner(
        &self,
        hook: &'static str,
        url: &str,
        bytes: Vec<u8>,
    ) -> Result<Value, HookError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| HookError::Unreachable)?;
        let signed = signature(
            self.secret.expose().as_bytes(),
            crate::gate::unix_now(),
            &bytes,
        );
        let response = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(HOOK_HEADER, hook)
            .header(SIGNATURE_HEADER, signed)
            .body(bytes)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    HookError::Timeout
                } else {
                    HookError::Unreachable
                }
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(HookError::Status(status.as_u16()));
        }
        let too_long = || HookError::Invalid(format!("longer than {MAX_ANSWER_BYTES} bytes"));
        if response
            .content_length()
            .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
        {
            return Err(too_long());
        }
        let mut response = response;
        let mut text = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            if e.is_timeout() {
                HookError::Timeout
            } else {
                HookError::Unreachable
            }
        })? {
            if text.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(too_long());
            }
            text.extend_from_slice(&chunk);
        }
        if text.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&text).map_err(|e| HookError::Invalid(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_an_hmac_of_the_time_and_the_body() {
        // Computed independently:
        // printf '%s' '1700000000.{"a":1}' | openssl dgst -sha256 -hmac s3cret
        let got = signature(b"s3cret", 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(
            got,
            "t=1700000000,v1=1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940"
        );
        assert_ne!(got, signature(b"other", 1_700_000_000, br#"{"a":1}"#));
        assert_ne!(got, signature(b"s3cret", 1_700_000_001, br#"{"a":1}"#));
    }
}
