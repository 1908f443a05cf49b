//! The CSS, JavaScript and icon the pages use, embedded in the binary and served under
//! `/static/`: nothing is fetched from any other host.
//!
//! Pages link each asset with `?v=<hash of its bytes>`; a request carrying the current hash
//! may be cached for a year, any other is revalidated by its `ETag`.

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use std::sync::LazyLock;

/// One embedded file.
#[derive(Debug)]
struct Asset {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: [Asset; 6] = [
    Asset {
        path: "stpt.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../assets/stpt.css"),
    },
    Asset {
        path: "stpt.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/stpt.js"),
    },
    Asset {
        path: "favicon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../assets/favicon.svg"),
    },
    Asset {
        path: "vendor/highlight.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/vendor/highlight.min.js"),
    },
    Asset {
        path: "vendor/highlight-github-dark.min.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../assets/vendor/highlight-github-dark.min.css"),
    },
    Asset {
        path: "vendor/LICENSE-highlight.js",
        content_type: "text/plain; charset=utf-8",
        bytes: include_bytes!("../assets/vendor/LICENSE-highlight.js"),
    },
];

/// Each asset's version: a hash of its bytes, in [`ASSETS`] order.
static VERSIONS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| format!("{:016x}", fnv1a(asset.bytes)))
        .collect()
});

/// FNV-1a, 64 bits: enough to tell two versions of a file apart.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn versioned_url(prefix: &str, index: usize) -> String {
    let version = VERSIONS.get(index).map_or("", String::as_str);
    let path = ASSETS.get(index).map_or("", |asset| asset.path);
    format!("{prefix}/static/{path}?v={version}")
}

/// The assets' URLs as templates use them.
#[derive(Debug, Serialize)]
pub(crate) struct AssetUrls {
    css: String,
    js: String,
    favicon: String,
    highlight_js: String,
    highlight_css: String,
}

/// The assets' URLs under `prefix`.
pub(crate) fn urls(prefix: &str) -> AssetUrls {
    AssetUrls {
        css: versioned_url(prefix, 0),
        js: versioned_url(prefix, 1),
        favicon: versioned_url(prefix, 2),
        highlight_js: versioned_url(prefix, 3),
        highlight_css: versioned_url(prefix, 4),
    }
}

/// `GET /static/...` for every asset.
pub(crate) fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let mut router = Router::new();
    for index in 0..ASSETS.len() {
        if let Some(asset) = ASSETS.get(index) {
            router = router.route(
                &format!("/static/{}", asset.path),
                get(
                    move |uri: Uri, headers: HeaderMap| async move { serve(index, &uri, &headers) },
                ),
            );
        }
    }
    router
}

fn serve(index: usize, uri: &Uri, headers: &HeaderMap) -> Response {
    let (Some(asset), Some(version)) = (ASSETS.get(index), VERSIONS.get(index)) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let etag = format!("\"{version}\"");
    let current = uri
        .query()
        .is_some_and(|query| query.split('&').any(|pair| pair == format!("v={version}")));
    let cache = if current {
        "public, max-age=31536000, immutable"
    } else {
        "public, no-cache"
    };
    let mut response = if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag))
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = asset.bytes.into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        response
    };
    let response_headers = response.headers_mut();
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response_headers.insert(header::ETAG, value);
    }
    response_headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
