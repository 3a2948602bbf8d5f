//! Databases for tests: a fresh folder for SQLite files ([`TempDir`]) and a fresh
//! PostgreSQL schema ([`PgSchema`]) in the machine's server, each removed when dropped.
//! PostgreSQL is found at `CHATWIRE_TEST_PG` (default `postgres://postgres@127.0.0.1:5432/
//! test`); without it, tests that need it fail under `CI=true` and skip loudly otherwise.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use sqlx::Connection;

/// The PostgreSQL server tests use.
pub fn pg_base_url() -> String {
    std::env::var("CHATWIRE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

static NEXT: AtomicU64 = AtomicU64::new(0);

fn unique(prefix: &str) -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}{}_{n}_{nanos:x}", std::process::id())
}

/// A folder of its own under the system's temp dir, removed with everything in it.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(unique("chatwire-test-"));
        std::fs::create_dir_all(&path).expect("create a temp dir");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `sqlite://` URL of a database file `name` in this folder.
    pub fn sqlite_url(&self, name: &str) -> String {
        format!("sqlite://{}", self.0.join(name).display())
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A schema of its own in the test PostgreSQL database, dropped (with its tables) when
/// this is dropped. Pods given [`PgSchema::url`] keep their message log in it.
pub struct PgSchema {
    name: String,
}

/// Runs `f` on a connection to the test database, on a runtime of its own (also from
/// `Drop`, outside any runtime).
fn with_pg<T: Send + 'static>(
    f: impl FnOnce(
            sqlx::PgConnection,
        ) -> futures_util::future::BoxFuture<'static, Result<T, sqlx::Error>>
        + Send
        + 'static,
) -> Result<T, String> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async move {
            let connect = sqlx::PgConnection::connect(&pg_base_url());
            let conn = tokio::time::timeout(std::time::Duration::from_secs(5), connect)
                .await
                .map_err(|_| "no answer in 5 s".to_owned())?
                .map_err(|e| e.to_string())?;
            f(conn).await.map_err(|e| e.to_string())
        })
    })
    .join()
    .map_err(|_| "the database thread panicked".to_owned())?
}

impl PgSchema {
    /// A new empty schema, or `None` (after saying so loudly) when PostgreSQL does not
    /// answer. Under `CI=true` that fails the test.
    pub fn create() -> Option<Self> {
        let name = unique("chatwire_t");
        let sql = format!("CREATE SCHEMA {name}");
        let created = with_pg(move |mut conn| {
            Box::pin(async move {
                sqlx::query(&sql).execute(&mut conn).await?;
                conn.close().await
            })
        });
        match created {
            Ok(()) => Some(Self { name }),
            Err(e) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "PostgreSQL at {} is needed (the scale-out and storage tests keep the \
                     message log there): {e}",
                    pg_base_url()
                );
                eprintln!(
                    "SKIPPED: PostgreSQL at {} does not answer: {e}",
                    pg_base_url()
                );
                None
            }
        }
    }

    /// The `DATABASE_URL` of this schema.
    pub fn url(&self) -> String {
        let base = pg_base_url();
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}options%5Bsearch_path%5D={}", self.name)
    }

    /// Runs `sql` in this schema and returns the first column of every row, as text.
    pub fn query(&self, sql: &str) -> Vec<String> {
        let (schema, sql) = (self.name.clone(), sql.to_owned());
        with_pg(move |mut conn| {
            Box::pin(async move {
                use sqlx::Row;
                sqlx::query(&format!("SET search_path TO {schema}"))
                    .execute(&mut conn)
                    .await?;
                let rows = sqlx::query(&sql).fetch_all(&mut conn).await?;
                let texts = rows
                    .iter()
                    .map(|r| {
                        r.try_get::<String, _>(0)
                            .or_else(|_| r.try_get::<i64, _>(0).map(|n| n.to_string()))
                            .unwrap_or_default()
                    })
                    .collect();
                conn.close().await?;
                Ok(texts)
            })
        })
        .expect("query the test schema")
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        if let Err(e) = with_pg(move |mut conn| {
            Box::pin(async move {
                sqlx::query(&sql).execute(&mut conn).await?;
                conn.close().await
            })
        }) {
            eprintln!("could not drop test schema {}: {e}", self.name);
        }
    }
}

/// The schemas of the Redis servers tests started: pods started with a test Redis
/// server's URL share its schema, as one cluster shares one database.
fn cluster_schemas() -> &'static Mutex<HashMap<String, Arc<PgSchema>>> {
    static SCHEMAS: OnceLock<Mutex<HashMap<String, Arc<PgSchema>>>> = OnceLock::new();
    SCHEMAS.get_or_init(Mutex::default)
}

/// Registers `schema` as the database of the cluster on the test Redis server at `port`.
pub fn register_cluster(port: &str, schema: PgSchema) {
    cluster_schemas()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(port.to_owned(), Arc::new(schema));
}

/// Pods reaching the test Redis server at `port` through `alias` (a proxy) share its
/// cluster's database.
pub fn alias_cluster(alias: u16, port: u16) {
    let mut schemas = cluster_schemas().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(schema) = schemas.get(&port.to_string()).cloned() {
        schemas.insert(alias.to_string(), schema);
    }
}

/// Forgets (and so drops, once no pod holds it) the database of the cluster at `port`,
/// under every alias.
pub fn forget_cluster(port: &str) {
    let mut schemas = cluster_schemas().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(schema) = schemas.remove(port) {
        schemas.retain(|_, other| !Arc::ptr_eq(other, &schema));
    }
}

/// The database of the cluster whose test Redis server `redis_url` points at, if any.
pub fn cluster_schema(redis_url: &str) -> Option<Arc<PgSchema>> {
    let schemas = cluster_schemas().lock().unwrap_or_else(|e| e.into_inner());
    schemas
        .iter()
        .find(|(port, _)| {
            redis_url.contains(&format!("127.0.0.1:{port}/"))
                || redis_url.ends_with(&format!("127.0.0.1:{port}"))
        })
        .map(|(_, schema)| schema.clone())
}
