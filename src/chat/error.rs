//! The error catalogue shared by both transports: every failure a client can see has
//! one [`ErrorCode`]. Transports map a [`ChatError`] to their wire format in one place.

use serde::Serialize;

/// Wire code of an error, identical on both transports (docs/errors.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// Missing, invalid or expired credentials.
    AuthFailed,
    /// The identity may not do this (e.g. join another user's room).
    Forbidden,
    /// Too many requests; retry later.
    RateLimited,
    /// The payload has the wrong shape or an invalid value.
    InvalidPayload,
    /// The room cannot be used this way (e.g. sending to a room not joined).
    ChannelError,
    /// The message exceeds MAX_MESSAGE_BYTES.
    MessageTooLarge,
    /// A server-side failure; the client may retry.
    Internal,
    /// The message log cannot store right now; nothing was delivered. Retry after
    /// `retry_after_ms`.
    Unavailable,
    /// Another request with the same `Idempotency-Key` is still running.
    Conflict,
    /// No such route here (the server API while it is off).
    NotFound,
}

impl crate::telemetry::metrics::Label for ErrorCode {
    fn label(self) -> &'static str {
        self.as_str()
    }
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthFailed => "AUTH_FAILED",
            Self::Forbidden => "FORBIDDEN",
            Self::RateLimited => "RATE_LIMITED",
            Self::InvalidPayload => "INVALID_PAYLOAD",
            Self::ChannelError => "CHANNEL_ERROR",
            Self::MessageTooLarge => "MESSAGE_TOO_LARGE",
            Self::Internal => "INTERNAL",
            Self::Unavailable => "UNAVAILABLE",
            Self::Conflict => "CONFLICT",
            Self::NotFound => "NOT_FOUND",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure of a chat operation, carrying its wire code and a human message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    /// The payload could not be understood.
    #[error("invalid payload: {0}")]
    InvalidPayload(String),
    /// The room is not usable for this operation.
    #[error("{0}")]
    Channel(String),
    /// The encoded message is larger than allowed.
    #[error("message is {size} bytes, the limit is {limit}")]
    TooLarge {
        /// Encoded size of the message.
        size: usize,
        /// The configured limit (MAX_MESSAGE_BYTES).
        limit: usize,
    },
    /// The identity is not allowed to do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The server failed.
    #[error("internal error: {0}")]
    Internal(String),
    /// Credentials are missing, invalid or expired.
    #[error("authentication failed: {0}")]
    AuthFailed(String),
    /// Too many requests of this kind.
    #[error("rate limited: retry in {retry_after_ms} ms")]
    RateLimited {
        /// How long until the next request is allowed.
        retry_after_ms: u64,
    },
    /// Another request with the same key is still running.
    #[error("{0}")]
    Conflict(String),
    /// Nothing here answers this.
    #[error("{0}")]
    NotFound(String),
    /// The message log cannot store right now.
    #[error("{reason}; retry in {retry_after_ms} ms")]
    Unavailable {
        /// What failed.
        reason: String,
        /// When to try again.
        retry_after_ms: u64,
    },
}

impl ChatError {
    /// The wire code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidPayload(_) => ErrorCode::InvalidPayload,
            Self::Channel(_) => ErrorCode::ChannelError,
            Self::TooLarge { .. } => ErrorCode::MessageTooLarge,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::Internal(_) => ErrorCode::Internal,
            Self::AuthFailed(_) => ErrorCode::AuthFailed,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Unavailable { .. } => ErrorCode::Unavailable,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::NotFound(_) => ErrorCode::NotFound,
        }
    }

    /// For RATE_LIMITED and UNAVAILABLE, how long the client should wait.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after_ms } | Self::Unavailable { retry_after_ms, .. } => {
                Some(*retry_after_ms)
            }
            _ => None,
        }
    }

    /// Shorthand for an [`ChatError::InvalidPayload`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::InvalidPayload(msg.into())
    }
}

/// At most the first `max` characters of `s`, for quoting client input in error messages.
pub fn excerpt(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
