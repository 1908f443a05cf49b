//! The wall view: one tile per rig, sized to fill a screen across the room, failing rigs
//! first. It refreshes its grid from the server (on machine changes and every few seconds),
//! so new rigs appear by themselves.

use axum::extract::Query;
use axum::response::Response;
use serde::Serialize;
use stpt_core::{Liveness, MachineSummary, PageRequest, RunSummary, Status};

use super::views::Crumb;
use super::{Cx, PageError, View};
use crate::insight::params::{self, Params};

/// The most rigs one wall shows.
const MAX_TILES: usize = 500;

#[derive(Debug, Serialize)]
struct WallData {
    /// `?name=`: only rigs whose name starts with this (a wall per lab bay).
    name_prefix: Option<String>,
    grid_url: String,
    tiles: Vec<Tile>,
}

#[derive(Debug, Serialize)]
struct Tile {
    name: String,
    url: String,
    status: Status,
    icon: &'static str,
    failed: u32,
    done: u32,
    total: u32,
    liveness: Option<&'static str>,
    /// Quiet or offline while its run goes on: the rig may be stuck.
    stale: bool,
    failing: bool,
    /// The running test's file name, while one runs.
    current_test: Option<String>,
    /// "≈ 38 min left", while the run goes on and an estimate exists.
    left: Option<String>,
}

/// An icon per status, so colour is not the only signal.
pub(super) fn status_icon(status: Status) -> &'static str {
    match status {
        Status::Waiting => "…",
        Status::Running => "▶",
        Status::Passed => "✓",
        Status::Warning => "!",
        Status::Failed => "✗",
        Status::Error => "⚠",
        Status::Unknown => "?",
        Status::Cancelled => "⊘",
    }
}

impl Tile {
    fn new(machine: MachineSummary, run: Option<&RunSummary>, prefix: &str) -> Self {
        let counts = run.map(|run| run.statistics.counts).unwrap_or_default();
        let status = run.map_or(Status::Unknown, |run| run.status);
        let failed = counts.failures();
        let stale = status.is_ongoing()
            && matches!(machine.liveness, Some(Liveness::Quiet | Liveness::Offline));
        Tile {
            url: format!("{prefix}/machine/{}/last", machine.id),
            name: machine.name,
            icon: status_icon(status),
            failing: failed > 0 || matches!(status, Status::Failed | Status::Error),
            status,
            failed,
            done: counts.finished(),
            total: counts.total(),
            liveness: machine.liveness.map(Liveness::as_str),
            stale,
            current_test: None,
            left: None,
        }
    }

    /// Adds the running test and the time left, from the run's estimate (held between
    /// reads by the tracker, so a wall refreshing every few seconds costs little).
    async fn with_progress(mut self, cx: &Cx, run: &RunSummary) -> Self {
        if !run.status.is_ongoing() {
            return self;
        }
        let Ok(eta) = cx.tracker().eta(run.id).await else {
            return self;
        };
        self.left = eta.remaining_seconds.map(|seconds| {
            let minutes = (seconds + 59) / 60;
            if minutes == 0 {
                "ending now".to_owned()
            } else if minutes >= 60 {
                format!("≈ {} h {:02} min left", minutes / 60, minutes % 60)
            } else {
                format!("≈ {minutes} min left")
            }
        });
        if let Some(running) = eta.running {
            self.current_test = cx
                .tracker()
                .item(stpt_core::ItemRef::Test(running.test_id))
                .await
                .ok()
                .map(|item| item.file.file_name);
        }
        self
    }
}

/// `/wall`: the whole page; `/wall?grid=1`: only its grid, for the page's refresh.
pub(super) async fn wall_page(cx: Cx, Query(query): Query<Params>) -> Response {
    let result: Result<Response, PageError> = async {
        let name_prefix = params::value(&query, "name").map(str::to_owned);
        let folded = name_prefix.as_deref().map(str::to_lowercase);
        let mut machines = Vec::new();
        let mut number = 1;
        while machines.len() < MAX_TILES {
            let page = cx.tracker().machines(PageRequest::new(number, 100)?).await;
            let page = match page {
                Ok(page) => page,
                // Past the last page.
                Err(stpt_core::Error::NotFound { .. }) => break,
                Err(error) => return Err(error.into()),
            };
            let last = page.request.number() >= page.total_pages();
            machines.extend(page.items.into_iter().filter(|machine| {
                folded
                    .as_deref()
                    .is_none_or(|prefix| machine.name.to_lowercase().starts_with(prefix))
            }));
            if last {
                break;
            }
            number += 1;
        }
        let mut tiles = Vec::with_capacity(machines.len());
        for machine in machines.into_iter().take(MAX_TILES) {
            let latest = match machine.latest_run {
                Some(_) => cx
                    .tracker()
                    .store()
                    .runs(machine.id, PageRequest::new(1, 1)?)
                    .await?
                    .items
                    .into_iter()
                    .next(),
                None => None,
            };
            let tile = Tile::new(machine, latest.as_ref(), &cx.prefix);
            tiles.push(match &latest {
                Some(run) => tile.with_progress(&cx, run).await,
                None => tile,
            });
        }
        // Failing rigs first, then stale ones, each group by name.
        tiles.sort_by(|a, b| {
            (!a.failing, !a.stale, a.name.to_lowercase()).cmp(&(
                !b.failing,
                !b.stale,
                b.name.to_lowercase(),
            ))
        });
        let kept = name_prefix
            .as_deref()
            .map(|name| serde_urlencoded::to_string([("name", name)]).unwrap_or_default())
            .map_or_else(String::new, |pair| format!("&{pair}"));
        let data = WallData {
            grid_url: format!("{}/wall/?grid=1{kept}", cx.prefix),
            name_prefix,
            tiles,
        };
        let grid_only = params::value(&query, "grid") == Some("1");
        cx.render(View {
            template: if grid_only {
                "stpt/wall_grid.html"
            } else {
                "stpt/wall.html"
            },
            kind: "wall",
            title: "Wall".to_owned(),
            breadcrumbs: vec![cx.crumb_home(), Crumb::here("Wall")],
            live: Some(format!("{}/ws/v1/machine/status/?liveness=1", cx.prefix)),
            data,
        })
    }
    .await;
    cx.finish(result)
}
