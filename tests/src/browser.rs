//! A minimal Chrome DevTools Protocol client for the dashboard's end-to-end tests.
//!
//! Starts Debian's Chromium headless (`/usr/bin/chromium`, or `LIFTGUARD_CHROMIUM`) with
//! a fresh profile directory and no network besides what the page asks for, attaches to
//! one page over the DevTools WebSocket and offers the handful of commands the tests need:
//! navigate, evaluate JavaScript, type, click, wait for a condition, full-page PNG
//! screenshots, and the page's uncaught exceptions and `console.error` calls.
//!
//! Why not a driver crate: `chromiumoxide` and `headless_chrome` compile a generated
//! binding of the whole protocol pinned to one Chromium revision (a long build on two
//! shared cores, and typed events that fail on fields a newer Chromium adds);
//! `headless_chrome` also downloads a browser by default. The six commands used here
//! (`Target.*`, `Page.navigate`, `Page.captureScreenshot`, `Runtime.evaluate`,
//! `Input.*`) have been stable for years and are spoken as plain JSON.

use std::{
    collections::HashMap,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use futures::{SinkExt as _, StreamExt as _, stream::SplitSink};
use serde_json::{Value, json};
use tokio::{net::TcpStream, sync::oneshot};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The Chromium binary: `LIFTGUARD_CHROMIUM`, else `chromium` on the PATH or in /usr/bin.
pub fn chromium_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LIFTGUARD_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .flat_map(|d| [d.join("chromium"), d.join("chromium-browser")])
        .find(|p| p.is_file())
}

struct Conn {
    sink: tokio::sync::Mutex<SplitSink<Ws, Message>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>,
    next_id: AtomicU64,
    /// Uncaught exceptions and console errors of the page.
    errors: Mutex<Vec<String>>,
}

/// A headless Chromium with one page. Killed on drop.
pub struct Browser {
    child: Child,
    profile: PathBuf,
    conn: Arc<Conn>,
    session: String,
    reader: tokio::task::JoinHandle<()>,
    width: u32,
    height: u32,
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.reader.abort();
        kill_group(&mut self.child);
        // The browser's helper processes are gone with its group: the profile is free.
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Kills Chromium and its helper processes (renderers, zygote: one process group).
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

fn describe_exception(p: &Value) -> String {
    let d = &p["exceptionDetails"];
    d["exception"]["description"]
        .as_str()
        .or_else(|| d["text"].as_str())
        .unwrap_or("exception")
        .to_owned()
}

impl Browser {
    /// Starts Chromium with a `width` × `height` viewport and attaches to a blank page.
    pub async fn launch(width: u32, height: u32) -> anyhow::Result<Browser> {
        let bin = chromium_path().context(
            "Chromium not found: install Debian's `chromium` (scripts/test.sh does) or set LIFTGUARD_CHROMIUM",
        )?;
        let profile = std::env::temp_dir().join(format!(
            "liftguard-chromium-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_nanos()
        ));
        std::fs::create_dir_all(&profile)?;
        let child = Command::new(&bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--disable-dev-shm-usage",
                "--mute-audio",
                "--hide-scrollbars",
                "--force-device-scale-factor=1",
                "--remote-debugging-port=0",
                &format!("--window-size={width},{height}"),
                &format!("--user-data-dir={}", profile.display()),
                "about:blank",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so dropping the browser ends its helpers too.
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut browser_guard = ChildGuard(Some(child));
        let ws_url = devtools_url(&profile, Duration::from_secs(30)).await?;
        let (ws, _) = tokio_tungstenite::connect_async(ws_url.as_str())
            .await
            .with_context(|| format!("connecting to {ws_url}"))?;
        let (sink, mut stream) = ws.split();
        let conn = Arc::new(Conn {
            sink: tokio::sync::Mutex::new(sink),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            errors: Mutex::new(Vec::new()),
        });
        let c = conn.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(text) = msg else { continue };
                let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
                    continue;
                };
                if let Some(id) = v["id"].as_u64() {
                    let tx = c.pending.lock().ok().and_then(|mut p| p.remove(&id));
                    if let Some(tx) = tx {
                        let r = match v.get("error") {
                            Some(e) => Err(e.to_string()),
                            None => Ok(v["result"].clone()),
                        };
                        let _ = tx.send(r);
                    }
                    continue;
                }
                let entry = match v["method"].as_str() {
                    Some("Runtime.exceptionThrown") => {
                        Some(format!("uncaught: {}", describe_exception(&v["params"])))
                    }
                    Some("Runtime.consoleAPICalled") if v["params"]["type"] == "error" => {
                        let args: Vec<String> = v["params"]["args"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|a| {
                                a["value"]
                                    .as_str()
                                    .map(str::to_owned)
                                    .or_else(|| a["description"].as_str().map(str::to_owned))
                                    .unwrap_or_else(|| a.to_string())
                            })
                            .collect();
                        Some(format!("console.error: {}", args.join(" ")))
                    }
                    _ => None,
                };
                if let (Some(e), Ok(mut errors)) = (entry, c.errors.lock()) {
                    errors.push(e);
                }
            }
        });
        let child = browser_guard.0.take().context("chromium child")?;
        let mut b = Browser {
            child,
            profile,
            conn,
            session: String::new(),
            reader,
            width,
            height,
        };
        let target = b
            .raw_call(None, "Target.createTarget", json!({"url": "about:blank"}))
            .await?;
        let target_id = target["targetId"]
            .as_str()
            .context("Target.createTarget: no targetId")?
            .to_owned();
        let attached = b
            .raw_call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
            )
            .await?;
        b.session = attached["sessionId"]
            .as_str()
            .context("Target.attachToTarget: no sessionId")?
            .to_owned();
        b.call("Page.enable", json!({})).await?;
        b.call("Runtime.enable", json!({})).await?;
        b.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await?;
        Ok(b)
    }

    async fn raw_call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> anyhow::Result<Value> {
        let id = self.conn.next_id.fetch_add(1, Ordering::Relaxed);
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = Value::String(s.to_owned());
        }
        let (tx, rx) = oneshot::channel();
        self.conn
            .pending
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .insert(id, tx);
        self.conn
            .sink
            .lock()
            .await
            .send(Message::Text(msg.to_string().into()))
            .await
            .with_context(|| format!("sending {method}"))?;
        match tokio::time::timeout(Duration::from_secs(60), rx).await {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(e))) => bail!("{method} failed: {e}"),
            Ok(Err(_)) => bail!("{method}: the browser closed the connection"),
            Err(_) => bail!("{method}: no answer within 60 s"),
        }
    }

    /// A CDP command on the page.
    pub async fn call(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.raw_call(Some(&self.session), method, params).await
    }

    /// Evaluates `expr` in the page (promises awaited) and returns its JSON value.
    pub async fn eval(&self, expr: &str) -> anyhow::Result<Value> {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
            )
            .await?;
        if r.get("exceptionDetails").is_some() {
            bail!("`{expr}` threw: {}", describe_exception(&r));
        }
        Ok(r["result"]["value"].clone())
    }

    /// Loads `url` and waits for the document to finish loading.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        let r = self.call("Page.navigate", json!({"url": url})).await?;
        if let Some(e) = r["errorText"].as_str() {
            bail!("navigating to {url}: {e}");
        }
        self.wait_for(
            "document.readyState === 'complete'",
            Duration::from_secs(30),
        )
        .await?;
        Ok(())
    }

    /// Polls `expr` every 50 ms until it is truthy; returns its value.
    pub async fn wait_for(&self, expr: &str, timeout: Duration) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let v = self.eval(expr).await?;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return Ok(v);
            }
            if tokio::time::Instant::now() > deadline {
                let state = self
                    .eval("document.getElementById('view')?.dataset.state + ' | ' + document.body.innerText.slice(0, 400)")
                    .await
                    .unwrap_or_default();
                bail!("timed out after {timeout:?} waiting for `{expr}`; page: {state}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Focuses the element matching `selector`, clears it and types `text`.
    pub async fn type_into(&self, selector: &str, text: &str) -> anyhow::Result<()> {
        let sel = serde_json::to_string(selector)?;
        let found = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({sel}); if (!e) return false; e.focus(); e.value = ''; return true; }})()"
            ))
            .await?;
        anyhow::ensure!(found == Value::Bool(true), "no element `{selector}`");
        self.call("Input.insertText", json!({"text": text})).await?;
        Ok(())
    }

    /// Clicks the centre of the element matching `selector` with the mouse.
    pub async fn click(&self, selector: &str) -> anyhow::Result<()> {
        let sel = serde_json::to_string(selector)?;
        let r = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({sel}); if (!e) return null; e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
            ))
            .await?;
        let (Some(x), Some(y)) = (r[0].as_f64(), r[1].as_f64()) else {
            bail!("no element `{selector}` to click");
        };
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            )
            .await?;
        }
        Ok(())
    }

    /// Writes a PNG of the whole page (not just the viewport) to `path`.
    pub async fn screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let size = self
            .eval("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            .await?;
        let w = size[0].as_f64().unwrap_or(f64::from(self.width));
        let h = size[1]
            .as_f64()
            .unwrap_or(f64::from(self.height))
            .min(12_000.0);
        let r = self
            .call(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": {"x": 0, "y": 0, "width": w, "height": h, "scale": 1},
                }),
            )
            .await?;
        let data = r["data"].as_str().context("no screenshot data")?;
        let png = base64::engine::general_purpose::STANDARD.decode(data)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png)?;
        Ok(())
    }

    /// Uncaught exceptions and `console.error` calls of the page so far.
    pub fn page_errors(&self) -> Vec<String> {
        self.conn
            .errors
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default()
    }
}

/// Kills the browser if launching fails half-way.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            kill_group(&mut c);
        }
    }
}

/// The browser's DevTools WebSocket URL, from the `DevToolsActivePort` file Chromium
/// writes into its profile once it listens.
async fn devtools_url(profile: &Path, timeout: Duration) -> anyhow::Result<String> {
    let file = profile.join("DevToolsActivePort");
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(text) = std::fs::read_to_string(&file) {
            let mut lines = text.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next())
                && !port.is_empty()
                && path.starts_with("/devtools/")
            {
                return Ok(format!("ws://127.0.0.1:{port}{path}"));
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "Chromium did not open its DevTools port within {timeout:?} ({} missing)",
                file.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
