//! Cross-site request forgery protection by double submit: a random token in an HttpOnly,
//! `SameSite=Strict` cookie that every form must echo in a hidden field. Another site can
//! make the browser post a form, but can neither read nor set the cookie.

use axum::http::{HeaderMap, header};
use axum::response::Response;
use stpt_core::accounts::{random_secret, secrets_match};

use super::cookies::{CSRF_COOKIE, CookieRules, cookie};

/// The CSRF token of a request: the cookie's, or a new one to set.
#[derive(Debug, Clone)]
pub(crate) struct Csrf {
    token: String,
    fresh: bool,
}

impl Csrf {
    /// The request's token, or a fresh one if it has none (or a malformed one).
    pub(crate) fn of(headers: &HeaderMap) -> Csrf {
        match cookie(headers, CSRF_COOKIE).filter(|token| well_formed(token)) {
            Some(token) => Csrf {
                token: token.to_owned(),
                fresh: false,
            },
            None => Csrf {
                // Without OS randomness no form can be protected; an empty token matches
                // nothing, so forms fail closed.
                token: random_secret().unwrap_or_default(),
                fresh: true,
            },
        }
    }

    /// The token to put in forms.
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// Sets the cookie on `response` if the token is new.
    pub(crate) fn set_cookie(&self, rules: CookieRules<'_>, response: &mut Response) {
        if self.fresh {
            if let Some(value) = rules.set(CSRF_COOKIE, &self.token, "Strict", 60 * 60 * 24 * 30) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
        }
    }

    /// Whether `submitted` (the form's field) matches the request's cookie.
    pub(crate) fn verify(headers: &HeaderMap, submitted: &str) -> bool {
        match cookie(headers, CSRF_COOKIE) {
            Some(token) if well_formed(token) => secrets_match(token, submitted),
            _ => false,
        }
    }
}

fn well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}
