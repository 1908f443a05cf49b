//! Replays the seed's recorded story (`fixtures/seed-transcripts/seed-read-api.json`, see the
//! README beside it) against stpt and compares every answer with the seed's: same status,
//! same keys at every level (no more, no fewer), same value types, same formats, and the same
//! values wherever the README does not list them as varying. Once through the router for the
//! HTTP answers, once over a real socket for the seed's live messages.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

mod support;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures_util::StreamExt;
use http_body_util::BodyExt;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::time::Duration;
use stpt_http::HttpConfig;
use tokio_tungstenite::tungstenite::Message;
use tower::ServiceExt;

const TRANSCRIPT: &str = include_str!("fixtures/seed-transcripts/seed-read-api.json");
/// What the seed's recording sent as `Host`.
const RECORDED_HOST: &str = "127.0.0.1:8000";
/// Keys the recording added to trimmed lists; not part of the seed's answer.
const RECORDING_NOTE: &str = "_note";

fn transcript() -> Value {
    serde_json::from_str(TRANSCRIPT).unwrap()
}

/// Seed ids (which vary between recordings) to stpt's ids, learnt as answers are compared.
#[derive(Debug, Default)]
struct Ids(HashMap<i64, i64>);

impl Ids {
    fn learn(&mut self, seed: &Value, stpt: &Value, at: &str) {
        let (Some(seed), Some(stpt)) = (seed.as_i64(), stpt.as_i64()) else {
            return;
        };
        if let Some(known) = self.0.insert(seed, stpt) {
            assert_eq!(known, stpt, "{at}: seed id {seed} maps to two stpt ids");
        }
    }

    /// The request path with the seed's ids replaced by stpt's (unknown ids stay).
    fn path(&self, path: &str) -> String {
        let (route, query) = path
            .split_once('?')
            .map_or((path, None), |(r, q)| (r, Some(q)));
        let route: Vec<String> = route
            .split('/')
            .map(|segment| match segment.parse::<i64>() {
                Ok(id) => self
                    .0
                    .get(&id)
                    .map_or_else(|| segment.to_owned(), i64::to_string),
                Err(_) => segment.to_owned(),
            })
            .collect();
        let route = route.join("/");
        query.map_or_else(|| route.clone(), |query| format!("{route}?{query}"))
    }
}

/// How one value of the seed's answers may differ in stpt's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// The same value.
    Exact,
    /// An id: the same type; learnt for later requests.
    Id,
    /// The server's clock in the seed's display format, `dd-mm-YYYY  HH:MM:SS`, or null.
    ServerTime,
    /// Django's `timesince` text (non-breaking spaces, no "ago"), or null.
    Timesince,
    /// A page address ending in the item's id.
    Address,
    /// The request's host.
    Host,
}

/// The rule for `key`: the README's varying values. `times_are_the_servers` says whether a
/// `timestamp_start`/`timestamp_stop` here came from the server's clock (runs, scenarios)
/// rather than the runner's (tests).
fn rule(key: &str, times_are_the_servers: bool) -> Rule {
    match key {
        "pk" | "dryrundata" | "machine" | "id" => Rule::Id,
        "current_site" => Rule::Host,
        "absolute_url" => Rule::Address,
        "started_ago" | "finished_ago" | "duration" => Rule::Timesince,
        "timestamp_start" | "timestamp_stop" if times_are_the_servers => Rule::ServerTime,
        _ => Rule::Exact,
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "float",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_display_time(text: &str) -> bool {
    let bytes = text.as_bytes();
    text.len() == 20
        && text.char_indices().all(|(i, c)| match i {
            2 | 5 => c == '-',
            10 | 11 => c == ' ',
            14 | 17 => c == ':',
            _ => c.is_ascii_digit(),
        })
        && bytes.len() == 20
}

fn is_timesince(text: &str) -> bool {
    const UNITS: [&str; 6] = ["year", "month", "week", "day", "hour", "minute"];
    !text.contains("ago")
        && text.split(", ").all(|part| {
            let Some((count, unit)) = part.split_once('\u{a0}') else {
                return false;
            };
            count.parse::<u64>().is_ok()
                && UNITS
                    .iter()
                    .any(|name| unit == *name || unit == format!("{name}s"))
        })
}

/// Compares one answer of stpt's with the seed's, recursively; learns ids on the way.
fn compare(seed: &Value, stpt: &Value, at: &str, server_times: bool, ids: &mut Ids) {
    match (seed, stpt) {
        (Value::Object(seed), Value::Object(stpt)) => {
            compare_objects(seed, stpt, at, server_times, ids)
        }
        (Value::Array(seed), Value::Array(stpt)) => {
            assert_eq!(seed.len(), stpt.len(), "{at}: list lengths\nstpt: {stpt:?}");
            for (n, (seed, stpt)) in seed.iter().zip(stpt).enumerate() {
                compare(seed, stpt, &format!("{at}[{n}]"), server_times, ids);
            }
        }
        _ => assert_eq!(seed, stpt, "{at}"),
    }
}

fn compare_objects(
    seed: &Map<String, Value>,
    stpt: &Map<String, Value>,
    at: &str,
    server_times: bool,
    ids: &mut Ids,
) {
    let trimmed = seed.contains_key(RECORDING_NOTE);
    let seed_keys: Vec<&String> = seed.keys().filter(|k| *k != RECORDING_NOTE).collect();
    let mut stpt_keys: Vec<&String> = stpt.keys().collect();
    let mut sorted_seed = seed_keys.clone();
    sorted_seed.sort();
    stpt_keys.sort();
    assert_eq!(sorted_seed, stpt_keys, "{at}: keys");
    for key in seed_keys {
        let (seed_value, stpt_value) = (&seed[key], &stpt[key]);
        let here = format!("{at}.{key}");
        if trimmed && key == "results" {
            compare_trimmed(seed_value, stpt_value, &here, ids);
            continue;
        }
        if seed_value.is_object() || seed_value.is_array() {
            compare(seed_value, stpt_value, &here, server_times, ids);
            continue;
        }
        if seed_value.is_null() || stpt_value.is_null() {
            assert_eq!(
                json_type(seed_value),
                json_type(stpt_value),
                "{here}: {stpt_value}"
            );
            continue;
        }
        assert_eq!(
            json_type(seed_value),
            json_type(stpt_value),
            "{here}: {stpt_value}"
        );
        match rule(key, server_times) {
            Rule::Exact => assert_eq!(seed_value, stpt_value, "{here}"),
            Rule::Id => ids.learn(seed_value, stpt_value, &here),
            Rule::Host => {}
            Rule::ServerTime => assert!(
                is_display_time(stpt_value.as_str().unwrap()),
                "{here}: {stpt_value}"
            ),
            Rule::Timesince => assert!(
                is_timesince(stpt_value.as_str().unwrap()),
                "{here}: {stpt_value:?}"
            ),
            Rule::Address => {
                let (seed_url, stpt_url) =
                    (seed_value.as_str().unwrap(), stpt_value.as_str().unwrap());
                let (seed_base, _) = seed_url.rsplit_once('/').unwrap();
                let own_id = stpt["pk"].to_string();
                assert_eq!(
                    stpt_url,
                    format!("{seed_base}/{own_id}"),
                    "{here}: the item's own page"
                );
            }
        }
    }
}

/// A list the recording trimmed to a few entries: each recorded entry is found in stpt's
/// page by name and compared; every entry of stpt's has the recorded entries' shape.
fn compare_trimmed(seed: &Value, stpt: &Value, at: &str, ids: &mut Ids) {
    let (seed, stpt) = (seed.as_array().unwrap(), stpt.as_array().unwrap());
    for (n, recorded) in seed.iter().enumerate() {
        let name = &recorded["machine_name"];
        let found = stpt
            .iter()
            .find(|entry| entry["machine_name"] == *name)
            .unwrap_or_else(|| panic!("{at}[{n}]: {name} is not on stpt's page"));
        compare(recorded, found, &format!("{at}[{n}]"), true, ids);
    }
    for (n, entry) in stpt.iter().enumerate() {
        same_shape(&seed[0], entry, &format!("{at}[{n}]"));
    }
}

/// The same keys at every level and the same value types (`null` aside), values aside.
fn same_shape(seed: &Value, stpt: &Value, at: &str) {
    match (seed, stpt) {
        (Value::Object(seed), Value::Object(stpt)) => {
            let mut seed_keys: Vec<&String> =
                seed.keys().filter(|k| *k != RECORDING_NOTE).collect();
            let mut stpt_keys: Vec<&String> = stpt.keys().collect();
            seed_keys.sort();
            stpt_keys.sort();
            assert_eq!(seed_keys, stpt_keys, "{at}: keys");
            for (key, value) in seed.iter().filter(|(k, _)| *k != RECORDING_NOTE) {
                same_shape(value, &stpt[key], &format!("{at}.{key}"));
            }
        }
        (Value::Null, _) | (_, Value::Null) => {}
        _ => assert_eq!(json_type(seed), json_type(stpt), "{at}: {stpt}"),
    }
}

/// Whether the times in an answer come from the server's clock (a run's and its scenarios'),
/// not the runner's (a test's own, and the echoes of what the runner posted).
fn times_are_the_servers(method: &str, path: &str) -> bool {
    method == "GET" && !path.starts_with("/tm_api/test/")
}

async fn call(app: &Router, method: &str, path: &str, body: &Value) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", RECORDED_HOST);
    let body = if body.is_null() {
        Body::empty()
    } else {
        request = request.header("content-type", "application/json");
        Body::from(body.to_string())
    };
    let response = app
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or_else(|error| {
        panic!(
            "{method} {path}: not JSON ({error}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, value)
}

/// The names of the machines the recording's machines list shows before the story's own;
/// others existed too (the list is trimmed), so stpt gets as many, the known ones by name.
fn machines_before(transcript: &Value) -> Vec<String> {
    let story = transcript["machine_name"].as_str().unwrap();
    let others = transcript["machine_pk"].as_i64().unwrap() - 1;
    let recorded: Vec<(i64, String)> = transcript["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|step| step["response"]["body"]["results"].as_array())
        .flatten()
        .filter(|machine| machine["machine_name"] != story)
        .filter_map(|machine| {
            Some((
                machine["pk"].as_i64()?,
                machine["machine_name"].as_str()?.to_owned(),
            ))
        })
        .collect();
    (1..=others)
        .map(|pk| {
            recorded
                .iter()
                .find(|(recorded_pk, _)| *recorded_pk == pk)
                .map_or_else(|| format!("other-rig-{pk}"), |(_, name)| name.clone())
        })
        .collect()
}

/// Every step of the recorded story through the router, each answer compared with the seed's.
#[tokio::test]
async fn the_seed_read_api_answers_as_the_seed() {
    let transcript = transcript();
    let app = support::open_router(support::tracker(), HttpConfig::default());
    // The other machines of the recording, each with a plan (they were all `waiting`).
    for name in machines_before(&transcript) {
        let plan = support::small_plan(&name, "2026-11-29 09:00:00");
        let (status, body) = call(&app, "POST", "/tm_api/dry_run/", &plan).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    let mut ids = Ids::default();
    let mut pinned = Vec::new();
    for (n, step) in transcript["steps"].as_array().unwrap().iter().enumerate() {
        let request = &step["request"];
        let expected = &step["response"];
        let method = request["method"].as_str().unwrap();
        let path = ids.path(request["path"].as_str().unwrap());
        let (status, body) = call(&app, method, &path, &request["body"]).await;
        let at = format!("step {n} ({}: {method} {path})", step["step"]);
        assert_eq!(
            u64::from(status.as_u16()),
            expected["status"].as_u64().unwrap(),
            "{at}: {body}"
        );
        compare(
            &expected["body"],
            &body,
            &at,
            times_are_the_servers(method, request["path"].as_str().unwrap()),
            &mut ids,
        );
        if method == "GET" {
            pinned.push((step["step"].as_str().unwrap().to_owned(), path, body));
        }
    }

    // One answer per seed read endpoint, pinned (the story's last answer of each).
    for endpoint in [
        "/tm_api/machines/",
        "/tm_api/machine_dry_run_datas/",
        "/tm_api/machine_last_data/",
        "/tm_api/master_scenario/",
        "/tm_api/scenario/",
        "/tm_api/test/",
    ] {
        let (step, path, body) = pinned
            .iter()
            .rev()
            .find(|(_, path, body)| path.starts_with(endpoint) && !body["detail"].is_string())
            .unwrap();
        let name = endpoint
            .trim_start_matches("/tm_api/")
            .trim_end_matches('/');
        insta::with_settings!({ description => format!("{step}: GET {path}") }, {
            insta::assert_json_snapshot!(name, body);
        });
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(base: &str, path: &str) -> Socket {
    let url = format!("{}{path}", base.replace("http://", "ws://"));
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// The next text message, within a few seconds.
async fn next_message(socket: &mut Socket, what: &str) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .unwrap_or_else(|_| panic!("{what}: no message"))
            .unwrap()
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// Whether a message arrives within `wait`.
async fn quiet_for(socket: &mut Socket, wait: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(wait, socket.next()).await {
            Err(_) => return None,
            Ok(Some(Ok(Message::Text(text)))) => return Some(serde_json::from_str(&text).unwrap()),
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("socket ended: {other:?}"),
        }
    }
}

/// The story's plan, then its events one by one over HTTP: after each, each of the seed's
/// three sockets says what the seed's said, message for message.
#[tokio::test]
async fn the_seed_sockets_send_the_seeds_messages() {
    let transcript = transcript();
    let base = support::serve(support::open_router(
        support::tracker(),
        HttpConfig::default(),
    ))
    .await;
    let steps = transcript["steps"].as_array().unwrap();
    let plan = &steps[0]["request"];
    assert_eq!(plan["path"], "/tm_api/dry_run/");
    let (status, _) = support::post(&base, "/tm_api/dry_run/", &plan["body"]).await;
    assert_eq!(status, 201);
    let machine = 1;
    let mut ids = Ids::default();
    ids.learn(&transcript["machine_pk"], &json!(machine), "machine");

    let recorded = &transcript["websocket"];
    let mut sockets = Vec::new();
    for seed_path in [
        "/ws/machine/status/",
        "/ws/machine/<pk>/runs/",
        "/ws/machine/<pk>/last/",
    ] {
        let path = seed_path.replace("<pk>", &machine.to_string());
        let messages = recorded[seed_path].as_array().unwrap().clone();
        sockets.push((seed_path, connect(&base, &path).await, messages));
    }
    // The seed sent nothing on connect.
    for (path, socket, _) in &mut sockets {
        assert_eq!(
            quiet_for(socket, Duration::from_millis(300)).await,
            None,
            "{path}"
        );
    }

    let events = steps.iter().filter(|step| {
        step["request"]["method"] == "POST" && step["request"]["path"] != "/tm_api/dry_run/"
    });
    let recorded_count = sockets[0].2.len();
    for (n, event) in events.take(recorded_count).enumerate() {
        let request = &event["request"];
        let (status, body) =
            support::post(&base, request["path"].as_str().unwrap(), &request["body"]).await;
        assert_eq!(status, 202, "{body}");
        for (path, socket, messages) in &mut sockets {
            let message = next_message(socket, path).await;
            let at = format!("{path} message {n}");
            compare(&messages[n], &message, &at, true, &mut ids);
        }
    }
    for (path, socket, _) in &mut sockets {
        assert_eq!(
            quiet_for(socket, Duration::from_millis(400)).await,
            None,
            "{path}: one message per event"
        );
    }
}

/// A burst of events cannot flood the seed's last-run socket: at most one `machine_data` per
/// 250 ms, and the last one is the latest state.
#[tokio::test]
async fn the_seed_last_run_socket_coalesces_a_burst() {
    const TESTS: usize = 200;
    let base = support::serve(support::open_router(
        support::tracker(),
        HttpConfig::default(),
    ))
    .await;
    let (status, _) = support::post(
        &base,
        "/tm_api/dry_run/",
        &support::big_plan("burst", TESTS),
    )
    .await;
    assert_eq!(status, 201);
    let mut socket = connect(&base, "/ws/machine/1/last/").await;
    let started = tokio::time::Instant::now();
    let client = reqwest::Client::new();
    for n in 0..TESTS {
        let name = format!("t{n:04}.py");
        for (path, body) in [
            support::start("burst", "/rig/big", &name, "2026-11-24 13:01:00"),
            support::stop("burst", "/rig/big", &name, "passed", "2026-11-24 13:01:01"),
        ] {
            let answer = client
                .post(format!("{base}{path}"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 202, "{name}");
        }
    }
    let mut messages = Vec::new();
    loop {
        let message = next_message(&mut socket, "machine_data").await;
        let done =
            message["machine_data"]["last_master_scenario"]["tests_statistics"]["passed"] == TESTS;
        messages.push(message);
        if done {
            break;
        }
    }
    let elapsed = started.elapsed();
    let allowed = usize::try_from(elapsed.as_millis() / 250).unwrap() + 2;
    assert!(
        messages.len() <= allowed,
        "{} machine_data in {elapsed:?} for {} events",
        messages.len(),
        TESTS * 2
    );
    assert_eq!(
        quiet_for(&mut socket, Duration::from_millis(400)).await,
        None
    );
    let last = &messages.last().unwrap()["machine_data"]["last_master_scenario"];
    assert_eq!(last["status"], "passed");
    assert_eq!(last["tests_count"], TESTS);
}
