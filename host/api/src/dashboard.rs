//! The operator's dashboard: one page (vanilla JS, uPlot vendored) served
//! from the binary, and the data it reads under `/dashboard/api`.
//!
//! The data routes are the documented `/api/v1` routes mounted a second
//! time behind the token on every method: `/api/v1` reads stay open as the
//! old service's were (docs/conventions/api-compat.md, "Authentication"), while the dashboard, which shows
//! everything at once, is closed whenever a token is set. The page itself
//! holds no data, so it loads without the token and asks for it.

use std::sync::LazyLock;

use axum::extract::{DefaultBodyLimit, Path};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};
use tower_http::compression::CompressionLayer;

use super::{AppError, AppState, ErrorCode};

/// Only this origin, and nothing inline: a page that cannot load or send
/// anything elsewhere, even if a stored string were to carry markup.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:literal) => {
        Asset {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!("../assets/dashboard/", $name)),
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("uPlot.iife.min.js", "text/javascript; charset=utf-8"),
    asset!("uPlot.min.css", "text/css; charset=utf-8"),
];

/// Strong validators, so a reload costs a 304 and a new binary is never
/// served from a stale cache.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = Sha256::digest(a.bytes);
            format!("\"{}\"", hex::encode(&digest[..12]))
        })
        .collect()
});

/// The page, its assets and its data routes.
pub fn routes(state: AppState) -> Router<AppState> {
    let data = super::routes()
        .route_layer(middleware::from_fn_with_state(
            state,
            super::auth::authenticate_always,
        ))
        .layer(DefaultBodyLimit::max(super::JSON_BODY_LIMIT));
    Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard/") }))
        .route("/dashboard", get(|| async { Redirect::to("/dashboard/") }))
        .route("/dashboard/", get(|headers: HeaderMap| async move { serve("index.html", &headers) }))
        .route(
            "/dashboard/assets/{name}",
            get(|Path(name): Path<String>, headers: HeaderMap| async move { serve(&name, &headers) })
                // Scripts shrink about 3x; the API's JSON is left alone.
                .layer(CompressionLayer::new()),
        )
        .nest("/dashboard/api", data)
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|a| a.name == name) else {
        return AppError::not_found(
            ErrorCode::AssetNotFound,
            format!("no dashboard asset `{name}`"),
        )
        .into_response();
    };
    let asset = &ASSETS[index];
    let etag = ETAGS[index].as_str();
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let common = [
        (
            header::ETAG,
            HeaderValue::from_str(etag).unwrap_or(HeaderValue::from_static("\"\"")),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        common,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        )],
        asset.bytes,
    )
        .into_response()
}
