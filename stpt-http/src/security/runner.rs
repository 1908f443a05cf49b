//! Runner authentication: `Authorization: Bearer <token>` checked against stpt's accounts,
//! or no token from a network the operator trusts. Without stpt's accounts (a host identity
//! alone) only the second exists, and a token that is sent is refused: it cannot be checked.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use stpt_core::accounts::RunnerToken;
use stpt_core::{ItemRef, MachineName, TestId, Tracker};

use super::client_address;
use crate::{ApiError, AppState};

/// Who posts this runner event: a runner token, or a trusted network (no token).
#[derive(Debug, Clone)]
pub(crate) struct RunnerAccess(Option<RunnerToken>);

impl FromRequestParts<AppState> for RunnerAccess {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let security = &state.security;
        match bearer(&parts.headers)? {
            Some(secret) => {
                let Some(accounts) = &security.runner_tokens else {
                    return Err(unauthorized(
                        "this server checks no runner tokens: post without one, from a network it accepts runners from",
                    ));
                };
                match accounts.authenticate_runner(secret).await? {
                    Some(token) => Ok(RunnerAccess(Some(token))),
                    None => Err(unauthorized("the runner token is unknown or revoked")),
                }
            }
            None if security.ingest.accepts_tokenless(client_address(parts)) => {
                Ok(RunnerAccess(None))
            }
            None => Err(unauthorized(
                "runner events need `Authorization: Bearer <runner token>`; an admin creates tokens",
            )),
        }
    }
}

impl RunnerAccess {
    /// `403` unless the token may post for `machine`.
    pub(crate) fn permit(&self, machine: &MachineName) -> Result<(), ApiError> {
        match &self.0 {
            Some(token) if !token.allows(machine) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "runner token `{}` may not post for machine `{machine}`",
                    token.name
                ),
            )),
            _ => Ok(()),
        }
    }

    /// `403` unless the token may post for the machine of test `id` (a missing test passes:
    /// the event then matches nothing, as without a token).
    pub(crate) async fn permit_test(&self, tracker: &Tracker, id: TestId) -> Result<(), ApiError> {
        let Some(token) = &self.0 else {
            return Ok(());
        };
        if token.machines.is_empty() {
            return Ok(());
        }
        let machine_id = match tracker.item(ItemRef::Test(id)).await {
            Ok(item) => item.machine_id,
            Err(stpt_core::Error::NotFound { .. }) => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        let machine = tracker.machine(machine_id).await?;
        let name = MachineName::new(machine.name).map_err(ApiError::from)?;
        self.permit(&name)
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

/// The bearer token, if the request has an `Authorization` header; `401` for another scheme.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| unauthorized("the `Authorization` header is not readable text"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(unauthorized(
            "the `Authorization` header must be `Bearer <runner token>`",
        )),
    }
}
