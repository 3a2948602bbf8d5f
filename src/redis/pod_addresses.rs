//! The pods' own addresses (POD_URL) in Redis, each under the pod's session tag, for
//! the pods that forward requests of its engine.io sessions to it
//! (`transport/forward.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::RedisLink;

/// Redis key prefix of an advertised address: `chatwire:pod-url:{tag}`.
const KEY_PREFIX: &str = "chatwire:pod-url:";
/// How long an advertised address lives without being renewed (a dead pod's address
/// goes away within it).
pub const ADDRESS_TTL: Duration = Duration::from_secs(15);
/// How often a pod renews its address (also how soon it is back after Redis lost it).
const RENEW_EVERY: Duration = Duration::from_secs(3);
/// How soon a failed write of the address is tried again.
const RETRY_EVERY: Duration = Duration::from_millis(250);
/// How long a looked-up address is used before Redis is asked again.
const CACHE_FOR: Duration = Duration::from_secs(10);
/// How long a tag Redis does not know stays unknown here without asking again.
const UNKNOWN_FOR: Duration = Duration::from_secs(2);
/// Unknown tags remembered at most (forged tags cannot grow the table past it).
const UNKNOWN_MAX: usize = 4096;

/// Where each pod can be reached, read from (and, for this pod, written to) Redis.
/// Only addresses Redis holds are cached, so the cache is as large as the cluster.
#[derive(Clone)]
pub struct PodAddresses {
    link: RedisLink,
    cache: Arc<Mutex<HashMap<String, (String, Instant)>>>,
    /// Tags Redis answered nothing for, and when: a flood of forged tags costs one
    /// Redis read per tag per [`UNKNOWN_FOR`].
    unknown: Arc<Mutex<HashMap<String, Instant>>>,
    /// Whether this pod's own address has been written at least once.
    advertised: Arc<AtomicBool>,
}

impl PodAddresses {
    /// The address book on `link`.
    pub fn new(link: RedisLink) -> Self {
        Self {
            link,
            cache: Arc::default(),
            unknown: Arc::default(),
            advertised: Arc::default(),
        }
    }

    /// Whether this pod's address is in Redis (written once at least): until then the
    /// other pods could not forward to it.
    pub fn advertised(&self) -> bool {
        self.advertised.load(Ordering::Acquire)
    }

    /// Advertises `url` under `tag` at once (retrying quickly until Redis takes it) and
    /// every few seconds until `stop`, then takes it back.
    pub async fn advertise(self, tag: String, url: String, stop: CancellationToken) {
        let key = format!("{KEY_PREFIX}{tag}");
        let mut failing = false;
        loop {
            let mut set = redis::cmd("SET");
            set.arg(&key).arg(&url).arg("EX").arg(ADDRESS_TTL.as_secs());
            let next = match self.link.query::<()>(&set).await {
                Ok(()) => {
                    failing = false;
                    if !self.advertised.swap(true, Ordering::AcqRel) {
                        info!(%url, "POD_URL advertised: other pods forward this pod's sessions here");
                    }
                    RENEW_EVERY
                }
                Err(e) => {
                    if !failing && self.link.is_up() {
                        warn!(error = %e, "could not advertise POD_URL in redis; retrying");
                    }
                    failing = true;
                    RETRY_EVERY
                }
            };
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(next) => {}
            }
        }
        let mut del = redis::cmd("DEL");
        del.arg(&key);
        let _ = self.link.query::<()>(&del).await;
    }

    /// The address of the pod tagged `tag`, if it advertises one (an `http://` URL).
    pub async fn lookup(&self, tag: &str) -> Option<String> {
        if let Some((url, at)) = self.lock().get(tag) {
            if at.elapsed() < CACHE_FOR {
                return Some(url.clone());
            }
        }
        if self
            .lock_unknown()
            .get(tag)
            .is_some_and(|at| at.elapsed() < UNKNOWN_FOR)
        {
            return None;
        }
        let mut get = redis::cmd("GET");
        get.arg(format!("{KEY_PREFIX}{tag}"));
        match self.link.query::<Option<String>>(&get).await {
            // Only what a pod could have written: an http:// URL.
            Ok(Some(url)) if url.starts_with("http://") && url.parse::<hyper::Uri>().is_ok() => {
                self.lock()
                    .insert(tag.to_owned(), (url.clone(), Instant::now()));
                Some(url)
            }
            Ok(_) => {
                self.forget(tag);
                let mut unknown = self.lock_unknown();
                if unknown.len() >= UNKNOWN_MAX {
                    unknown.retain(|_, at| at.elapsed() < UNKNOWN_FOR);
                }
                if unknown.len() < UNKNOWN_MAX {
                    unknown.insert(tag.to_owned(), Instant::now());
                }
                None
            }
            // Redis unreachable: the last address known, however old.
            Err(_) => self.lock().get(tag).map(|(url, _)| url.clone()),
        }
    }

    /// Forgets `tag`'s cached address (its pod did not answer there).
    pub fn forget(&self, tag: &str) {
        self.lock().remove(tag);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Instant)>> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_unknown(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.unknown.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
