//! Support for the end-to-end tests: running `liftguard` as real processes, reading
//! their metrics, and waiting on conditions with deadlines (never sleeping as sync).
#![allow(clippy::unwrap_used)]

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, bail};

pub mod browser;

/// The `liftguard` binary built alongside the tests (`cargo test --workspace` and
/// `cargo nextest run --workspace` build it; `LIFTGUARD_BIN` overrides).
pub fn liftguard_bin() -> PathBuf {
    if let Ok(p) = std::env::var("LIFTGUARD_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/<test-exe> -> target/<profile>/liftguard
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let bin = dir.join("liftguard");
    assert!(
        bin.exists(),
        "{} not found: build it with `cargo build -p liftguard` (or set LIFTGUARD_BIN)",
        bin.display()
    );
    bin
}

/// Runs `liftguard <args>` to completion; its stdout, or an error with its stderr.
pub fn run_cli(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(liftguard_bin()).args(args).output()?;
    anyhow::ensure!(
        out.status.success(),
        "liftguard {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A running `liftguard` role. Killed (SIGKILL) on drop unless stopped.
pub struct Role {
    pub name: String,
    child: Child,
    pub grpc: Option<String>,
    pub http: String,
    /// The dashboard's base URL, when the role serves it (`--dashboard-addr`).
    pub dashboard: Option<String>,
    stderr_tail: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Role {
    /// Starts `liftguard <args>` and waits for its `LISTENING` line.
    pub fn start(name: &str, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Role> {
        Self::start_observed(name, args, env, |_| {})
    }

    /// [`Role::start`], also handing every stderr line to `observe` (on the thread that
    /// reads the role's stderr), e.g. to collect values a role logs.
    pub fn start_observed(
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
        observe: impl Fn(&str) + Send + 'static,
    ) -> anyhow::Result<Role> {
        let mut cmd = Command::new(liftguard_bin());
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().with_context(|| format!("spawning {name}"))?;
        let stderr = child.stderr.take().unwrap();
        let tail = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let t = tail.clone();
        let prefix = name.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                observe(&line);
                if std::env::var_os("LIFTGUARD_TEST_VERBOSE").is_some() {
                    eprintln!("[{prefix}] {line}");
                }
                let mut t = t.lock().unwrap();
                t.push(line);
                if t.len() > 200 {
                    t.remove(0);
                }
            }
        });
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let listening = loop {
            match lines.next() {
                Some(Ok(l)) if l.starts_with("LISTENING") => break l,
                Some(Ok(_)) => continue,
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!(
                        "{name} exited before listening; stderr:\n{}",
                        tail.lock().unwrap().join("\n")
                    );
                }
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let kv: HashMap<&str, &str> = listening
            .split_whitespace()
            .skip(1)
            .filter_map(|p| p.split_once('='))
            .collect();
        Ok(Role {
            name: name.to_owned(),
            grpc: kv.get("grpc").map(|a| format!("http://{a}")),
            http: format!("http://{}", kv.get("http").context("no http address")?),
            dashboard: kv.get("dashboard").map(|a| format!("http://{a}")),
            child,
            stderr_tail: tail,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits for a clean exit (status 0) within `timeout`.
    pub fn terminate(mut self, timeout: Duration) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM failed");
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait()? {
                anyhow::ensure!(
                    st.success(),
                    "{} exited with {st}; stderr:\n{}",
                    self.name,
                    self.stderr()
                );
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                bail!("{} did not stop within {timeout:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// kill -9.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn stderr(&self) -> String {
        self.stderr_tail.lock().unwrap().join("\n")
    }

    /// The role's Prometheus metrics, as `name{labels}` → value.
    pub async fn metrics(&self) -> anyhow::Result<HashMap<String, f64>> {
        let body = reqwest::get(format!("{}/metrics", self.http))
            .await?
            .text()
            .await?;
        Ok(parse_metrics(&body))
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses the Prometheus text format into `series → value`.
pub fn parse_metrics(body: &str) -> HashMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// Sum of every series of a metric (all label values).
pub fn metric_sum(m: &HashMap<String, f64>, name: &str) -> f64 {
    m.iter()
        .filter(|(k, _)| *k == name || k.starts_with(&format!("{name}{{")))
        .map(|(_, v)| v)
        .sum()
}

/// Polls `check` every 50 ms until it returns `Some`, or fails after `timeout` with the
/// last state `describe`d.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Result<T, String>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last: String;
    loop {
        match check().await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(state)) => last = state,
            Err(e) => last = format!("{e:#}"),
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}; last state: {last}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
