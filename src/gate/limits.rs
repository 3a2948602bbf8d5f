//! Rate limits (the only user of governor): per-user event limits and per-IP connection
//! attempts, on a [`GateClock`] that tests can move forward. Limiter memory stays bounded:
//! past [`MAX_TRACKED_KEYS`] keys, idle ones are forgotten, and if that is not enough
//! new keys are refused rather than stored.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::chat::ChatError;

/// Most keys one limiter tracks.
pub const MAX_TRACKED_KEYS: usize = 100_000;

/// A monotonic clock for the limiters that tests can advance instead of waiting.
#[derive(Debug, Clone)]
pub struct GateClock {
    start: Instant,
    skew_nanos: Arc<AtomicU64>,
}

impl Default for GateClock {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            skew_nanos: Arc::default(),
        }
    }
}

impl GateClock {
    /// Moves this clock (and every clone of it) forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.skew_nanos
            .fetch_add(by.as_nanos() as u64, Ordering::Relaxed);
    }
}

impl Clock for GateClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.start.elapsed() + Duration::from_nanos(self.skew_nanos.load(Ordering::Relaxed))
    }
}

type Keyed = RateLimiter<String, DashMapStateStore<String>, GateClock, NoOpMiddleware<Duration>>;

/// One keyed limit, e.g. 60 per minute per user. `None` quota: unlimited.
pub struct Limit {
    limiter: Option<Keyed>,
    clock: GateClock,
}

impl Limit {
    /// Allows `per_minute` events per key per minute (bursts up to that many); 0: unlimited.
    pub fn per_minute(per_minute: u32, clock: GateClock) -> Self {
        let limiter = NonZeroU32::new(per_minute)
            .map(|n| RateLimiter::dashmap_with_clock(Quota::per_minute(n), clock.clone()));
        Self { limiter, clock }
    }

    /// Takes one event for `key`, or says how long to wait.
    pub fn check(&self, key: &str) -> Result<(), ChatError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if limiter.len() >= MAX_TRACKED_KEYS {
            limiter.retain_recent();
            limiter.shrink_to_fit();
            if limiter.len() >= MAX_TRACKED_KEYS {
                return Err(ChatError::RateLimited {
                    retry_after_ms: 1000,
                });
            }
        }
        limiter.check_key(&key.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            ChatError::RateLimited {
                retry_after_ms: (wait.as_nanos().div_ceil(1_000_000) as u64).max(1),
            }
        })
    }

    /// Keys currently tracked.
    pub fn tracked(&self) -> usize {
        self.limiter.as_ref().map_or(0, Keyed::len)
    }
}

/// Which per-user limit an event counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `message:send` / raw chat frames.
    Send,
    /// `user:typing`.
    Typing,
    /// `presence:update`.
    Presence,
}

/// The per-user event limits.
pub struct EventLimits {
    send: Limit,
    typing: Limit,
    presence: Limit,
}

impl EventLimits {
    /// Limits per minute for each action.
    pub fn new(send: u32, typing: u32, presence: u32, clock: &GateClock) -> Self {
        Self {
            send: Limit::per_minute(send, clock.clone()),
            typing: Limit::per_minute(typing, clock.clone()),
            presence: Limit::per_minute(presence, clock.clone()),
        }
    }

    /// Takes one `action` for `user`.
    pub fn check(&self, action: Action, user: &str) -> Result<(), ChatError> {
        let (limit, label) = match action {
            Action::Send => (&self.send, "message"),
            Action::Typing => (&self.typing, "typing"),
            Action::Presence => (&self.presence, "presence"),
        };
        limit
            .check(user)
            .inspect_err(|_| crate::telemetry::metrics::rate_limited(label))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_61st_message_in_a_minute_waits() {
        let clock = GateClock::default();
        let limit = Limit::per_minute(60, clock.clone());
        for _ in 0..60 {
            assert!(limit.check("alice").is_ok());
        }
        let err = limit.check("alice").unwrap_err();
        let wait = err.retry_after_ms().unwrap();
        assert!((1..=1000).contains(&wait), "{wait}");
        assert!(limit.check("bob").is_ok(), "other users are not affected");
        clock.advance(Duration::from_millis(wait));
        assert!(limit.check("alice").is_ok());
    }

    #[test]
    fn zero_means_unlimited() {
        let limit = Limit::per_minute(0, GateClock::default());
        for _ in 0..1000 {
            assert!(limit.check("x").is_ok());
        }
    }

    #[test]
    fn a_spray_of_distinct_keys_stays_bounded() {
        let clock = GateClock::default();
        let limit = Limit::per_minute(10, clock.clone());
        for i in 0..(MAX_TRACKED_KEYS + 5_000) {
            if i % 20_000 == 0 {
                clock.advance(Duration::from_secs(120));
            }
            let _ = limit.check(&format!("10.0.{}.{}", i / 256, i % 256));
        }
        assert!(limit.tracked() <= MAX_TRACKED_KEYS, "{}", limit.tracked());
    }
}
