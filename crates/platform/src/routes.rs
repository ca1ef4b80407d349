//! The one route table. The router is built from it, and a test checks it
//! against `docs/openapi.yaml` both ways, so the document and the server
//! cannot drift apart.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::Platform;
use crate::handlers::{integrations, jobs, runners, secrets};
use crate::http::{self, MAX_BODY_BYTES};

/// One served route: its method and its path (axum and OpenAPI share the
/// `{param}` syntax).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    /// `GET`, `POST`, `PUT` or `DELETE`.
    pub method: &'static str,
    /// The path template.
    pub path: &'static str,
}

fn entry<H, T>(
    method: &'static str,
    path: &'static str,
    handler: H,
) -> (Route, MethodRouter<Platform>)
where
    H: Handler<T, Platform>,
    T: 'static,
{
    let filter = match method {
        "GET" => MethodFilter::GET,
        "POST" => MethodFilter::POST,
        "PUT" => MethodFilter::PUT,
        "DELETE" => MethodFilter::DELETE,
        other => unreachable!("the route table only uses GET/POST/PUT/DELETE, not {other}"),
    };
    (Route { method, path }, on(filter, handler))
}

fn table() -> Vec<(Route, MethodRouter<Platform>)> {
    vec![
        entry("GET", "/healthz", runners::healthz),
        // Runner-facing.
        entry("POST", "/runners/bootstrap", runners::bootstrap),
        entry("GET", "/runners/readiness", runners::readiness),
        entry("POST", "/runners/jobs/claim", jobs::claim),
        entry("POST", "/runners/jobs/{id}/logs", jobs::logs),
        entry("POST", "/runners/jobs/{id}/heartbeat", jobs::heartbeat),
        entry("POST", "/runners/jobs/{id}/complete", jobs::complete),
        // Admin.
        entry("POST", "/runners/tokens", runners::create_token),
        entry(
            "DELETE",
            "/runners/tokens/{runner_id}",
            runners::delete_token,
        ),
        entry("GET", "/secrets", secrets::list),
        entry("PUT", "/secrets/{env}", secrets::put),
        entry("DELETE", "/secrets/{env}", secrets::delete),
        entry("GET", "/integrations", integrations::list),
        entry("PUT", "/integrations/github", integrations::put_github),
        entry(
            "PUT",
            "/integrations/bitbucket",
            integrations::put_bitbucket,
        ),
        // The contract's `DELETE /integrations/{provider}`, spelled out: a
        // `{provider}` route would lose to the static PUT paths above and
        // answer 405. An unknown provider falls through to 404.
        entry(
            "DELETE",
            "/integrations/github",
            integrations::delete_github,
        ),
        entry(
            "DELETE",
            "/integrations/bitbucket",
            integrations::delete_bitbucket,
        ),
        entry("POST", "/jobs", jobs::enqueue),
        entry("GET", "/jobs/{id}", jobs::get),
        entry("POST", "/jobs/{id}/cancel", jobs::cancel),
    ]
}

/// Every route the router serves.
pub fn routes() -> Vec<Route> {
    table().into_iter().map(|(route, _)| route).collect()
}

/// The router: the table, the body cap, the error answers for unknown routes
/// and wrong methods, and a panic guard.
pub fn router(platform: Platform) -> Router {
    let mut router = Router::new();
    for (route, method_router) in table() {
        router = router.route(route.path, method_router);
    }
    router
        .fallback(http::unknown_route)
        .method_not_allowed_fallback(http::wrong_method)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::custom(http::panic_response))
        .with_state(platform)
}

/// The route an unmatched `PUT /secrets/` would have been: an empty env name
/// is a bad name (`422`), not an unknown route.
pub(crate) fn is_empty_secret_path(method: &Method, path: &str) -> bool {
    method == Method::PUT && path == "/secrets/"
}
