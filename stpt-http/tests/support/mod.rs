//! Shared by the page, socket and browser tests: a fixed clock, a small run, and helpers to
//! post runner events.

#![allow(dead_code, unreachable_pub)] // Each test file uses a different part.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use std::sync::Arc;
use stpt_core::{Clock, InProcessBus, LiveBus, Tracker};
use stpt_store_memory::MemoryStore;

/// The XSS probe the pages must show as text.
pub const XSS_NAME: &str = "<img src=x onerror=alert(1)>";

#[derive(Debug)]
pub struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 15, 30, 0).unwrap()
    }
}

/// A tracker on a memory store, a bus of `capacity`, and the fixed clock.
pub fn tracker_with(bus: Arc<dyn LiveBus>) -> Tracker {
    Tracker::new(Arc::new(MemoryStore::new()), bus).with_clock(Arc::new(FixedClock))
}

pub fn tracker() -> Tracker {
    tracker_with(Arc::new(InProcessBus::new()))
}

/// The full router over `tracker`, accounts in a memory store of their own, and `config` with
/// runner ingestion open (no tokens), as most tests of pages and the API need; with stpt's
/// 404 answers as fallback, as the reference server installs them.
pub fn open_router(tracker: Tracker, config: stpt_http::HttpConfig) -> axum::Router {
    let config = config
        .with_accounts(stpt_core::accounts::Accounts::new(Arc::new(
            MemoryStore::new(),
        )))
        .with_ingest_access(stpt_http::IngestAccess::open());
    stpt_http::router(tracker.clone(), &config).fallback(stpt_http::not_found(tracker, &config))
}

/// A plan: scenario `lamp` with the tests `lamp_on.py`, the XSS probe and `lamp_off.py`;
/// scenario `motor` with `motor_spin.py`; and the empty scenario `empty.py`.
pub fn small_plan(machine: &str, timestamp: &str) -> Value {
    json!({
        "machine_name": machine,
        "timestamp": timestamp,
        "master_scenario": {
            "file_path": "/rig/scenarios",
            "file_name": "master.py",
            "script": "from run import run_test_scenario\nrun_test_scenario('lamp.py')\n",
            "scenarios": [
                {
                    "file_path": "/rig/scenarios",
                    "file_name": "lamp.py",
                    "script": "import lamp\n",
                    "tests": [
                        {"file_path": "/rig/lamp", "file_name": "lamp_on.py",
                         "script": "def test():\n    assert lamp.on() == 'ok'  # <b>not bold</b>\n"},
                        {"file_path": "/rig/lamp", "file_name": XSS_NAME, "script": "</script><script>alert(2)</script>"},
                        {"file_path": "/rig/lamp", "file_name": "lamp_off.py", "script": null}
                    ]
                },
                {
                    "file_path": "/rig/scenarios",
                    "file_name": "motor.py",
                    "script": "",
                    "tests": [
                        {"file_path": "/rig/motor", "file_name": "motor_spin.py", "script": "print('spin')\n"}
                    ]
                },
                {"file_path": "/rig/scenarios", "file_name": "empty.py", "script": null, "tests": null}
            ]
        }
    })
}

/// A plan with `tests` tests in one scenario named `t0000.py`, `t0001.py`, ...
pub fn big_plan(machine: &str, tests: usize) -> Value {
    let tests: Vec<Value> = (0..tests)
        .map(|i| json!({"file_path": "/rig/big", "file_name": format!("t{i:04}.py"), "script": "pass\n"}))
        .collect();
    json!({
        "machine_name": machine,
        "timestamp": "2026-11-24 13:00:00",
        "master_scenario": {
            "file_path": "/rig", "file_name": "big_master.py", "script": "",
            "scenarios": [{"file_path": "/rig", "file_name": "big.py", "script": "", "tests": tests}]
        }
    })
}

pub fn start(machine: &str, path: &str, name: &str, at: &str) -> (&'static str, Value) {
    (
        "/tm_api/test_start/",
        json!({"machine_name": machine, "file_path": path, "file_name": name, "timestamp_start": at}),
    )
}

pub fn stop(
    machine: &str,
    path: &str,
    name: &str,
    status: &str,
    at: &str,
) -> (&'static str, Value) {
    (
        "/tm_api/test_stop/",
        json!({"machine_name": machine, "file_path": path, "file_name": name, "status": status, "timestamp_stop": at}),
    )
}

/// Posts JSON to a running server and returns the status and body.
pub async fn post(base: &str, path: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// Serves `app` on 127.0.0.1 at a free port; returns `http://127.0.0.1:PORT`.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{address}")
}
