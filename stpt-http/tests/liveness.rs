//! Liveness and the two clocks over a real listener: a rig whose clock is an hour ahead and
//! that goes silent mid-test, driven by a manual clock. Its offset and liveness reach the API,
//! the pages and the sockets; its run is closed `unknown` with the reason on the run page; its
//! late event gets a clear answer and changes nothing.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

mod support;

use chrono::{Duration, TimeZone, Utc};
use futures_util::StreamExt;
use serde_json::Value;
use std::sync::Arc;
use stpt_core::{InProcessBus, LivenessWatch, ManualClock, Tracker};
use stpt_http::HttpConfig;
use stpt_store_memory::MemoryStore;
use support::{post, serve, small_plan, start, stop};
use tokio_tungstenite::tungstenite::Message;

async fn get_json(base: &str, path: &str) -> Value {
    reqwest::get(format!("{base}{path}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn get_text(base: &str, path: &str) -> String {
    reqwest::get(format!("{base}{path}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_rig_an_hour_ahead_goes_silent_and_comes_back() {
    let server_now = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
    let clock = Arc::new(ManualClock::new(server_now));
    let tracker = Tracker::new(Arc::new(MemoryStore::new()), Arc::new(InProcessBus::new()))
        .with_clock(Arc::clone(&clock) as _);
    let base = serve(support::open_router(tracker.clone(), HttpConfig::default())).await;

    // The rig's naive local time is an hour ahead of the server's UTC.
    let (path, body) = (
        "/tm_api/dry_run/",
        small_plan("rig-1", "2026-11-24 13:00:00"),
    );
    assert_eq!(post(&base, path, &body).await.0, 201);
    let (path, body) = start("rig-1", "/rig/lamp", "lamp_on.py", "2026-11-24 13:00:05");
    clock.set(server_now + Duration::seconds(5));
    assert_eq!(post(&base, path, &body).await.0, 202);

    let machines = get_json(&base, "/api/v1/machines").await;
    let machine = &machines["items"][0];
    assert_eq!(machine["clock_offset_ms"], 3_600_000);
    assert_eq!(machine["liveness"], "online");
    let run = get_json(&base, "/api/v1/runs/1").await;
    assert_eq!(
        run["summary"]["timestamp_start"], "2026-11-24T12:00:05Z",
        "the run starts on the server's clock"
    );
    assert_eq!(
        run["scenarios"][0]["tests"][0]["timestamp_start"], "2026-11-24T13:00:05Z",
        "the test keeps the rig's time"
    );
    let page = get_text(&base, "/machine/1").await;
    assert!(
        page.contains("Rig clock 60 min ahead of the server."),
        "{page}"
    );

    let ws = format!(
        "{}/ws/v1/machine/status/?page=1&liveness=1",
        base.replace("http://", "ws://")
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(ws).await.unwrap();
    let mut watch = LivenessWatch::new();
    watch.tick(&tracker).await.unwrap();
    clock.set(server_now + Duration::minutes(11));
    let closed = watch.tick(&tracker).await.unwrap();
    assert_eq!(closed.len(), 1);

    // The socket tells the list: first its snapshot, then the watch's changes.
    let mut liveness = Vec::new();
    while liveness.last().map(String::as_str) != Some("offline") {
        let message = tokio::time::timeout(std::time::Duration::from_secs(5), socket.next())
            .await
            .expect("no liveness change pushed within 5 s")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = message {
            let message: Value = serde_json::from_str(&text).unwrap();
            if let Some(change) = message.get("machine_liveness") {
                liveness.push(change["liveness"].as_str().unwrap().to_owned());
            }
        }
    }
    assert_eq!(liveness.first().map(String::as_str), Some("online"));

    let run = get_json(&base, "/api/v1/runs/1").await;
    assert_eq!(run["summary"]["status"], "unknown");
    assert_eq!(run["summary"]["went_silent_at"], "2026-11-24T12:00:05Z");
    let page = get_text(&base, "/machine/run_data/1").await;
    assert!(
        page.contains("Closed by the server: the runner went silent at"),
        "{page}"
    );
    let machine = get_json(&base, "/api/v1/machines/1").await;
    assert_eq!(machine["liveness"], "offline");
    // A wall screen asks for the rigs that need someone.
    let offline = get_json(&base, "/api/v1/machines?liveness=offline").await;
    assert_eq!(offline["total"], 1);
    assert_eq!(offline["items"][0]["name"], "rig-1");
    let online = get_json(&base, "/api/v1/machines?liveness=online").await;
    assert_eq!(online["total"], 0);
    let bogus = reqwest::get(format!("{base}/api/v1/machines?liveness=asleep"))
        .await
        .unwrap();
    assert_eq!(bogus.status(), 400);
    let page = get_text(&base, "/?liveness=offline").await;
    assert!(page.contains(r#"<a href="/machine/1">rig-1</a>"#), "{page}");
    let page = get_text(&base, "/?liveness=quiet").await;
    assert!(page.contains("No machine is quiet now."), "{page}");

    // The rig comes back and reports its test: a clear answer, nothing changed, heard again.
    clock.set(server_now + Duration::minutes(12));
    let (path, body) = stop(
        "rig-1",
        "/rig/lamp",
        "lamp_on.py",
        "passed",
        "2026-11-24 13:12:00",
    );
    let (status, answer) = post(&base, path, &body).await;
    assert!((400..500).contains(&status), "{status} {answer}");
    assert_eq!(get_json(&base, "/api/v1/runs/1").await, run);
    let machine = get_json(&base, "/api/v1/machines/1").await;
    assert_eq!(machine["liveness"], "online");
    let page = get_text(&base, "/machine/run_data/1").await;
    assert!(page.contains("The runner came back at"), "{page}");
}

#[tokio::test]
async fn machines_sort_least_alive_first() {
    let server_now = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
    let clock = Arc::new(ManualClock::new(server_now));
    let tracker = Tracker::new(Arc::new(MemoryStore::new()), Arc::new(InProcessBus::new()))
        .with_clock(Arc::clone(&clock) as _);
    let base = serve(support::open_router(tracker.clone(), HttpConfig::default())).await;
    for rig in ["z-rig", "b-rig"] {
        assert_eq!(
            post(
                &base,
                "/tm_api/dry_run/",
                &small_plan(rig, "2026-11-24 12:00:00")
            )
            .await
            .0,
            201
        );
        let (path, body) = start(rig, "/rig/lamp", "lamp_on.py", "2026-11-24 12:00:01");
        assert_eq!(post(&base, path, &body).await.0, 202);
    }
    // Eleven minutes on, only b-rig is heard from.
    clock.set(server_now + Duration::minutes(11));
    let (path, body) = stop(
        "b-rig",
        "/rig/lamp",
        "lamp_on.py",
        "passed",
        "2026-11-24 12:11:00",
    );
    assert_eq!(post(&base, path, &body).await.0, 202);
    let names = |page: &Value| -> Vec<(String, String)> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().unwrap().to_owned(),
                    m["liveness"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let by_name = get_json(&base, "/api/v1/machines").await;
    assert_eq!(names(&by_name)[0].0, "b-rig");
    let least_alive = get_json(&base, "/api/v1/machines?sort=liveness").await;
    assert_eq!(
        names(&least_alive),
        [
            ("z-rig".to_owned(), "offline".to_owned()),
            ("b-rig".to_owned(), "online".to_owned())
        ]
    );
    let page = get_text(&base, "/?sort=liveness").await;
    assert!(page.find(">z-rig<").unwrap() < page.find(">b-rig<").unwrap());
    let bad = reqwest::get(format!("{base}/api/v1/machines?sort=age"))
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
}
