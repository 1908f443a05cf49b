//! The live page in a real browser: Debian's headless Chromium, driven over the DevTools
//! protocol (a few commands over a WebSocket, so no browser-driving crate and nothing
//! downloaded). It opens a machine's live page, posts a plan and events, and checks that
//! the page follows without a reload, that runner text stays text, and that no request
//! leaves for another host.
//!
//! Skip rule: no Chromium on `PATH` → a loud "skipped" line, unless `STPT_TEST_INTEGRATION=1`
//! (CI), where a missing Chromium fails the test. `.ci/run` installs the `chromium` package.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

mod support;

use chrono::{TimeZone, Utc};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stpt_core::{InProcessBus, ManualClock, Tracker};
use stpt_http::HttpConfig;
use stpt_store_memory::MemoryStore;
use support::{XSS_NAME, post, serve, small_plan, start, stop};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const BROWSERS: [&str; 3] = ["chromium", "chromium-browser", "google-chrome"];

fn find_browser() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| BROWSERS.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// A headless Chromium with a fresh profile, killed and cleaned up on drop.
struct Browser {
    child: Child,
    profile: PathBuf,
    devtools: String,
}

impl Browser {
    async fn launch(binary: &PathBuf) -> Browser {
        let profile = std::env::temp_dir().join(format!(
            "stpt-chromium-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&profile).unwrap();
        let mut child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-dev-shm-usage",
                "--disable-component-update",
                "--disable-sync",
                "--no-default-browser-check",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let devtools = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return url.trim().to_owned();
                }
            }
            panic!("chromium exited before it listened for DevTools");
        })
        .await
        .expect("chromium did not start within 30 s");
        // Keep draining stderr so the browser never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Browser {
            child,
            profile,
            devtools,
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Stop the browser before removing its profile, or it writes the profile back.
        let _ = self.child.start_kill();
        for _ in 0..50 {
            if !matches!(self.child.try_wait(), Ok(None)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A DevTools session on one page: commands in, responses and events out.
struct Page {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    session: Option<String>,
    next_id: u64,
    events: Vec<Value>,
}

impl Page {
    async fn open(browser: &Browser) -> Page {
        let (socket, _) = tokio_tungstenite::connect_async(browser.devtools.as_str())
            .await
            .unwrap();
        let mut page = Page {
            socket,
            session: None,
            next_id: 0,
            events: Vec::new(),
        };
        let target = page
            .call("Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let attached = page
            .call(
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        page.session = Some(attached["sessionId"].as_str().unwrap().to_owned());
        for domain in [
            "Network.enable",
            "Page.enable",
            "Runtime.enable",
            "Log.enable",
        ] {
            page.call(domain, json!({})).await;
        }
        page
    }

    /// Sends a command and waits for its answer, keeping the events that come meanwhile.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        match self.try_call(method, params).await {
            Ok(result) => result,
            Err(error) => panic!("{method} failed: {error}"),
        }
    }

    /// [`Page::call`], with the protocol's error (e.g. "navigated", mid-navigation) as `Err`.
    async fn try_call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut command = json!({"id": id, "method": method, "params": params});
        if let Some(session) = &self.session {
            command["sessionId"] = json!(session);
        }
        self.socket
            .send(Message::text(command.to_string()))
            .await
            .unwrap();
        let deadline = Duration::from_secs(15);
        tokio::time::timeout(deadline, async {
            loop {
                let message = self.socket.next().await.unwrap().unwrap();
                let Message::Text(text) = message else {
                    continue;
                };
                let value: Value = serde_json::from_str(&text).unwrap();
                if value["id"] == id {
                    if let Some(error) = value.get("error") {
                        return Err(error.clone());
                    }
                    return Ok(value["result"].clone());
                }
                if value.get("method").is_some() {
                    self.events.push(value);
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{method} got no answer (events: {:?})", self.dialogs()))
    }

    async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
            )
            .await;
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("`{expression}` threw: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Evaluates `expression` and waits for the promise it gives.
    async fn eval_promise(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("`{expression}` threw: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Waits until `expression` is `true` in the page, polling through navigations (while the
    /// page changes, evaluating may fail or throw; that is not an answer yet).
    async fn wait_for(&mut self, expression: &str) {
        let started = Instant::now();
        loop {
            let answer = self
                .try_call(
                    "Runtime.evaluate",
                    json!({"expression": expression, "returnByValue": true}),
                )
                .await;
            if answer.is_ok_and(|result| result["result"]["value"] == json!(true)) {
                return;
            }
            if started.elapsed() > Duration::from_secs(10) {
                let body = self.eval("document.body.innerText").await;
                panic!("timed out waiting for `{expression}`; the page reads:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the page's live connection says it is live.
    async fn wait_live(&mut self) {
        self.wait_for("document.getElementById('live-state').dataset.state === 'live'")
            .await;
    }

    async fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url})).await;
        self.wait_for("document.readyState === 'complete'").await;
    }

    /// Saves a PNG of the page when `STPT_TEST_SCREENSHOTS` names a folder (for people).
    async fn screenshot(&mut self, name: &str) {
        let Some(dir) = std::env::var_os("STPT_TEST_SCREENSHOTS") else {
            return;
        };
        let shot = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let png = decode_base64(shot["data"].as_str().unwrap());
        std::fs::write(PathBuf::from(dir).join(format!("{name}.png")), png).unwrap();
    }

    fn events_named<'a>(&'a self, method: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.events
            .iter()
            .filter(move |event| event["method"] == method)
    }

    fn dialogs(&self) -> Vec<&Value> {
        self.events_named("Page.javascriptDialogOpening").collect()
    }
}

/// A TCP proxy in front of the server whose connections can be cut and refused.
struct Proxy {
    base: String,
    refuse: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(server: &str) -> Proxy {
        let target = server.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let refuse = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let (refusing, open) = (Arc::clone(&refuse), Arc::clone(&connections));
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if refusing.load(Ordering::SeqCst) {
                    continue; // dropped: the browser sees the connection close
                }
                let target = target.clone();
                let handle = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                open.lock().unwrap().push(handle);
            }
        });
        Proxy {
            base,
            refuse,
            connections,
        }
    }

    /// Closes every open connection and refuses new ones.
    fn cut(&self) {
        self.refuse.store(true, Ordering::SeqCst);
        for handle in self.connections.lock().unwrap().drain(..) {
            handle.abort();
        }
    }

    fn restore(&self) {
        self.refuse.store(false, Ordering::SeqCst);
    }
}

fn decode_base64(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in text.bytes().filter(|b| *b != b'=') {
        let value = ALPHABET.iter().position(|c| *c == byte).unwrap() as u32;
        buffer = (buffer << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

/// The text of the live page's cell counting `status`.
fn count(status: &str) -> String {
    format!("document.querySelector('td[data-count=\"{status}\"]').textContent")
}

/// The status of the test named `name` on the live page.
fn test_status(name: &str) -> String {
    format!(
        "(Array.from(document.querySelectorAll('li.test')).find(li => li.querySelector('a').textContent === {name}) || {{dataset: {{}}}}).dataset.status",
        name = json!(name)
    )
}

/// The browser to drive, or `None` (with a line saying so) where none is installed and
/// integration tests are not required.
fn browser_or_skip() -> Option<PathBuf> {
    let binary = find_browser();
    if binary.is_none() {
        if std::env::var("STPT_TEST_INTEGRATION").as_deref() == Ok("1") {
            panic!(
                "chromium not found on PATH and STPT_TEST_INTEGRATION=1: install the `chromium` package"
            );
        }
        eprintln!(
            "\n!!!!! skipped: chromium not found (install the `chromium` package; STPT_TEST_INTEGRATION=1 makes this a failure) !!!!!\n"
        );
    }
    binary
}

#[tokio::test]
async fn admin_signs_in_and_creates_a_runner_token_in_headless_chromium() {
    let Some(binary) = browser_or_skip() else {
        return;
    };
    let store = Arc::new(MemoryStore::new());
    let tracker = Tracker::new(Arc::clone(&store) as _, Arc::new(InProcessBus::new()));
    let accounts = stpt_core::accounts::Accounts::new(store);
    accounts
        .create_user(
            "ada",
            None,
            "correct horse",
            stpt_core::accounts::Role::Admin,
        )
        .await
        .unwrap();
    // Tokens only: the token made in the browser is what lets the runner in.
    let base = serve(stpt_http::router(
        tracker,
        &HttpConfig::default().with_accounts(accounts),
    ))
    .await;
    let plan = small_plan("rig-7", "2026-11-24 13:00:00");
    assert_eq!(post(&base, "/tm_api/dry_run/", &plan).await.0, 401);

    let browser = Browser::launch(&binary).await;
    let mut page = Page::open(&browser).await;
    page.navigate(&format!("{base}/admin/")).await;
    page.wait_for(
        "location.pathname === '/login/' && !!document.querySelector('input[name=password]')",
    )
    .await;
    page.eval(
        "document.querySelector('input[name=username]').value = 'ada';\
         document.querySelector('input[name=password]').value = 'correct horse';\
         document.querySelector('form.stacked').requestSubmit(); true",
    )
    .await;
    page.wait_for("location.pathname === '/admin/' && !!document.getElementById('create-token')")
        .await;
    assert_eq!(
        page.eval("document.querySelector('.account .who').textContent")
            .await,
        "ada"
    );
    assert_eq!(
        page.eval("document.cookie.includes('stpt_session')").await,
        false,
        "the session cookie is HttpOnly"
    );
    page.screenshot("admin").await;
    page.eval(
        "const form = document.getElementById('create-token');\
         form.querySelector('input[name=name]').value = 'rig 7 runner';\
         form.querySelector('textarea[name=machines]').value = 'rig-7';\
         form.requestSubmit(); true",
    )
    .await;
    page.wait_for("!!document.getElementById('token-secret')")
        .await;
    page.screenshot("token-created").await;
    let secret = page
        .eval("document.getElementById('token-secret').textContent")
        .await;
    let secret = secret.as_str().unwrap().to_owned();
    assert!(secret.starts_with("stpt_"), "{secret}");

    let answer = reqwest::Client::new()
        .post(format!("{base}/tm_api/dry_run/"))
        .bearer_auth(&secret)
        .json(&plan)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201);
    page.navigate(&format!("{base}/admin/")).await;
    assert_eq!(
        page.eval("document.querySelector('table.tokens tbody tr td').textContent")
            .await,
        "rig 7 runner"
    );
    assert!(page.dialogs().is_empty(), "no alert ran");
}

/// A user changes their own password from the top bar's link, and an admin sets another
/// user's email and password from the admin page; both pages pass the accessibility check.
#[tokio::test]
async fn passwords_change_from_the_top_bar_and_the_admin_page_in_headless_chromium() {
    let Some(binary) = browser_or_skip() else {
        return;
    };
    let store = Arc::new(MemoryStore::new());
    let tracker = Tracker::new(Arc::clone(&store) as _, Arc::new(InProcessBus::new()));
    let accounts = stpt_core::accounts::Accounts::new(store);
    use stpt_core::accounts::Role;
    accounts
        .create_user("ada", None, "correct horse", Role::Admin)
        .await
        .unwrap();
    let bob = accounts
        .create_user("bob", None, "bob's password", Role::Viewer)
        .await
        .unwrap();
    let base = serve(stpt_http::router(
        tracker,
        &HttpConfig::default().with_accounts(accounts.clone()),
    ))
    .await;
    let browser = Browser::launch(&binary).await;
    let mut page = Page::open(&browser).await;
    page.navigate(&format!("{base}/login/")).await;
    page.eval(
        "document.querySelector('input[name=username]').value = 'ada';\
         document.querySelector('input[name=password]').value = 'correct horse';\
         document.querySelector('form.stacked').requestSubmit(); true",
    )
    .await;
    page.wait_for("location.pathname === '/' && !!document.querySelector('.account .who')")
        .await;
    page.eval("document.querySelector('.account a[href=\"/account/password/\"]').click(); true")
        .await;
    page.wait_for("location.pathname === '/account/password/'")
        .await;
    page.eval(
        "document.querySelector('input[name=current_password]').value = 'correct horse';\
         document.querySelector('input[name=password]').value = 'battery staple';\
         document.querySelector('input[name=password_again]').value = 'battery staple';\
         document.querySelector('form.stacked').requestSubmit(); true",
    )
    .await;
    page.wait_for("!!document.getElementById('password-changed')")
        .await;
    page.screenshot("password-changed").await;
    assert!(
        accounts
            .sign_in("ada", "battery staple")
            .await
            .unwrap()
            .is_some()
    );
    let mut found = Vec::new();
    let axe = axe_or_skip();
    if let Some(axe) = &axe {
        found.extend(violations(&mut page, axe, "/account/password/").await);
    }

    page.navigate(&format!("{base}/admin/")).await;
    page.eval(&format!(
        "const row = document.querySelector('tr[data-user-id=\"{id}\"]');\
         row.querySelector('input[name=email]').value = 'bob@lab.example';\
         row.querySelector('input[name=email]').form.requestSubmit(); true",
        id = bob.id
    ))
    .await;
    page.wait_for(
        "location.search === '?done=email-changed' && document.readyState === 'complete'",
    )
    .await;
    page.eval(&format!(
        "const row = document.querySelector('tr[data-user-id=\"{id}\"]');\
         row.querySelector('details').open = true;\
         row.querySelector('input[name=password]').value = 'set by ada';\
         row.querySelector('input[name=password]').form.requestSubmit(); true",
        id = bob.id
    ))
    .await;
    page.wait_for("location.search === '?done=password-set' && document.readyState === 'complete'")
        .await;
    page.eval(&format!(
        "document.querySelector('tr[data-user-id=\"{}\"] details').open = true; true",
        bob.id
    ))
    .await;
    page.screenshot("admin-users").await;
    let stored = accounts.user(bob.id).await.unwrap().unwrap();
    assert_eq!(stored.email.as_deref(), Some("bob@lab.example"));
    assert!(
        accounts
            .sign_in("bob", "set by ada")
            .await
            .unwrap()
            .is_some()
    );
    if let Some(axe) = &axe {
        found.extend(violations(&mut page, axe, "/admin/").await);
    }
    assert!(
        found.is_empty(),
        "accessibility violations:\n{}",
        found.join("\n")
    );
    assert!(page.dialogs().is_empty(), "no alert ran");
}

/// The serious and critical accessibility violations axe finds on the page now shown.
async fn violations(page: &mut Page, axe: &str, label: &str) -> Vec<String> {
    page.eval(axe).await;
    let violations = page
        .eval_promise(
            "axe.run(document, {resultTypes: ['violations']}).then(r => r.violations\
             .filter(v => v.impact === 'serious' || v.impact === 'critical')\
             .map(v => v.id + ' (' + v.impact + '): ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | ')))",
        )
        .await;
    violations
        .as_array()
        .unwrap()
        .iter()
        .map(|violation| format!("{label}: {}", violation.as_str().unwrap()))
        .collect()
}

#[tokio::test]
async fn live_page_follows_a_run_in_headless_chromium() {
    let Some(binary) = browser_or_skip() else {
        return;
    };

    // The server's clock reads the time the runner's events carry: runs start and stop on it.
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 24, 14, 1, 0).unwrap(),
    ));
    let tracker = Tracker::new(Arc::new(MemoryStore::new()), Arc::new(InProcessBus::new()))
        .with_clock(Arc::clone(&clock) as _);
    let server = serve(support::open_router(tracker, HttpConfig::default())).await;
    // The browser reaches the server through a proxy that can cut its connections.
    let proxy = Proxy::start(&server).await;
    let base = proxy.base.clone();
    let machine = "rig-1";
    let (status, _) = post(
        &base,
        "/tm_api/dry_run/",
        &small_plan(machine, "2026-11-24 13:00:00"),
    )
    .await;
    assert_eq!(status, 201);

    let browser = Browser::launch(&binary).await;
    let mut page = Page::open(&browser).await;
    page.navigate(&format!("{base}/machine/1/last")).await;
    page.wait_live().await;
    assert_eq!(
        page.eval("document.getElementById('run').dataset.runId")
            .await,
        "1"
    );
    page.eval("window.stptNoReload = 'still here'").await;

    // A new plan replaces the run on the page, without a reload.
    let (status, created) = post(
        &base,
        "/api/v1/plans",
        &small_plan(machine, "2026-11-24 14:00:00"),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(created["run_id"], 2);
    page.wait_for("document.getElementById('run').dataset.runId === '2'")
        .await;
    page.wait_for(&format!("{} === '4'", count("waiting")))
        .await;

    for (path, body) in [
        start(machine, "/rig/lamp", "lamp_on.py", "2026-11-24 14:01:00"),
        stop(
            machine,
            "/rig/lamp",
            "lamp_on.py",
            "passed",
            "2026-11-24 14:02:00",
        ),
        start(machine, "/rig/lamp", XSS_NAME, "2026-11-24 14:02:01"),
        stop(
            machine,
            "/rig/lamp",
            XSS_NAME,
            "failed",
            "2026-11-24 14:03:00",
        ),
        start(machine, "/rig/lamp", "lamp_off.py", "2026-11-24 14:03:01"),
    ] {
        let (status, answer) = post(&base, path, &body).await;
        assert_eq!(status, 202, "{answer}");
    }
    page.wait_for(&format!("{} === 'running'", test_status("lamp_off.py")))
        .await;
    assert_eq!(page.eval(&test_status("lamp_on.py")).await, "passed");
    assert_eq!(page.eval(&test_status(XSS_NAME)).await, "failed");
    assert_eq!(page.eval(&count("passed")).await, "1");
    assert_eq!(page.eval(&count("failed")).await, "1");
    assert_eq!(page.eval(&count("running")).await, "1");
    assert_eq!(page.eval(&count("waiting")).await, "1");
    assert_eq!(
        page.eval("document.querySelector('[data-field=\"done\"]').textContent")
            .await,
        "2"
    );
    assert_eq!(
        page.eval("document.querySelector('progress').value").await,
        2
    );
    assert_eq!(
        page.eval("document.querySelector('.run-header .status').textContent")
            .await,
        "running"
    );
    assert_eq!(
        page.eval("document.querySelector('[data-field=\"started\"]').textContent")
            .await,
        "24-11-2026  14:01:00"
    );
    assert_eq!(
        page.eval("window.stptNoReload").await,
        "still here",
        "the page reloaded"
    );
    page.screenshot("last-run").await;

    // The XSS probe is text, in the live-built DOM too.
    assert_eq!(
        page.eval("document.querySelectorAll('img').length").await,
        0
    );
    assert_eq!(
        page.eval(&format!(
            "Array.from(document.querySelectorAll('li.test a')).some(a => a.textContent === {})",
            json!(XSS_NAME)
        ))
        .await,
        true
    );

    // The connection drops: the page says so, retries, and catches up from a snapshot.
    proxy.cut();
    page.wait_for("document.getElementById('live-state').dataset.state === 'reconnecting'")
        .await;
    assert_eq!(
        page.eval("document.getElementById('live-state').textContent.startsWith('reconnecting')")
            .await,
        true
    );
    for (path, body) in [
        stop(
            machine,
            "/rig/lamp",
            "lamp_off.py",
            "warning",
            "2026-11-24 14:03:30",
        ),
        start(
            machine,
            "/rig/motor",
            "motor_spin.py",
            "2026-11-24 14:03:31",
        ),
    ] {
        let (status, answer) = post(&server, path, &body).await;
        assert_eq!(status, 202, "{answer}");
    }
    proxy.restore();
    page.wait_live().await;
    page.wait_for(&format!("{} === 'running'", test_status("motor_spin.py")))
        .await;
    assert_eq!(page.eval(&test_status("lamp_off.py")).await, "warning");
    assert_eq!(page.eval(&count("warning")).await, "1");
    assert_eq!(page.eval("window.stptNoReload").await, "still here");

    // The run finishes: cancelled cancels what is left.
    clock.set(Utc.with_ymd_and_hms(2026, 11, 24, 14, 4, 0).unwrap());
    let (status, _) = post(
        &base,
        "/tm_api/test_stop/",
        &stop(
            machine,
            "/rig/motor",
            "motor_spin.py",
            "cancelled",
            "2026-11-24 14:04:00",
        )
        .1,
    )
    .await;
    assert_eq!(status, 202);
    page.wait_for("document.querySelector('.run-header .status').textContent === 'cancelled'")
        .await;
    assert_eq!(page.eval(&test_status("motor_spin.py")).await, "cancelled");
    assert_eq!(
        page.eval("document.querySelector('[data-field=\"finished\"]').textContent")
            .await,
        "24-11-2026  14:04:00"
    );

    // The details page: the probe as text, the script highlighted by the served highlighter.
    let xss_test = page
        .eval(&format!(
            "Array.from(document.querySelectorAll('li.test')).find(li => li.querySelector('a').textContent === {}).dataset.testId",
            json!(XSS_NAME)
        ))
        .await;
    page.navigate(&format!("{base}/test/{}", xss_test.as_str().unwrap()))
        .await;
    assert_eq!(
        page.eval("document.querySelectorAll('img, main script').length")
            .await,
        0
    );
    assert_eq!(
        page.eval(
            "document.querySelector('h1').textContent.includes('<img src=x onerror=alert(1)>')"
        )
        .await,
        true
    );
    page.navigate(&format!("{base}/test/5")).await;
    page.wait_for("document.querySelector('pre.script code .hljs-keyword') !== null")
        .await;
    page.screenshot("test-details").await;

    // The machines list shows the machine's live status.
    page.navigate(&format!("{base}/")).await;
    page.wait_live().await;
    assert_eq!(
        page.eval("document.querySelector('tr[data-machine-id=\"1\"] .status').textContent")
            .await,
        "cancelled"
    );
    post(
        &base,
        "/tm_api/dry_run/",
        &small_plan(machine, "2026-11-24 15:00:00"),
    )
    .await;
    page.wait_for(
        "document.querySelector('tr[data-machine-id=\"1\"] .status').textContent === 'waiting'",
    )
    .await;
    page.screenshot("machines").await;

    // Nothing ran that should not have, and nothing left for another host.
    page.eval("1").await; // collect the last events
    assert!(
        page.dialogs().is_empty(),
        "a dialog opened: {:?}",
        page.dialogs()
    );
    let exceptions: Vec<_> = page.events_named("Runtime.exceptionThrown").collect();
    assert!(exceptions.is_empty(), "script errors: {exceptions:?}");
    // A reconnect attempt while the proxy was cut logs a failed socket handshake: expected.
    let problems: Vec<_> = page
        .events_named("Log.entryAdded")
        .filter(|event| event["params"]["entry"]["level"] == "error")
        .filter(|event| {
            let entry = &event["params"]["entry"];
            // A socket, and the ETA the page re-reads after changes, may fail while the
            // server is cut; the page tries again.
            !(entry["source"] == "network"
                && (entry["text"]
                    .as_str()
                    .is_some_and(|text| text.starts_with("WebSocket connection to"))
                    || entry["url"]
                        .as_str()
                        .is_some_and(|url| url.ends_with("/eta"))))
        })
        .collect();
    assert!(problems.is_empty(), "console errors (CSP?): {problems:?}");
    let ws_base = base.replace("http://", "ws://");
    let requests: Vec<String> = page
        .events_named("Network.requestWillBeSent")
        .map(|event| {
            event["params"]["request"]["url"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .chain(
            page.events_named("Network.webSocketCreated")
                .map(|event| event["params"]["url"].as_str().unwrap_or("").to_owned()),
        )
        .collect();
    assert!(
        requests.iter().any(|url| url.contains("/static/stpt.js")),
        "{requests:?}"
    );
    assert!(
        requests.iter().any(|url| url.starts_with(&ws_base)),
        "{requests:?}"
    );
    let foreign: Vec<_> = requests
        .iter()
        .filter(|url| {
            !url.starts_with(&format!("{base}/")) && !url.starts_with(&format!("{ws_base}/"))
        })
        .filter(|url| !url.starts_with("data:") && !url.starts_with("about:"))
        .collect();
    assert!(foreign.is_empty(), "requests to other hosts: {foreign:?}");
    let resources = page
        .eval(&format!(
            "performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith({}))",
            json!(base)
        ))
        .await;
    assert_eq!(resources, json!([]), "resources from other hosts");
}

/// A runner's naive time as Python prints it.
fn naive(at: chrono::DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

#[tokio::test]
async fn a_rig_an_hour_ahead_in_headless_chromium() {
    let Some(binary) = browser_or_skip() else {
        return;
    };
    // The real clock: pages count elapsed time as a viewer would see it.
    let tracker = Tracker::new(Arc::new(MemoryStore::new()), Arc::new(InProcessBus::new()));
    let base = serve(support::open_router(tracker, HttpConfig::default())).await;
    let machine = "rig-east";
    // The rig's naive local time is an hour ahead of UTC; `--runner-timezone` is unset.
    let rig_now = || Utc::now() + chrono::Duration::hours(1);
    let (status, _) = post(
        &base,
        "/tm_api/dry_run/",
        &small_plan(machine, &naive(rig_now())),
    )
    .await;
    assert_eq!(status, 201);
    let (path, body) = start(machine, "/rig/lamp", "lamp_on.py", &naive(rig_now()));
    assert_eq!(post(&base, path, &body).await.0, 202);

    let browser = Browser::launch(&binary).await;
    let mut page = Page::open(&browser).await;
    page.navigate(&format!("{base}/machine/1")).await;
    let notice = page
        .eval("document.querySelector('.notice.clock-offset').textContent")
        .await;
    assert!(
        notice
            .as_str()
            .unwrap()
            .starts_with("Rig clock 60 min ahead of the server"),
        "{notice}"
    );
    assert_eq!(
        page.eval("document.querySelector('.machine-liveness .liveness').textContent")
            .await,
        "online"
    );

    page.navigate(&format!("{base}/machine/1/last")).await;
    page.wait_live().await;
    page.eval("window.stptNoReload = 'still here'").await;
    // Elapsed time counts from when the server saw the run start, not an hour from now.
    page.wait_for(
        "document.querySelector('[data-field=\"duration\"]').textContent.startsWith('0:00:0') \
         && document.querySelector('[data-field=\"duration\"]').textContent !== '0:00:00'",
    )
    .await;

    // Two tests finish in about a second each: the run's pace gives a rough ETA, and the
    // running test's progress shows, all without a reload.
    for name in ["lamp_on.py", support::XSS_NAME] {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (path, body) = stop(machine, "/rig/lamp", name, "passed", &naive(rig_now()));
        assert_eq!(post(&base, path, &body).await.0, 202);
        let next = if name == "lamp_on.py" {
            support::XSS_NAME
        } else {
            "lamp_off.py"
        };
        let (path, body) = start(machine, "/rig/lamp", next, &naive(rig_now()));
        assert_eq!(post(&base, path, &body).await.0, 202);
    }
    page.wait_for("!document.querySelector('[data-field=\"eta\"]').hidden")
        .await;
    let left = page
        .eval("document.querySelector('[data-field=\"eta-left\"]').textContent")
        .await;
    let left = left.as_str().unwrap();
    assert!(left.starts_with("≈ ") && left.contains(" left"), "{left}");
    assert!(left.contains("rough"), "no history yet: {left}");
    page.wait_for(
        "document.querySelector('[data-field=\"eta-running\"]').textContent.startsWith('running test 0:00:0')",
    )
    .await;
    assert_eq!(page.eval("window.stptNoReload").await, "still here");
}

/// From a failing test on the live page, one click reaches its history; the run page's
/// comparison shows the new failure; the matrix renders and sorts by failure rate.
#[tokio::test]
async fn a_new_failure_leads_to_its_history_in_headless_chromium() {
    let Some(binary) = browser_or_skip() else {
        return;
    };
    let tracker = Tracker::new(Arc::new(MemoryStore::new()), Arc::new(InProcessBus::new()));
    let base = serve(support::open_router(tracker.clone(), HttpConfig::default())).await;
    let machine = "rig-7";
    // Yesterday's run: everything passed.
    assert_eq!(
        post(
            &base,
            "/tm_api/dry_run/",
            &small_plan(machine, "2026-11-24 13:00:00")
        )
        .await
        .0,
        201
    );
    for (name, at) in [
        ("lamp_on.py", 1),
        (XSS_NAME, 3),
        ("lamp_off.py", 5),
        ("motor_spin.py", 7),
    ] {
        let path = if name == "motor_spin.py" {
            "/rig/motor"
        } else {
            "/rig/lamp"
        };
        let (url, body) = start(machine, path, name, &format!("2026-11-24 13:00:{at:02}"));
        assert_eq!(post(&base, url, &body).await.0, 202);
        let (url, body) = stop(
            machine,
            path,
            name,
            "passed",
            &format!("2026-11-24 13:00:{:02}", at + 1),
        );
        assert_eq!(post(&base, url, &body).await.0, 202);
    }
    // Today's run: two tests pass again, and lamp_off.py is running when the page opens.
    assert_eq!(
        post(
            &base,
            "/tm_api/dry_run/",
            &small_plan(machine, "2026-11-25 13:00:00")
        )
        .await
        .0,
        201
    );
    for (name, at) in [("lamp_on.py", 1), (XSS_NAME, 3)] {
        let (url, body) = start(
            machine,
            "/rig/lamp",
            name,
            &format!("2026-11-25 13:00:{at:02}"),
        );
        assert_eq!(post(&base, url, &body).await.0, 202);
        let (url, body) = stop(
            machine,
            "/rig/lamp",
            name,
            "passed",
            &format!("2026-11-25 13:00:{:02}", at + 1),
        );
        assert_eq!(post(&base, url, &body).await.0, 202);
    }
    let (url, body) = start(machine, "/rig/lamp", "lamp_off.py", "2026-11-25 13:00:05");
    assert_eq!(post(&base, url, &body).await.0, 202);
    tracker.flush_finished().await.unwrap();

    let browser = Browser::launch(&binary).await;
    let mut page = Page::open(&browser).await;
    page.navigate(&format!("{base}/machine/1/last")).await;
    page.wait_live().await;
    let (url, body) = stop(
        machine,
        "/rig/lamp",
        "lamp_off.py",
        "failed",
        "2026-11-25 13:00:09",
    );
    assert_eq!(post(&base, url, &body).await.0, 202);
    page.wait_for("!!document.querySelector('li.test[data-status=\"failed\"] .badge.new-failure')")
        .await;
    // The failure shows beside the run's status, live.
    page.wait_for(
        "(() => { const n = document.querySelector('.run-header h1 > [data-field=\"failed\"]'); \
         return !n.hidden && n.textContent === '1 failed'; })()",
    )
    .await;
    // So does the tab: its title and icon.
    page.wait_for("document.title === '… 1 failed · rig-7 · 3/4 · stpt'")
        .await;
    assert_eq!(
        page.eval(
            "document.querySelector('link[rel=\"icon\"]').href.startsWith('data:image/svg+xml,')"
        )
        .await,
        true
    );
    // The watch's tick adds finished tests to their flaky windows, which the matrix rates.
    tracker.flush_finished().await.unwrap();
    // One click from the failing test to its history.
    page.eval("document.querySelector('li.test[data-status=\"failed\"] a.history-link').click()")
        .await;
    page.wait_for(
        "location.pathname.startsWith('/tests/history/') && !!document.querySelector('.strip')",
    )
    .await;
    assert_eq!(
        page.eval("Array.from(document.querySelectorAll('.strip .cell')).map(c => c.dataset.status).join(',')")
            .await,
        "passed,failed"
    );
    assert_eq!(
        page.eval("document.querySelector('h1').firstChild.textContent.trim()")
            .await,
        "lamp_off.py"
    );

    page.navigate(&format!("{base}/machine/run_data/2/")).await;
    assert_eq!(
        page.eval(
            "document.querySelector('#diff [data-kind=\"new-failures\"] strong').textContent"
        )
        .await,
        "1"
    );
    assert_eq!(
        page.eval(
            "document.querySelector('details.diff-group[data-kind=\"new-failures\"] a').textContent"
        )
        .await,
        "lamp_off.py"
    );

    page.navigate(&format!(
        "{base}/matrix/?master_path=/rig/scenarios&master_name=master.py"
    ))
    .await;
    assert_eq!(
        page.eval("document.querySelectorAll('#matrix tbody tr').length")
            .await,
        4
    );
    assert_eq!(
        page.eval("document.querySelector('#matrix tbody tr th a').textContent")
            .await,
        "lamp_on.py",
        "plan order first"
    );
    page.eval("document.getElementById('sort-failures').click()")
        .await;
    page.wait_for("location.search.includes('sort=failure_rate')")
        .await;
    page.wait_for("document.readyState === 'complete' && !!document.querySelector('#matrix')")
        .await;
    assert_eq!(
        page.eval("document.querySelector('#matrix tbody tr th a').textContent")
            .await,
        "lamp_off.py",
        "the failing test leads"
    );
    assert_eq!(
        page.eval("document.querySelector('#matrix tbody tr td.cell').dataset.status")
            .await,
        "failed"
    );
}

/// The wall at 1920×1080 with 40 rigs: every tile on screen without scrolling, names at
/// least 24 px high, failing rigs first, and a new rig appears by itself. The screenshot goes
/// to the build's temporary folder (`wall.png`), not the repository.
#[tokio::test]
async fn the_wall_shows_forty_rigs_on_one_screen_in_headless_chromium() {
    let Some(binary) = browser_or_skip() else {
        return;
    };
    let tracker = Tracker::new(Arc::new(MemoryStore::new()), Arc::new(InProcessBus::new()));
    let base = serve(support::open_router(tracker, HttpConfig::default())).await;
    for rig in 0..40 {
        let machine = format!("bay-a-rig-{rig:02}");
        let plan = small_plan(&machine, "2026-11-25 13:00:00");
        assert_eq!(post(&base, "/tm_api/dry_run/", &plan).await.0, 201);
        let status = if rig == 17 { "failed" } else { "passed" };
        let (url, body) = start(&machine, "/rig/lamp", "lamp_on.py", "2026-11-25 13:00:01");
        assert_eq!(post(&base, url, &body).await.0, 202);
        let (url, body) = stop(
            &machine,
            "/rig/lamp",
            "lamp_on.py",
            status,
            "2026-11-25 13:00:02",
        );
        assert_eq!(post(&base, url, &body).await.0, 202);
    }
    // One rig is running a test: its tile names it, with the time left.
    let (url, body) = start(
        "bay-a-rig-05",
        "/rig/lamp",
        "lamp_off.py",
        "2026-11-25 13:00:03",
    );
    assert_eq!(post(&base, url, &body).await.0, 202);
    let browser = Browser::launch(&binary).await;
    let mut page = Page::open(&browser).await;
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1920, "height": 1080, "deviceScaleFactor": 1, "mobile": false}),
    )
    .await;
    page.navigate(&format!("{base}/wall/?name=bay-a")).await;
    assert_eq!(
        page.eval("document.querySelectorAll('.tile').length").await,
        40
    );
    assert_eq!(
        page.eval("document.documentElement.scrollHeight <= innerHeight && document.documentElement.scrollWidth <= innerWidth")
            .await,
        true,
        "no scrolling: {}",
        page.eval("document.documentElement.scrollHeight + ' > ' + innerHeight + ', ' + getComputedStyle(document.querySelector('.wall-grid')).gridTemplateColumns + ', tile ' + document.querySelector('.tile').getBoundingClientRect().height + ' parts ' + Array.from(document.querySelector('.tile a').children).map(c => c.className + ':' + Math.round(c.getBoundingClientRect().height)).join(' ') + ' rows ' + Array.from(document.querySelectorAll('.tile')).map(t => Math.round(t.getBoundingClientRect().height)).join(',')")
            .await
    );
    assert_eq!(
        page.eval("Array.from(document.querySelectorAll('.tile')).every(t => t.getBoundingClientRect().bottom <= innerHeight)")
            .await,
        true
    );
    assert_eq!(
        page.eval("Array.from(document.querySelectorAll('.tile')).find(t => t.querySelector('.tile-name').textContent === 'bay-a-rig-05').querySelector('.tile-test').textContent")
            .await,
        "▶ lamp_off.py"
    );
    assert_eq!(
        page.eval("document.querySelector('.tile-count').textContent.includes(' · ≈ ') && document.querySelector('.tile-count').textContent.endsWith(' left')")
            .await,
        true
    );
    let name_px = page
        .eval("parseFloat(getComputedStyle(document.querySelector('.tile-name')).fontSize)")
        .await;
    assert!(name_px.as_f64().unwrap() >= 24.0, "{name_px}");
    assert_eq!(
        page.eval("document.querySelector('.tile').classList.contains('failing') && document.querySelector('.tile-name').textContent")
            .await,
        "bay-a-rig-17",
        "the failing rig first"
    );
    let shot = page
        .call("Page.captureScreenshot", json!({"format": "png"}))
        .await;
    let png = decode_base64(shot["data"].as_str().unwrap());
    std::fs::write(
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wall.png"),
        png,
    )
    .unwrap();

    // A new rig in this bay appears without a reload; another bay's does not.
    page.eval("window.stptNoReload = 'still here'").await;
    for machine in ["bay-a-rig-40", "bay-b-rig-00"] {
        let plan = small_plan(machine, "2026-11-25 14:00:00");
        assert_eq!(post(&base, "/tm_api/dry_run/", &plan).await.0, 201);
    }
    page.wait_for("document.querySelectorAll('.tile').length === 41")
        .await;
    assert_eq!(page.eval("window.stptNoReload").await, "still here");
    assert_eq!(
        page.eval("Array.from(document.querySelectorAll('.tile-name')).some(n => n.textContent === 'bay-b-rig-00')")
            .await,
        false
    );
}

/// Every page fits a 390 px wide phone: nothing scrolls sideways.
#[tokio::test]
async fn every_page_fits_a_phone_in_headless_chromium() {
    let Some(binary) = browser_or_skip() else {
        return;
    };
    let tracker = Tracker::new(Arc::new(MemoryStore::new()), Arc::new(InProcessBus::new()));
    let base = serve(support::open_router(tracker.clone(), HttpConfig::default())).await;
    let machine = "a-rig-with-a-rather-long-name-for-a-phone-screen-01";
    two_days_of_runs(&base, machine).await;
    tracker.flush_finished().await.unwrap();
    let key = tracker
        .store()
        .search_tests(
            stpt_core::history::TextFilter::new("lamp_on")
                .unwrap()
                .as_ref(),
            stpt_core::PageRequest::default(),
        )
        .await
        .unwrap()
        .items[0]
        .key;
    let browser = Browser::launch(&binary).await;
    let mut page = Page::open(&browser).await;
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": false}),
    )
    .await;
    for path in [
        "/".to_owned(),
        "/wall/".to_owned(),
        "/machine/1/".to_owned(),
        "/machine/1/last".to_owned(),
        "/machine/run_data/2/".to_owned(),
        "/test/5/".to_owned(),
        format!("/tests/history/{key}/"),
        "/search/?q=lamp".to_owned(),
        "/flaky/".to_owned(),
        "/matrix/?master_path=/rig/scenarios&master_name=master.py".to_owned(),
        "/docs/".to_owned(),
        "/login/".to_owned(),
    ] {
        page.navigate(&format!("{base}{path}")).await;
        assert_eq!(page.eval("innerWidth").await, 390, "{path}");
        let fits = page
            .eval("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
            .await;
        let widest = page
            .eval(
                "Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)\
                 .slice(0, 3).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).join(', ')",
            )
            .await;
        let shot = path
            .trim_matches('/')
            .split(['/', '?'])
            .next()
            .unwrap_or_default()
            .to_owned();
        page.screenshot(&format!(
            "phone-{}",
            if shot.is_empty() { "machines" } else { &shot }
        ))
        .await;
        assert_eq!(fits, true, "{path} scrolls sideways: {widest}");
    }
}

/// axe-core's script, installed by `.ci/run` from the npm registry for tests only, or `None`
/// (with a line saying so) where it is missing and integration tests are not required.
fn axe_or_skip() -> Option<String> {
    let path = std::env::var_os("STPT_AXE_JS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../target/a11y/node_modules/axe-core/axe.min.js")
        });
    match std::fs::read_to_string(&path) {
        Ok(script) => Some(script),
        Err(error) if std::env::var("STPT_TEST_INTEGRATION").as_deref() == Ok("1") => {
            panic!(
                "axe-core not found at {} ({error}) and STPT_TEST_INTEGRATION=1: `.ci/run` installs it",
                path.display()
            )
        }
        Err(_) => {
            eprintln!(
                "\n!!!!! skipped: axe-core not found (npm install --prefix target/a11y axe-core; STPT_TEST_INTEGRATION=1 makes this a failure) !!!!!\n"
            );
            None
        }
    }
}

/// The accessibility checker finds no serious or critical violation on the machines list,
/// the wall, a live run, a finished run, a test's page, a test's history and the sign-in
/// page, in the light and the dark theme.
#[tokio::test]
async fn pages_pass_an_accessibility_check_in_headless_chromium() {
    let Some(binary) = browser_or_skip() else {
        return;
    };
    let Some(axe) = axe_or_skip() else {
        return;
    };
    let tracker = Tracker::new(Arc::new(MemoryStore::new()), Arc::new(InProcessBus::new()));
    let base = serve(support::open_router(tracker.clone(), HttpConfig::default())).await;
    let machine = "rig-3";
    two_days_of_runs(&base, machine).await;
    tracker.flush_finished().await.unwrap();
    let browser = Browser::launch(&binary).await;
    let mut page = Page::open(&browser).await;
    let mut found = Vec::new();
    for theme in ["light", "dark"] {
        page.call(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": theme}]}),
        )
        .await;
        for path in [
            "/",
            "/wall/",
            "/machine/1/last",
            "/machine/run_data/1/",
            "/test/5/",
            "/search/?q=lamp",
            "/login/",
        ] {
            page.navigate(&format!("{base}{path}")).await;
            found.extend(violations(&mut page, &axe, &format!("{theme} {path}")).await);
        }
    }
    assert!(
        found.is_empty(),
        "accessibility violations:\n{}",
        found.join("\n")
    );
}

/// The live pages' slips, each fixed: a new machine joins an empty list (and one on another
/// page is announced, while another page's changes are not), the machine page's header and
/// its runs' times follow, the pager counts, the last-run page says how the run it showed
/// ended, the reconnect countdown counts, and durations wait while the server is not heard.
#[tokio::test]
async fn live_pages_keep_up_in_headless_chromium() {
    let Some(binary) = browser_or_skip() else {
        return;
    };
    let tracker = Tracker::new(Arc::new(MemoryStore::new()), Arc::new(InProcessBus::new()));
    let server = serve(support::open_router(tracker, HttpConfig::default())).await;
    let proxy = Proxy::start(&server).await;
    let base = proxy.base.clone();
    let now = || naive(Utc::now());
    let browser = Browser::launch(&binary).await;
    let mut page = Page::open(&browser).await;

    // An empty list gains the first machine's row by itself.
    page.navigate(&format!("{base}/")).await;
    page.wait_live().await;
    assert_eq!(
        post(&server, "/tm_api/dry_run/", &small_plan("rig-a", &now()))
            .await
            .0,
        201
    );
    page.wait_for("!!document.querySelector('tr[data-machine-id=\"1\"]') && !document.querySelector('table.machines').hidden")
        .await;
    assert_eq!(
        page.eval("document.getElementById('no-machines').hidden")
            .await,
        true
    );
    assert_eq!(
        page.eval("document.getElementById('new-machines').hidden")
            .await,
        true
    );
    // A failing test shows beside the machine's status without a reload.
    let (url, body) = start("rig-a", "/rig/lamp", "lamp_on.py", &now());
    assert_eq!(post(&server, url, &body).await.0, 202);
    let (url, body) = stop("rig-a", "/rig/lamp", "lamp_on.py", "failed", &now());
    assert_eq!(post(&server, url, &body).await.0, 202);
    page.wait_for(
        "document.querySelector('tr[data-machine-id=\"1\"] .failures')?.textContent === '1 failed'",
    )
    .await;

    // One machine a page: a new machine on page 2 is announced; a change on page 2 is not.
    page.navigate(&format!("{base}/?page_size=1")).await;
    page.wait_live().await;
    assert_eq!(
        post(&server, "/tm_api/dry_run/", &small_plan("rig-b", &now()))
            .await
            .0,
        201
    );
    page.wait_for("!document.getElementById('new-machines').hidden")
        .await;
    assert_eq!(
        page.eval("document.querySelector('.pager [data-field=\"count\"]').textContent")
            .await,
        "2"
    );
    page.navigate(&format!("{base}/?page_size=1")).await;
    page.wait_live().await;
    assert_eq!(
        post(&server, "/tm_api/dry_run/", &small_plan("rig-b", &now()))
            .await
            .0,
        201
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        page.eval("document.getElementById('new-machines').hidden")
            .await,
        true,
        "rig-b was known: no notice"
    );

    // The machine page: its header, its runs' times and its pager follow.
    page.navigate(&format!("{base}/machine/1/")).await;
    page.wait_live().await;
    assert_eq!(
        post(&server, "/tm_api/dry_run/", &small_plan("rig-a", &now()))
            .await
            .0,
        201
    );
    page.wait_for("!!document.querySelector('tr[data-run-id=\"4\"]')")
        .await;
    assert_eq!(
        page.eval("document.querySelector('.pager [data-field=\"count\"]').textContent")
            .await,
        "2"
    );
    let (url, body) = start("rig-a", "/rig/lamp", "lamp_on.py", &now());
    assert_eq!(post(&server, url, &body).await.0, 202);
    page.wait_for(
        "document.querySelector('h1.machine-title > .status').dataset.status === 'running'",
    )
    .await;
    page.wait_for("document.querySelector('tr[data-run-id=\"4\"] [data-field=\"started\"]').textContent !== '—'")
        .await;
    let tests = [
        ("/rig/lamp", "lamp_on.py"),
        ("/rig/lamp", XSS_NAME),
        ("/rig/lamp", "lamp_off.py"),
        ("/rig/motor", "motor_spin.py"),
    ];
    for (at, (path, name)) in tests.iter().enumerate() {
        if at > 0 {
            let (url, body) = start("rig-a", path, name, &now());
            assert_eq!(post(&server, url, &body).await.0, 202);
        }
        let outcome = if *name == "lamp_off.py" {
            "failed"
        } else {
            "passed"
        };
        let (url, body) = stop("rig-a", path, name, outcome, &now());
        assert_eq!(post(&server, url, &body).await.0, 202);
    }
    page.wait_for(
        "document.querySelector('h1.machine-title > .status').dataset.status === 'failed'",
    )
    .await;
    page.wait_for(
        "document.querySelector('tr[data-run-id=\"4\"] .failures')?.textContent === '1 failed'",
    )
    .await;
    page.wait_for("document.querySelector('tr[data-run-id=\"4\"] [data-field=\"duration\"]').textContent !== '—'")
        .await;

    // The last-run page moves to the next run and says how the one it showed ended.
    page.navigate(&format!("{base}/machine/1/last")).await;
    page.wait_live().await;
    assert_eq!(
        post(&server, "/tm_api/dry_run/", &small_plan("rig-a", &now()))
            .await
            .0,
        201
    );
    page.wait_for("!document.getElementById('previous-run').hidden")
        .await;
    let notice = page
        .eval("document.getElementById('previous-run').textContent")
        .await;
    assert!(
        notice
            .as_str()
            .unwrap()
            .starts_with("Run #4 ended failed · 1 failed"),
        "{notice}"
    );
    assert_eq!(
        page.eval(
            "document.getElementById('previous-run').querySelector('a').getAttribute('href')"
        )
        .await,
        "/machine/run_data/4/"
    );
    // The next run is drawn by the server's own markup (collapsible scenarios, history
    // links, data-previous for live "new failure" badges), not a bare list.
    assert_eq!(
        page.eval("document.getElementById('run').dataset.runId")
            .await,
        "5"
    );
    assert_eq!(
        page.eval("document.querySelectorAll('#run details.scenario-box').length > 0 && document.querySelectorAll('#run li.test a.history-link').length === 4")
            .await,
        true
    );
    assert_eq!(
        page.eval("document.querySelector('#run li.test[data-previous]') !== null")
            .await,
        true
    );

    // The connection drops: the countdown counts down, and the running duration waits.
    let (url, body) = start("rig-a", "/rig/lamp", "lamp_on.py", &now());
    assert_eq!(post(&server, url, &body).await.0, 202);
    page.wait_for(
        "document.querySelector('.run-header [data-field=\"duration\"]').textContent !== '—'",
    )
    .await;
    page.eval(
        "window.stptTexts = []; new MutationObserver(() => stptTexts.push(document.getElementById('live-state').textContent))\
         .observe(document.getElementById('live-state'), {childList: true, characterData: true, subtree: true})",
    )
    .await;
    proxy.cut();
    page.wait_for("document.getElementById('live-state').dataset.state === 'reconnecting'")
        .await;
    let frozen = page
        .eval("document.querySelector('.run-header [data-field=\"duration\"]').textContent")
        .await;
    page.wait_for(
        "stptTexts.some((t, i) => i > 0 && /in (\\d+) s/.test(t) && /in (\\d+) s/.test(stptTexts[i - 1]) \
         && Number(t.match(/in (\\d+) s/)[1]) === Number(stptTexts[i - 1].match(/in (\\d+) s/)[1]) - 1)",
    )
    .await;
    assert_eq!(
        page.eval("document.querySelector('.run-header [data-field=\"duration\"]').textContent")
            .await,
        frozen,
        "no ticking while the server is not heard"
    );
    proxy.restore();
    page.wait_live().await;
}

/// A plan of `scenarios` × `tests` tests: scenario `s{s}.py`, tests `/rig/s{s}` `t{t}.py`.
fn grid_plan(machine: &str, scenarios: usize, tests: usize) -> Value {
    let scenarios: Vec<Value> = (0..scenarios)
        .map(|s| {
            let tests: Vec<Value> = (0..tests)
                .map(|t| json!({"file_path": format!("/rig/s{s}"), "file_name": format!("t{t}.py"), "script": null}))
                .collect();
            json!({"file_path": "/rig", "file_name": format!("s{s}.py"), "script": null, "tests": tests})
        })
        .collect();
    json!({
        "machine_name": machine,
        "timestamp": naive(Utc::now()),
        "master_scenario": {"file_path": "/rig", "file_name": "grid.py", "script": null, "scenarios": scenarios}
    })
}

/// A big run's page: scenarios collapse to one line each, except the one with the running
/// test and those with failures; "Jump to the running test" and a deep link to a test open
/// its scenario; a scenario that starts running opens by itself.
#[tokio::test]
async fn a_big_run_collapses_in_headless_chromium() {
    let Some(binary) = browser_or_skip() else {
        return;
    };
    let tracker = Tracker::new(Arc::new(MemoryStore::new()), Arc::new(InProcessBus::new()));
    let base = serve(support::open_router(tracker, HttpConfig::default())).await;
    let now = || naive(Utc::now());
    assert_eq!(
        post(&base, "/tm_api/dry_run/", &grid_plan("rig-big", 20, 30))
            .await
            .0,
        201
    );
    for (s, t, status) in [(0, 0, Some("failed")), (0, 1, Some("passed")), (3, 0, None)] {
        let (url, body) = start(
            "rig-big",
            &format!("/rig/s{s}"),
            &format!("t{t}.py"),
            &now(),
        );
        assert_eq!(post(&base, url, &body).await.0, 202);
        if let Some(status) = status {
            let (url, body) = stop(
                "rig-big",
                &format!("/rig/s{s}"),
                &format!("t{t}.py"),
                status,
                &now(),
            );
            assert_eq!(post(&base, url, &body).await.0, 202);
        }
    }
    let browser = Browser::launch(&binary).await;
    let mut page = Page::open(&browser).await;
    page.navigate(&format!("{base}/machine/1/last")).await;
    page.wait_live().await;
    let open = "Array.from(document.querySelectorAll('details.scenario-box[open]')).map(d => d.closest('li').querySelector('h2 a').textContent).join(',')";
    assert_eq!(
        page.eval(open).await,
        "s0.py,s3.py",
        "failures and the running test open"
    );
    page.eval("document.querySelector('a[data-jump=\"running\"]').click()")
        .await;
    page.wait_for(
        "document.querySelector('li.test[data-status=\"running\"]').classList.contains('target')",
    )
    .await;
    // The next scenario starts: it opens by itself.
    let (url, body) = start("rig-big", "/rig/s7", "t0.py", &now());
    assert_eq!(post(&base, url, &body).await.0, 202);
    page.wait_for("document.querySelector('li.scenario[data-scenario-id=\"8\"] details').open")
        .await;
    // A deep link to a test in a collapsed scenario opens it.
    page.navigate(&format!("{base}/machine/run_data/1/#test-301"))
        .await;
    page.wait_for("document.getElementById('test-301').closest('details').open")
        .await;
}

/// Figures for BENCHMARKS.md, not a pass/fail test (timing belongs to benchmarks):
/// `cargo test -p stpt-http --test browser -- --ignored --nocapture big_run_figures`.
/// A 10,000-test run (100 × 100) at 1400×900: bytes on the wire, time to interactive, frames
/// per second idle and while events stream at 50 a second, and whether the page's counts end
/// equal to the API's.
#[tokio::test]
#[ignore = "prints figures; run by hand"]
async fn big_run_figures_in_headless_chromium() {
    let Some(binary) = browser_or_skip() else {
        return;
    };
    let tracker = Tracker::new(Arc::new(MemoryStore::new()), Arc::new(InProcessBus::new()));
    let base = serve(support::open_router(tracker, HttpConfig::default())).await;
    let now = || naive(Utc::now());
    assert_eq!(
        post(&base, "/tm_api/dry_run/", &grid_plan("rig-10k", 100, 100))
            .await
            .0,
        201
    );
    let (url, body) = start("rig-10k", "/rig/s0", "t0.py", &now());
    assert_eq!(post(&base, url, &body).await.0, 202);
    let client = reqwest::Client::new();
    for encoding in ["identity", "gzip", "br"] {
        let bytes = client
            .get(format!("{base}/machine/1/last"))
            .header("accept-encoding", encoding)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        println!("HTML on the wire ({encoding}): {} kB", bytes.len() / 1000);
    }
    let browser = Browser::launch(&binary).await;
    let mut page = Page::open(&browser).await;
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1400, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
    )
    .await;
    page.navigate(&format!("{base}/machine/1/last")).await;
    let timing = page
        .eval("(() => { const n = performance.getEntriesByType('navigation')[0]; return [n.domInteractive, n.domContentLoadedEventEnd, n.loadEventEnd].map(Math.round).join(' / '); })()")
        .await;
    println!("interactive / DOMContentLoaded / load (ms): {timing}");
    page.wait_live().await;
    let frames = "new Promise(done => { let n = 0; const t0 = performance.now(); \
        const step = () => { n++; if (performance.now() - t0 < 3000) requestAnimationFrame(step); \
        else done(Math.round(n * 1000 / (performance.now() - t0))); }; requestAnimationFrame(step); })";
    println!(
        "frames per second, idle: {}",
        page.eval_promise(frames).await
    );
    // 50 events a second: a stop and the next start every 40 ms.
    let streamer = {
        let base = base.clone();
        tokio::spawn(async move {
            for t in 0..100 {
                let (url, body) = stop(
                    "rig-10k",
                    "/rig/s0",
                    &format!("t{t}.py"),
                    "passed",
                    &naive(Utc::now()),
                );
                post(&base, url, &body).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                let (url, body) = start(
                    "rig-10k",
                    "/rig/s0",
                    &format!("t{}.py", t + 1),
                    &naive(Utc::now()),
                );
                post(&base, url, &body).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    page.eval("window.stptLong = []; new PerformanceObserver(l => stptLong.push(...l.getEntries().map(e => Math.round(e.duration)))).observe({type: 'longtask'})")
        .await;
    println!(
        "frames per second, 50 events/s: {}",
        page.eval_promise(frames).await
    );
    println!(
        "long tasks meanwhile: {}",
        page.eval("stptLong.length + ' tasks, ' + stptLong.reduce((a, b) => a + b, 0) + ' ms, longest ' + Math.max(0, ...stptLong)").await
    );
    streamer.await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let api: Value = reqwest::get(format!("{base}/api/v1/runs/1"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let counts = &api["summary"]["statistics"]["counts"];
    let mut equal = true;
    for status in ["waiting", "running", "passed", "failed"] {
        let shown = page.eval(&count(status)).await;
        equal &= shown.as_str() == Some(&counts[status].to_string());
    }
    println!("page counts equal the API's: {equal}");
}

/// Two days of `machine` running the small plan: on the 24th `lamp_on.py` passes and the
/// others end with warnings; on the 25th `lamp_on.py` fails (the run stays open).
async fn two_days_of_runs(base: &str, machine: &str) {
    for day in ["24", "25"] {
        let plan = small_plan(machine, &format!("2026-11-{day} 13:00:00"));
        assert_eq!(post(base, "/tm_api/dry_run/", &plan).await.0, 201);
        let status = if day == "25" { "failed" } else { "passed" };
        let (url, body) = start(
            machine,
            "/rig/lamp",
            "lamp_on.py",
            &format!("2026-11-{day} 13:00:01"),
        );
        assert_eq!(post(base, url, &body).await.0, 202);
        let (url, body) = stop(
            machine,
            "/rig/lamp",
            "lamp_on.py",
            status,
            &format!("2026-11-{day} 13:00:02"),
        );
        assert_eq!(post(base, url, &body).await.0, 202);
        if day == "24" {
            for (path, name) in [
                ("/rig/lamp", XSS_NAME),
                ("/rig/lamp", "lamp_off.py"),
                ("/rig/motor", "motor_spin.py"),
            ] {
                let (url, body) = start(machine, path, name, "2026-11-24 13:00:03");
                assert_eq!(post(base, url, &body).await.0, 202);
                let (url, body) = stop(machine, path, name, "warning", "2026-11-24 13:00:04");
                assert_eq!(post(base, url, &body).await.0, 202);
            }
        }
    }
}
