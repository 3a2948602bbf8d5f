//! Rate limits (the only user of governor): per-user and per-address event limits and
//! per-address connection attempts, on a [`GateClock`] that tests can move forward.
//! Limiter memory stays bounded and fair: a limiter tracks at most [`MAX_TRACKED_KEYS`]
//! keys, and when its table is full it forgets the keys closest to a full allowance to
//! make room. A key it has never seen is never refused for the table's sake, so a spray
//! of new addresses cannot lock anyone out; a key deep in debt is forgotten last.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::StateStore;
use governor::{Quota, RateLimiter};

use crate::chat::ChatError;

/// Most keys one limiter tracks.
pub const MAX_TRACKED_KEYS: usize = 100_000;

/// Shards of a [`BoundedStore`]: eviction scans one shard, never the whole table.
const STORE_SHARDS: usize = 64;

/// A monotonic clock for the limiters that tests can advance instead of waiting.
#[derive(Debug, Clone)]
pub struct GateClock {
    start: Instant,
    skew_nanos: Arc<AtomicU64>,
    /// Time moves only by [`GateClock::advance`].
    manual: bool,
}

impl Default for GateClock {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            skew_nanos: Arc::default(),
            manual: false,
        }
    }
}

impl GateClock {
    /// A clock that stands still until advanced (tests whose timing must not depend on
    /// how fast the machine is).
    pub fn manual() -> Self {
        Self {
            manual: true,
            ..Self::default()
        }
    }

    /// Moves this clock (and every clone of it) forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.skew_nanos
            .fetch_add(by.as_nanos() as u64, Ordering::Relaxed);
    }
}

impl Clock for GateClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        let moved = Duration::from_nanos(self.skew_nanos.load(Ordering::Relaxed));
        if self.manual {
            moved
        } else {
            self.start.elapsed() + moved
        }
    }
}

/// A governor state store holding at most `capacity` keys. Each entry is the key's
/// theoretical arrival time (TAT); when a shard is full, the entry with the smallest TAT
/// (the key nearest to its full allowance, or past it) makes room for the new key.
pub struct BoundedStore {
    shards: Box<[Mutex<HashMap<String, u64>>]>,
    per_shard: usize,
    hasher: RandomState,
}

impl BoundedStore {
    /// A store of at most `capacity` keys (at least one per shard).
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..STORE_SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: (capacity / STORE_SHARDS).max(1),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, key: &str) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        let index = self.hasher.hash_one(key) as usize % self.shards.len();
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Keys currently tracked.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl StateStore for BoundedStore {
    type Key = String;

    fn measure_and_replace<T, F, E>(&self, key: &String, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut shard = self.shard(key);
        let (value, tat) = f(shard.get(key).copied().map(Nanos::from))?;
        if let Some(entry) = shard.get_mut(key) {
            *entry = tat.as_u64();
            return Ok(value);
        }
        if shard.len() >= self.per_shard {
            let lowest = shard
                .iter()
                .min_by_key(|(_, tat)| **tat)
                .map(|(k, _)| k.clone());
            if let Some(lowest) = lowest {
                shard.remove(&lowest);
            }
        }
        shard.insert(key.clone(), tat.as_u64());
        Ok(value)
    }
}

impl ShrinkableKeyedStateStore<String> for BoundedStore {
    fn retain_recent(&self, drop_below: Nanos) {
        let drop_below = drop_below.as_u64();
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            shard.retain(|_, tat| *tat >= drop_below);
        }
    }

    fn shrink_to_fit(&self) {
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            shard.shrink_to_fit();
        }
    }

    fn len(&self) -> usize {
        BoundedStore::len(self)
    }

    fn is_empty(&self) -> bool {
        BoundedStore::is_empty(self)
    }
}

type Keyed = RateLimiter<String, BoundedStore, GateClock, NoOpMiddleware<Duration>>;

/// One keyed limit, e.g. 60 per minute per user. `None` quota: unlimited.
pub struct Limit {
    limiter: Option<Keyed>,
    clock: GateClock,
}

impl Limit {
    /// Allows `per_minute` events per key per minute (bursts up to that many); 0: unlimited.
    pub fn per_minute(per_minute: u32, clock: GateClock) -> Self {
        Self::per_minute_tracking(per_minute, clock, MAX_TRACKED_KEYS)
    }

    /// [`Limit::per_minute`] tracking at most `capacity` keys.
    pub fn per_minute_tracking(per_minute: u32, clock: GateClock, capacity: usize) -> Self {
        let limiter = NonZeroU32::new(per_minute).map(|n| {
            RateLimiter::new(
                Quota::per_minute(n),
                BoundedStore::new(capacity),
                clock.clone(),
            )
        });
        Self { limiter, clock }
    }

    /// Takes one event for `key`, or says how long to wait.
    pub fn check(&self, key: &str) -> Result<(), ChatError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&key.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            ChatError::RateLimited {
                retry_after_ms: (wait.as_nanos().div_ceil(1_000_000) as u64).max(1),
            }
        })
    }

    /// Keys currently tracked.
    pub fn tracked(&self) -> usize {
        self.limiter.as_ref().map_or(0, |l| l.len())
    }

    /// Forgets keys back at their full allowance (they would be treated alike if seen
    /// again) and releases the memory they held.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// The key of a client address in per-address limits: the address itself for IPv4, its
/// /64 network for IPv6 (one host usually holds a whole /64), IPv4-mapped IPv6 as IPv4.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::from(segments)
            }
        },
    }
}

/// Which limit an event counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `message:send` / raw chat frames.
    Send,
    /// `user:typing`.
    Typing,
    /// `presence:update`.
    Presence,
    /// A request that reads the store or Redis: joins (and recovery), history pages,
    /// edits, deletes, presence lists, the HTTP history and listing routes. Counted per
    /// user and per client address.
    Read,
}

/// Allowances per minute of each kind of event (0: unlimited).
#[derive(Debug, Clone, Copy)]
pub struct EventRates {
    /// `message:send` per user.
    pub send: u32,
    /// `user:typing` per user.
    pub typing: u32,
    /// `presence:update` per user.
    pub presence: u32,
    /// Reads per user.
    pub reads_per_user: u32,
    /// Reads per client address.
    pub reads_per_ip: u32,
}

/// The event limits.
pub struct EventLimits {
    send: Limit,
    typing: Limit,
    presence: Limit,
    reads_per_user: Limit,
    reads_per_ip: Limit,
}

impl EventLimits {
    /// Limits per minute for each action.
    pub fn new(rates: EventRates, clock: &GateClock) -> Self {
        let limit = |per_minute| Limit::per_minute(per_minute, clock.clone());
        Self {
            send: limit(rates.send),
            typing: limit(rates.typing),
            presence: limit(rates.presence),
            reads_per_user: limit(rates.reads_per_user),
            reads_per_ip: limit(rates.reads_per_ip),
        }
    }

    /// Takes one `action` for `user` (`None`: an anonymous caller, limited by its
    /// address only) coming from `ip`.
    pub fn check(
        &self,
        action: Action,
        user: Option<&str>,
        ip: Option<IpAddr>,
    ) -> Result<(), ChatError> {
        let (limit, label) = match action {
            Action::Send => (&self.send, "message"),
            Action::Typing => (&self.typing, "typing"),
            Action::Presence => (&self.presence, "presence"),
            Action::Read => (&self.reads_per_user, "read"),
        };
        let result = match (action, user) {
            (Action::Read, _) => {
                let by_ip = ip.map_or(Ok(()), |ip| {
                    self.reads_per_ip.check(&address_key(ip).to_string())
                });
                by_ip.and_then(|()| user.map_or(Ok(()), |u| limit.check(u)))
            }
            (_, Some(user)) => limit.check(user),
            (_, None) => Ok(()),
        };
        result.inspect_err(|_| crate::telemetry::metrics::rate_limited(label))
    }

    /// Forgets idle keys of every limit (see [`Limit::forget_idle`]).
    pub fn forget_idle(&self) {
        for limit in [
            &self.send,
            &self.typing,
            &self.presence,
            &self.reads_per_user,
            &self.reads_per_ip,
        ] {
            limit.forget_idle();
        }
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

    /// The limiter's table full of keys all used within the last second (a spray of
    /// connection attempts from many addresses) must still admit an address it has
    /// never seen, and keep limiting a key in debt.
    #[test]
    fn a_full_limiter_table_never_refuses_an_unseen_key() {
        let clock = GateClock::default();
        let capacity = 2_000;
        let limit = Limit::per_minute_tracking(10, clock.clone(), capacity);
        for _ in 0..10 {
            limit.check("abuser").unwrap();
        }
        assert!(limit.check("abuser").is_err());
        for i in 0..(capacity * 3) {
            limit
                .check(&format!("spray-{i}"))
                .expect("a sprayed key is new: never refused");
            if i % 500 == 0 {
                assert!(limit.check("abuser").is_err(), "the abuser stays limited");
            }
        }
        assert!(limit.tracked() <= capacity + 64, "{}", limit.tracked());
        assert!(limit.check("newcomer").is_ok(), "an unseen key is admitted");
        assert!(
            limit.check("abuser").is_err(),
            "a key in debt is forgotten last"
        );
    }

    #[test]
    fn idle_keys_are_forgotten() {
        let clock = GateClock::default();
        let limit = Limit::per_minute(10, clock.clone());
        for i in 0..100 {
            limit.check(&format!("k{i}")).unwrap();
        }
        limit.forget_idle();
        assert_eq!(limit.tracked(), 100, "recently used keys stay");
        clock.advance(Duration::from_secs(61));
        limit.forget_idle();
        assert_eq!(limit.tracked(), 0);
    }

    #[test]
    fn ipv6_addresses_share_their_64_and_mapped_ipv4_is_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(address_key(mapped), "10.1.2.3".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn reads_are_limited_per_user_and_per_address() {
        let clock = GateClock::default();
        let rates = EventRates {
            send: 0,
            typing: 0,
            presence: 0,
            reads_per_user: 3,
            reads_per_ip: 5,
        };
        let limits = EventLimits::new(rates, &clock);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..3 {
            limits.check(Action::Read, Some("ann"), Some(ip)).unwrap();
        }
        assert!(limits.check(Action::Read, Some("ann"), Some(ip)).is_err());
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(
            limits
                .check(Action::Read, Some("ann"), Some(other))
                .is_err(),
            "per user whatever the address"
        );
        // Anonymous callers: by address only; `ann`'s failed attempt above took one.
        limits.check(Action::Read, None, Some(ip)).unwrap();
        assert!(limits.check(Action::Read, None, Some(ip)).is_err());
        assert!(limits.check(Action::Read, None, Some(other)).is_ok());
    }
}
