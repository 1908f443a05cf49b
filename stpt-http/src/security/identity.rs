//! Who a person is: the hook a host fills ([`IdentityProvider`]), and stpt's own accounts
//! as its built-in implementation (the session cookie set at `/login/`).

use async_trait::async_trait;
use axum::http::request::Parts;
use std::fmt;
use stpt_core::accounts::Accounts;

use super::cookies;

/// A person using stpt's pages, as far as stpt needs to know: a name to show and whether
/// they are an admin.
///
/// Admins see a *Delete* button on machine and run pages and may use it; with stpt's own
/// accounts they also manage users and runner tokens at `/admin/`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Viewer {
    /// The name the pages show, e.g. a username.
    pub name: String,
    /// Whether this person may delete runs and machines.
    pub is_admin: bool,
}

impl Viewer {
    /// A viewer called `name`, an admin or not.
    pub fn new(name: impl Into<String>, is_admin: bool) -> Self {
        Viewer {
            name: name.into(),
            is_admin,
        }
    }
}

/// Says who sends a request: the hook through which a host with its own sign-in tells stpt
/// who the user is. Install it with [`HttpConfig::with_identity`](crate::HttpConfig::with_identity).
///
/// stpt calls it once per request to its routes, before the handler, with the request's
/// method, URI, headers and extensions (so it can read a cookie, a header set by a trusted
/// proxy, or an extension your own middleware inserted). `None` means anonymous. A
/// provider that fails to find out should log why and answer `None`: the request then
/// proceeds as anonymous (and is refused if [`ReadAccess::SignedIn`](crate::ReadAccess)
/// applies).
///
/// stpt's own accounts ([`HttpConfig::with_accounts`](crate::HttpConfig::with_accounts))
/// are the built-in implementation: they read stpt's session cookie.
///
/// ```
/// use async_trait::async_trait;
/// use axum::http::request::Parts;
/// use stpt_http::{IdentityProvider, Viewer};
///
/// /// Trusts the `X-User` and `X-Admin` headers that the lab's sign-in proxy sets (and
/// /// strips from what clients send).
/// #[derive(Debug)]
/// struct ProxyHeaders;
///
/// #[async_trait]
/// impl IdentityProvider for ProxyHeaders {
///     async fn identify(&self, request: &Parts) -> Option<Viewer> {
///         let name = request.headers.get("x-user")?.to_str().ok()?;
///         let admin = request.headers.get("x-admin").is_some_and(|value| value == "yes");
///         Some(Viewer::new(name, admin))
///     }
/// }
///
/// let config = stpt_http::HttpConfig::default()
///     .with_identity(std::sync::Arc::new(ProxyHeaders));
/// # let _ = config;
/// ```
#[async_trait]
pub trait IdentityProvider: Send + Sync + fmt::Debug + 'static {
    /// The person behind `request`, or `None` for an anonymous visitor.
    async fn identify(&self, request: &Parts) -> Option<Viewer>;
}

/// stpt's own accounts as an [`IdentityProvider`]: the user of the session cookie.
#[derive(Debug, Clone)]
pub(crate) struct AccountsIdentity {
    accounts: Accounts,
}

impl AccountsIdentity {
    pub(crate) fn new(accounts: Accounts) -> Self {
        AccountsIdentity { accounts }
    }
}

#[async_trait]
impl IdentityProvider for AccountsIdentity {
    async fn identify(&self, request: &Parts) -> Option<Viewer> {
        let secret = cookies::cookie(&request.headers, cookies::SESSION_COOKIE)?;
        match self.accounts.session(secret).await {
            Ok(session) => session.map(|session| Viewer {
                is_admin: session.user.is_admin(),
                name: session.user.username,
            }),
            Err(error) => {
                tracing::error!(%error, "session lookup failed; treating the request as anonymous");
                None
            }
        }
    }
}
