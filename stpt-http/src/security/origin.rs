//! Browsers' cross-site requests refused before any handler runs: form posts and socket
//! upgrades must come from this server's own pages.
//!
//! Browsers say where a request comes from in `Sec-Fetch-Site` and `Origin`, and another
//! site cannot forge either. Programs (runners, scripts, `curl`) send neither and pass;
//! the CSRF token still guards every form.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

use super::Security;
use crate::ApiError;

/// How [`same_origin`] answers a refusal.
#[derive(Debug, Clone)]
pub(crate) struct OriginGate {
    security: Arc<Security>,
    /// JSON (`403 forbidden`) for the sockets; plain text for the pages.
    json: bool,
}

impl OriginGate {
    pub(crate) fn pages(security: Arc<Security>) -> Self {
        OriginGate {
            security,
            json: false,
        }
    }

    pub(crate) fn sockets(security: Arc<Security>) -> Self {
        OriginGate {
            security,
            json: true,
        }
    }
}

/// Middleware: refuses a cross-site state-changing request (any method but `GET`, `HEAD`
/// and `OPTIONS`) or WebSocket upgrade with `403`.
pub(crate) async fn same_origin(
    State(gate): State<OriginGate>,
    request: Request,
    next: Next,
) -> Response {
    let reads = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let upgrade = request.headers().contains_key(header::UPGRADE);
    if (!reads || upgrade) && is_cross_site(request.headers(), gate.security.public_url.as_deref())
    {
        let message = "refused: the request comes from another site";
        return if gate.json {
            ApiError::new(StatusCode::FORBIDDEN, "forbidden", message).into_response()
        } else {
            (StatusCode::FORBIDDEN, message).into_response()
        };
    }
    next.run(request).await
}

/// Whether a browser says the request comes from another site. Requests that say nothing
/// (no `Sec-Fetch-Site`, no `Origin`) are not.
pub(crate) fn is_cross_site(headers: &HeaderMap, public_url: Option<&str>) -> bool {
    if headers
        .get("sec-fetch-site")
        .is_some_and(|site| site.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let Some(origin) = origin.to_str().ok().map(str::trim) else {
        return true;
    };
    // `null`: a sandboxed frame, a `file:` page, a redirect across sites.
    let Some((_, origin_host)) = origin.split_once("://") else {
        return true;
    };
    let same_host = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|host| host.trim().eq_ignore_ascii_case(origin_host))
    };
    let public_origin = public_url.map(|url| match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split('/').next().unwrap_or(rest);
            format!("{scheme}://{host}")
        }
        None => url.to_owned(),
    });
    let public = public_origin.is_some_and(|public| public.eq_ignore_ascii_case(origin));
    // A proxy may rewrite `Host`; it then says the original in `X-Forwarded-Host`, which a
    // browser cannot set on a cross-site form or socket.
    !(public
        || same_host(header::HOST)
        || same_host(header::HeaderName::from_static("x-forwarded-host")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn browsers_from_other_sites_are_told_apart() {
        let own = [("host", "stpt.lab:8000")];
        assert!(!is_cross_site(&headers(&own), None), "no browser headers");
        assert!(!is_cross_site(
            &headers(&[
                ("host", "stpt.lab:8000"),
                ("origin", "http://stpt.lab:8000")
            ]),
            None
        ));
        assert!(is_cross_site(
            &headers(&[
                ("host", "stpt.lab:8000"),
                ("origin", "https://evil.example")
            ]),
            None
        ));
        assert!(is_cross_site(
            &headers(&[("host", "stpt.lab:8000"), ("origin", "null")]),
            None
        ));
        assert!(is_cross_site(
            &headers(&[("host", "stpt.lab:8000"), ("sec-fetch-site", "cross-site")]),
            None
        ));
        assert!(!is_cross_site(
            &headers(&[
                ("host", "10.0.0.5:8000"),
                ("origin", "https://stpt.lab.example")
            ]),
            Some("https://stpt.lab.example/stpt")
        ));
    }
}
