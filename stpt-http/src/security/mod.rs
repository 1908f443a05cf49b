//! Who is asking: signed-in users (session cookie), runners (bearer token or trusted
//! network), and the rules on what each may do.

mod access;
pub(crate) mod cookies;
mod csrf;
mod identity;
mod mail;
mod origin;
mod runner;
pub(crate) mod text;
mod throttle;

use axum::extract::{ConnectInfo, FromRequestParts, OriginalUri, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use stpt_core::accounts::Accounts;

use crate::ApiError;
use crate::extract::MountPrefix;

pub use access::{IngestAccess, ReadAccess};
pub(crate) use cookies::CookieRules;
pub(crate) use csrf::Csrf;
pub(crate) use identity::AccountsIdentity;
pub use identity::{IdentityProvider, Viewer};
pub use mail::{LogMailer, Mail, Mailer};
pub(crate) use origin::{OriginGate, is_cross_site, same_origin};
pub(crate) use runner::RunnerAccess;
pub(crate) use throttle::LoginThrottle;

/// Failed sign-ins allowed per client address and username within [`LOGIN_WINDOW`].
const LOGIN_FAILURES: usize = 5;
/// The window of [`LOGIN_FAILURES`].
const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Everything the routers need to decide who may do what.
#[derive(Debug)]
pub(crate) struct Security {
    /// Who people are: the host's provider, or stpt's accounts; `None`: everyone is anonymous.
    pub(crate) identity: Option<Arc<dyn IdentityProvider>>,
    /// stpt's accounts when they sign people in (sign-in, password reset and admin pages
    /// exist); `None` with a host identity or without accounts.
    pub(crate) sign_in: Option<Accounts>,
    /// stpt's accounts when they check runner tokens.
    pub(crate) runner_tokens: Option<Accounts>,
    pub(crate) read: ReadAccess,
    pub(crate) ingest: IngestAccess,
    pub(crate) secure_cookies: bool,
    pub(crate) mailer: Arc<dyn Mailer>,
    pub(crate) public_url: Option<String>,
    pub(crate) throttle: LoginThrottle,
}

impl Security {
    pub(crate) fn new(config: &crate::HttpConfig) -> Self {
        let identity = match (&config.identity, &config.accounts) {
            (Some(host), _) => Some(Arc::clone(host)),
            (None, Some(accounts)) => {
                Some(Arc::new(AccountsIdentity::new(accounts.clone())) as Arc<dyn IdentityProvider>)
            }
            (None, None) => None,
        };
        Security {
            identity,
            sign_in: config
                .accounts
                .clone()
                .filter(|_| config.identity.is_none()),
            runner_tokens: config.accounts.clone(),
            read: config.read_access,
            ingest: config.ingest_access.clone(),
            secure_cookies: config.secure_cookies,
            mailer: Arc::clone(&config.mailer),
            public_url: config.public_url.clone(),
            throttle: LoginThrottle::new(LOGIN_FAILURES, LOGIN_WINDOW),
        }
    }

    /// How cookies are set for this request.
    pub(crate) fn cookie_rules<'a>(&self, prefix: &'a str, headers: &HeaderMap) -> CookieRules<'a> {
        CookieRules {
            prefix,
            secure: self.secure_cookies || forwarded_https(headers),
        }
    }
}

/// Behind a TLS-terminating proxy that says so, cookies get `Secure`. Trusting the header
/// is harmless here: it can only make cookies stricter.
fn forwarded_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

/// Who sends this request, if anyone (set by [`identify`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Caller(Option<Viewer>);

impl Caller {
    pub(crate) fn viewer(&self) -> Option<&Viewer> {
        self.0.as_ref()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or_default())
    }
}

/// The client's address, when the server was started with connect info.
pub(crate) fn client_address(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip())
}

/// Page paths anyone may open even when reading needs sign-in.
fn is_public_page(path: &str) -> bool {
    [
        "/login",
        "/logout",
        "/password_reset",
        "/password-reset",
        "/reset/",
        "/static/",
    ]
    .iter()
    .any(|public| path.starts_with(public))
}

/// Renders the page that turns an anonymous reader away when there is no stpt sign-in page
/// to send them to; gets the mount prefix.
pub(crate) type RefusedPage = Arc<dyn Fn(&str) -> Response + Send + Sync>;

/// The state of [`identify`]: the rules, and how the router it guards answers refusals.
#[derive(Clone)]
pub(crate) struct Gate {
    security: Arc<Security>,
    /// `None`: a JSON router (API, sockets), refusals are `401` JSON. `Some`: the pages.
    pages: Option<RefusedPage>,
}

impl Gate {
    /// For the JSON API and the sockets.
    pub(crate) fn json(security: Arc<Security>) -> Self {
        Gate {
            security,
            pages: None,
        }
    }

    /// For the pages.
    pub(crate) fn pages(security: Arc<Security>, refused: RefusedPage) -> Self {
        Gate {
            security,
            pages: Some(refused),
        }
    }
}

/// Middleware: asks the identity provider who sends the request and, when reading needs
/// sign-in, turns anonymous reads away.
pub(crate) async fn identify(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    let security = &gate.security;
    let (mut parts, body) = request.into_parts();
    let viewer = match &security.identity {
        Some(identity) => identity.identify(&parts).await,
        None => None,
    };
    let reads = parts.method == Method::GET || parts.method == Method::HEAD;
    let path = parts.uri.path().to_owned();
    if viewer.is_none() && security.read == ReadAccess::SignedIn && reads {
        match &gate.pages {
            None => {
                return ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "sign in to read: this server's reads need a signed-in user",
                )
                .into_response();
            }
            Some(_) if is_public_page(&path) => {}
            Some(refused) => {
                let Ok(MountPrefix(prefix)) =
                    MountPrefix::from_request_parts(&mut parts, &()).await;
                if security.sign_in.is_none() {
                    return refused(&prefix);
                }
                let original = parts
                    .extensions
                    .get::<OriginalUri>()
                    .map_or_else(|| parts.uri.clone(), |uri| uri.0.clone());
                let next_path = original
                    .path_and_query()
                    .map_or("/", |path_and_query| path_and_query.as_str());
                let query = serde_urlencoded::to_string([("next", next_path)]).unwrap_or_default();
                return Redirect::to(&format!("{prefix}/login/?{query}")).into_response();
            }
        }
    }
    parts.extensions.insert(Caller(viewer));
    next.run(Request::from_parts(parts, body)).await
}

/// The longest `next` address followed after signing in, in bytes.
const MAX_NEXT_BYTES: usize = 2048;

/// A safe place to go after signing in: a path on this server, never another host.
///
/// Only a relative path of printable ASCII is followed: browsers drop tabs and newlines
/// from addresses and read `\\` as `/`, so `/\t/evil.example/` or `/\\evil.example` would
/// lead elsewhere; a control character would not even fit in a `Location` header.
pub(crate) fn safe_next(next: Option<&str>, prefix: &str) -> String {
    match next {
        Some(next) if is_local_path(next) => next.to_owned(),
        _ => crate::extract::home_url(prefix),
    }
}

fn is_local_path(next: &str) -> bool {
    let bytes = next.as_bytes();
    bytes.len() <= MAX_NEXT_BYTES
        && bytes.first() == Some(&b'/')
        && bytes.get(1) != Some(&b'/')
        && bytes
            .iter()
            .all(|byte| byte.is_ascii_graphic() && *byte != b'\\')
}

/// The `Cache-Control` and redirect answer after a form: `303 See Other` to `to`.
pub(crate) fn see_other(to: &str) -> Response {
    // `Redirect::to` panics on a value that is not a valid header; every caller passes a
    // checked path, and anything else goes home rather than failing.
    let location = axum::http::HeaderValue::from_str(to)
        .unwrap_or_else(|_| axum::http::HeaderValue::from_static("/"));
    let mut response = StatusCode::SEE_OTHER.into_response();
    response.headers_mut().insert(header::LOCATION, location);
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}
