//! The query parameters of the history views, shared by the API and the pages: each names
//! its field in a clear `400` when it does not parse.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use stpt_core::history::{FlakyPolicy, HistoryQuery, MatrixSort, RunSearch, TextFilter};
use stpt_core::{FileRef, MachineId, Status, TestId};

use crate::ApiError;

/// A query string as name → value (the last value of a repeated name).
pub(crate) type Params = HashMap<String, String>;

/// The non-blank value of `name`, trimmed.
pub(crate) fn value<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .get(name)
        .map(|value| value.trim())
        .filter(|value| !value.is_empty())
}

fn number<T: std::str::FromStr>(params: &Params, name: &str) -> Result<Option<T>, ApiError> {
    value(params, name)
        .map(|text| {
            text.parse::<T>().map_err(|_| {
                ApiError::invalid(
                    name,
                    format!("`{name}` must be a whole number, got `{text}`"),
                )
            })
        })
        .transpose()
}

fn status(params: &Params, name: &str) -> Result<Option<Status>, ApiError> {
    value(params, name)
        .map(|text| {
            text.parse::<Status>().map_err(|_| {
                ApiError::invalid(
                    name,
                    format!(
                        "`{name}` must be one of waiting, running, passed, warning, failed, \
                         error, unknown, cancelled; got `{text}`"
                    ),
                )
            })
        })
        .transpose()
}

/// A time bound: RFC 3339 (`2026-12-01T08:00:00Z`) or a day (`2026-12-01`, its midnight UTC).
fn time(params: &Params, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    value(params, name)
        .map(|text| {
            if let Ok(at) = DateTime::parse_from_rfc3339(text) {
                return Ok(at.with_timezone(&Utc));
            }
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|day| day.and_hms_opt(0, 0, 0))
                .map(|midnight| midnight.and_utc())
                .ok_or_else(|| {
                    ApiError::invalid(
                        name,
                        format!(
                            "`{name}` must be a date (2026-12-01) or an RFC 3339 time \
                             (2026-12-01T08:00:00Z), got `{text}`"
                        ),
                    )
                })
        })
        .transpose()
}

/// `?machine=&status=&before=&limit=` of a test's history.
pub(crate) fn history_query(params: &Params) -> Result<HistoryQuery, ApiError> {
    Ok(HistoryQuery {
        machine: number(params, "machine")?.map(MachineId),
        status: status(params, "status")?,
        before: number(params, "before")?.map(TestId),
        limit: number(params, "limit")?.unwrap_or(0),
    })
}

/// `?q=&status=&machine=&since=&until=` of a run search.
pub(crate) fn run_search(params: &Params) -> Result<RunSearch, ApiError> {
    Ok(RunSearch {
        text: text(params)?,
        status: status(params, "status")?,
        machine: number(params, "machine")?.map(MachineId),
        since: time(params, "since")?,
        until: time(params, "until")?,
    })
}

/// `?q=`, the text searched for.
pub(crate) fn text(params: &Params) -> Result<Option<TextFilter>, ApiError> {
    Ok(TextFilter::new(value(params, "q").unwrap_or_default())?)
}

/// `?min_flips=` (default [`FlakyPolicy::default`]'s).
pub(crate) fn min_flips(params: &Params) -> Result<u32, ApiError> {
    Ok(number(params, "min_flips")?.unwrap_or(FlakyPolicy::default().min_flips))
}

/// `?limit=` of a list, 1 to `max`, `default` when absent.
pub(crate) fn limit(params: &Params, default: u32, max: u32) -> Result<u32, ApiError> {
    match number::<u32>(params, "limit")? {
        None => Ok(default),
        Some(asked) if (1..=max).contains(&asked) => Ok(asked),
        Some(_) => Err(ApiError::invalid(
            "limit",
            format!("`limit` must be between 1 and {max}"),
        )),
    }
}

/// What a matrix shows: `?master_path=&master_name=&machines=1,2&sort=failure_rate`.
pub(crate) struct MatrixParams {
    pub(crate) master: FileRef,
    pub(crate) machines: Vec<MachineId>,
    pub(crate) sort: MatrixSort,
}

/// The most machines a matrix may name.
const MAX_MATRIX_MACHINES: usize = 200;

pub(crate) fn matrix(params: &Params) -> Result<MatrixParams, ApiError> {
    let required = |name: &str| {
        params
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| ApiError::invalid(name, format!("`{name}` is required")))
    };
    let machines = value(params, "machines")
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .map(|id| {
                    id.parse::<i64>().map(MachineId).map_err(|_| {
                        ApiError::invalid(
                            "machines",
                            format!(
                                "`machines` is a comma-separated list of machine ids, got `{id}`"
                            ),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?
        .unwrap_or_default();
    if machines.len() > MAX_MATRIX_MACHINES {
        return Err(ApiError::invalid(
            "machines",
            format!("at most {MAX_MATRIX_MACHINES} machines"),
        ));
    }
    let sort = match value(params, "sort") {
        None | Some("plan") => MatrixSort::Plan,
        Some("failure_rate") => MatrixSort::FailureRate,
        Some(other) => {
            return Err(ApiError::invalid(
                "sort",
                format!("`sort` must be `plan` or `failure_rate`, got `{other}`"),
            ));
        }
    };
    Ok(MatrixParams {
        master: FileRef {
            file_path: required("master_path")?,
            file_name: required("master_name")?,
        },
        machines,
        sort,
    })
}

/// An export's format: `?format=json|csv` (and `junit` where offered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Csv,
    Junit,
}

pub(crate) fn format(params: &Params, junit: bool) -> Result<Format, ApiError> {
    match value(params, "format") {
        None | Some("json") => Ok(Format::Json),
        Some("csv") => Ok(Format::Csv),
        Some("junit") if junit => Ok(Format::Junit),
        Some(other) => Err(ApiError::invalid(
            "format",
            if junit {
                format!("`format` must be `json`, `csv` or `junit`, got `{other}`")
            } else {
                format!("`format` must be `json` or `csv`, got `{other}`")
            },
        )),
    }
}

/// A test key from a path segment.
pub(crate) fn key(text: &str) -> Result<stpt_core::history::TestKey, ApiError> {
    Ok(text.trim_end_matches('/').parse()?)
}
