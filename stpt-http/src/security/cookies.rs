//! Reading and writing the cookies stpt sets: the session, the CSRF token, the page size.

use axum::http::{HeaderMap, HeaderValue, header};

/// The signed-in session's secret.
pub(crate) const SESSION_COOKIE: &str = "stpt_session";
/// The CSRF token that every form echoes (double submit).
pub(crate) const CSRF_COOKIE: &str = "stpt_csrf";

/// The value of cookie `name`, if the request carries it.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// How a cookie is sent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CookieRules<'a> {
    /// The mount prefix: the cookie covers it and every path under it.
    pub(crate) prefix: &'a str,
    /// Only over HTTPS.
    pub(crate) secure: bool,
}

impl CookieRules<'_> {
    /// A `Set-Cookie` value: HttpOnly always; `max_age` seconds, or `0` to delete.
    pub(crate) fn set(
        &self,
        name: &str,
        value: &str,
        same_site: &str,
        max_age: i64,
    ) -> Option<HeaderValue> {
        let secure = if self.secure { "; Secure" } else { "" };
        // `Path=/stpt` covers `/stpt` (the home page when nested) and `/stpt/...`;
        // `Path=/stpt/` would leave the home page without the cookie.
        let path = crate::extract::home_url(self.prefix);
        let cookie = format!(
            "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite={same_site}{secure}"
        );
        HeaderValue::from_str(&cookie).ok()
    }
}
