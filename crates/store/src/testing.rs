//! Test support for this crate's tests and the end-to-end tests: throwaway PostgreSQL
//! databases and a TimescaleDB (pglite) server process.
//!
//! Invariants:
//! - [`PgTestDb`] creates a uniquely named database and drops it on [`PgTestDb::drop`] or,
//!   best effort, when dropped (`DROP DATABASE ... WITH (FORCE)`).
//! - [`PgliteServer`] is ready when `start` returns (it waited for the server's `READY`
//!   line, no sleeps) and its process dies with the handle (killed on drop; the server
//!   also exits when its stdin closes, i.e. when this process dies).
//! - Nothing is skipped silently: a missing harness is an error telling what to install.

pub mod bulk;
pub mod synth;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// Writes a generated population: its gyms (id = slug = name), its athletes under their
/// own ids ([`insert_athlete_with_id`]), and its reps in batches.
pub async fn seed_population(
    store: &crate::Store,
    gyms: &[String],
    athletes: &[liftguard_proto::v1::Athlete],
    reps: &[liftguard_proto::v1::RepRecord],
) -> Result<(), crate::StoreError> {
    for g in gyms {
        store.create_gym(g, g).await?;
    }
    for a in athletes {
        insert_athlete_with_id(store, a).await?;
    }
    for chunk in reps.chunks(2_000) {
        store.upsert_reps(chunk).await?;
    }
    Ok(())
}

/// Enrolls `a` under the id `a.athlete_id` as given (the Registry picks random ids; tests
/// and benchmarks that compare backends need the same ids everywhere), on any backend,
/// through the registry's own enrollment.
pub async fn insert_athlete_with_id(
    store: &crate::Store,
    a: &liftguard_proto::v1::Athlete,
) -> Result<(), crate::StoreError> {
    let gym = liftguard_model::GymId::parse(a.gym_id.clone())
        .map_err(|e| crate::StoreError::invalid("athlete.gym_id", e.to_string()))?;
    let enrolled = store.enroll_athlete_as(&gym, a, &a.athlete_id).await?;
    if enrolled.athlete_id != a.athlete_id {
        return Err(crate::StoreError::invalid(
            "athlete.external_ref",
            format!(
                "already enrolled as {} in gym {}",
                enrolled.athlete_id, a.gym_id
            ),
        ));
    }
    Ok(())
}

/// Default server for [`PgTestDb`]; override with env `LIFTGUARD_TEST_PG_URL`.
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// How long [`PgliteServer::start`] waits for the server to listen.
const PGLITE_READY_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum TestSupportError {
    #[error("the pglite harness is not installed: run `npm ci` in {0} (needs node and npm)")]
    NotInstalled(PathBuf),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("bad url {0:?}")]
    BadUrl(String),
    #[error("pglite server did not become ready: {0}")]
    NotReady(String),
}

/// A uniquely named, empty PostgreSQL database.
#[derive(Debug)]
pub struct PgTestDb {
    base: String,
    name: String,
    url: String,
    dropped: bool,
}

static DB_SEQ: AtomicU64 = AtomicU64::new(0);

impl PgTestDb {
    /// Creates `lg_test_<pid>_<time>_<seq>` on `LIFTGUARD_TEST_PG_URL` (default
    /// [`DEFAULT_PG_URL`]).
    pub async fn create() -> Result<PgTestDb, TestSupportError> {
        Self::create_with("").await
    }

    /// Like [`PgTestDb::create`], appending `options` to `CREATE DATABASE` (e.g.
    /// `"TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"`).
    pub async fn create_with(options: &'static str) -> Result<PgTestDb, TestSupportError> {
        let base = std::env::var("LIFTGUARD_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.into());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = format!(
            "lg_test_{}_{nanos}_{}",
            std::process::id(),
            DB_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let url = with_database(&base, &name)?;
        let mut admin = PgConnection::connect(&base).await?;
        // The name is built from digits and underscores only; options are static text.
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE DATABASE \"{name}\" {options}"
        )))
        .execute(&mut admin)
        .await?;
        admin.close().await?;
        Ok(PgTestDb {
            base,
            name,
            url,
            dropped: false,
        })
    }

    /// `postgres://.../<name>` of the new database.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database (terminating remaining connections).
    pub async fn drop(mut self) -> Result<(), TestSupportError> {
        self.dropped = true;
        drop_database(&self.base, &self.name).await
    }
}

impl Drop for PgTestDb {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (base, name) = (self.base.clone(), self.name.clone());
        // Best effort, on a thread of its own so it works inside and outside a runtime.
        let joined = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), drop_database(&base, &name))
                    .await
                    .map_err(|_| std::io::Error::other("timeout"))?
                    .map_err(std::io::Error::other)
            })
        })
        .join();
        if !matches!(joined, Ok(Ok(()))) {
            tracing::warn!(db = self.name, "could not drop test database");
        }
    }
}

async fn drop_database(base: &str, name: &str) -> Result<(), TestSupportError> {
    let mut admin = PgConnection::connect(base).await?;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    admin.close().await?;
    Ok(())
}

/// Replaces the database (path) of a `postgres://` URL, keeping its query string.
fn with_database(base: &str, db: &str) -> Result<String, TestSupportError> {
    let bad = || TestSupportError::BadUrl(base.to_owned());
    let (main, query) = match base.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (base, None),
    };
    let scheme_end = main.find("://").ok_or_else(bad)? + 3;
    let authority_end = main[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(main.len());
    let mut url = format!("{}/{db}", &main[..authority_end]);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    Ok(url)
}

/// TimescaleDB 2.23 in WASM PostgreSQL 17 (`tests/pglite/server.mjs`), on 127.0.0.1.
/// One client connection at a time: connect with `max_connections = 1`.
pub struct PgliteServer {
    child: Child,
    _stdin: Option<ChildStdin>,
    port: u16,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl std::fmt::Debug for PgliteServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgliteServer")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// The repository root (this crate is `crates/store`).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..")
}

impl PgliteServer {
    /// `tests/pglite` of the repository.
    pub fn harness_dir() -> PathBuf {
        repo_root().join("tests").join("pglite")
    }

    /// Spawns `node tests/pglite/server.mjs 0` (env `LIFTGUARD_NODE` overrides `node`) and
    /// waits until it listens. Errors when the harness's `node_modules` is missing.
    pub async fn start() -> Result<PgliteServer, TestSupportError> {
        let dir = Self::harness_dir();
        if !dir
            .join("node_modules")
            .join("@unni-craftsman")
            .join("pglite")
            .is_dir()
            || !dir
                .join("node_modules")
                .join("@electric-sql")
                .join("pglite-socket")
                .is_dir()
        {
            return Err(TestSupportError::NotInstalled(dir));
        }
        let node = std::env::var("LIFTGUARD_NODE").unwrap_or_else(|_| "node".into());
        let mut child = Command::new(node)
            .arg("server.mjs")
            .arg("0")
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| TestSupportError::NotReady("no stdout".into()))?;
        let stderr_pipe = child
            .stderr
            .take()
            .ok_or_else(|| TestSupportError::NotReady("no stderr".into()))?;
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        {
            let stderr = stderr.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr_pipe).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::debug!(target: "pglite", "{line}");
                    if let Ok(mut buf) = stderr.lock() {
                        if buf.len() >= 50 {
                            buf.pop_front();
                        }
                        buf.push_back(line);
                    }
                }
            });
        }
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(PGLITE_READY_TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(p) = line.trim().strip_prefix("READY ") {
                    return p
                        .parse::<u16>()
                        .map_err(|_| TestSupportError::NotReady(format!("bad line {line:?}")));
                }
                tracing::debug!(target: "pglite", "{line}");
            }
            Err(TestSupportError::NotReady("server exited".into()))
        })
        .await;
        let tail = |stderr: &Arc<Mutex<VecDeque<String>>>| {
            stderr
                .lock()
                .map(|b| b.iter().cloned().collect::<Vec<_>>().join("\n"))
                .unwrap_or_default()
        };
        let port = match ready {
            Ok(Ok(port)) => port,
            Ok(Err(e)) => {
                // Let the stderr reader catch up with the exit before reporting it.
                let _ = child.wait().await;
                return Err(TestSupportError::NotReady(format!(
                    "{e}; stderr:\n{}",
                    tail(&stderr)
                )));
            }
            Err(_) => {
                return Err(TestSupportError::NotReady(format!(
                    "no READY within {PGLITE_READY_TIMEOUT:?}; stderr:\n{}",
                    tail(&stderr)
                )));
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(target: "pglite", "{line}");
            }
        });
        Ok(PgliteServer {
            child,
            _stdin: stdin,
            port,
            stderr,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres:postgres@127.0.0.1:<port>/postgres?sslmode=disable`.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres:postgres@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    /// The server's last stderr lines (diagnostics).
    pub fn stderr_tail(&self) -> Vec<String> {
        self.stderr
            .lock()
            .map(|b| b.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Kills the server and waits for it to exit.
    pub async fn stop(mut self) -> Result<(), TestSupportError> {
        self.child.kill().await?;
        Ok(())
    }
}

impl Drop for PgliteServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x").unwrap(),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h:1?sslmode=disable", "x").unwrap(),
            "postgres://u:p@h:1/x?sslmode=disable"
        );
        assert!(with_database("nonsense", "x").is_err());
    }
}
